"""Letters of guarantee: numbers, one-month validity, issue checks and the lifecycle (R2.3, R2.5, R3.3)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage_types import Component, EventStatus, LetterStatus
from server.domain.decisions import Decision
from server.domain.errors import Conflict, InvalidInput, RuleViolation
from server.domain.letters import (
    DEFAULT_VALIDITY_MONTHS,
    DIAGNOSIS_SERVICE,
    MAX_SERVICES,
    LetterState,
    add_months,
    cancel_letter,
    capped_validity,
    check_letter_extension,
    check_letter_issue,
    close_letter,
    draft_letter,
    extend_letter,
    format_letter_number,
    letter_state,
    letter_validity,
    normalize_services,
    parse_letter_number,
)
from tests.domain.coverage_facts import (
    CLINIC_CAT2,
    CLINIC_OFF_LIST,
    CLINICS,
    dispatcher,
    make_event,
    make_letter,
    make_policy,
    make_program,
)

ON = date(2026, 3, 2)


def issue(services: list[str], **overrides: object) -> Decision:
    """Call check_letter_issue with sensible defaults."""
    args: dict[str, object] = {
        "program": make_program(),
        "clinic": CLINICS[CLINIC_CAT2],
        "services": services,
        "component": Component.OUTPATIENT,
        "insured": dispatcher(),
        "policy": make_policy(),
        "event": make_event(),
        "on": ON,
    }
    args.update(overrides)
    return check_letter_issue(**args)  # type: ignore[arg-type]


def test_letter_number_format() -> None:
    """R2.6: the letter number told to the person has one printed form."""
    assert format_letter_number(2026, 123) == "LG-2026-000123"
    assert parse_letter_number("LG-2026-000123") == (2026, 123)
    for bad in ("LG-2026-000000", "AL-2026-000001", "LG-26-1", "lg-2026-000001"):
        with pytest.raises(InvalidInput):
            parse_letter_number(bad)
    for year, seq in ((999, 1), (2026, 0), (2026, 1_000_000)):
        with pytest.raises(InvalidInput):
            format_letter_number(year, seq)


@pytest.mark.parametrize(
    ("issued", "until"),
    [
        (date(2026, 1, 15), date(2026, 2, 15)),
        (date(2026, 1, 31), date(2026, 2, 28)),
        (date(2028, 1, 31), date(2028, 2, 29)),
        (date(2026, 12, 20), date(2027, 1, 20)),
        (date(2026, 3, 31), date(2026, 4, 30)),
    ],
)
def test_letter_is_valid_one_calendar_month_from_issue_R3_3(issued: date, until: date) -> None:
    assert DEFAULT_VALIDITY_MONTHS == 1
    assert letter_validity(issued) == until


def test_validity_of_less_than_a_month_is_refused_R3_3() -> None:
    with pytest.raises(InvalidInput):
        letter_validity(ON, 0)


@settings(deadline=None, max_examples=300)
@given(day=st.dates(date(1900, 1, 1), date(2500, 12, 31)), months=st.integers(-48, 48))
def test_add_months_lands_in_the_right_month_and_never_overflows(day: date, months: int) -> None:
    """R3.3: one-month validity uses calendar months, clamped to the month's end."""
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day <= day.day
    assert result.day == day.day or (result + timedelta(days=1)).month != result.month


def test_services_are_trimmed_and_deduplicated_case_insensitively() -> None:
    """R3.2: whether a service is named in a letter must not depend on case or spacing."""
    assert normalize_services([" Blood  test", "blood test", "", "X-ray"]) == ("Blood test", "X-ray")


def test_letter_for_listed_clinic_and_covered_component_is_allowed_R2_5() -> None:
    decision = issue(["therapist consultation", "blood test"])
    assert decision.allowed
    first = decision.reasons[0]
    assert first.rule == "R2.5"
    assert first.facts["valid_until"] == "2026-04-02"
    assert "R2.2" in decision.rules


def test_letter_for_diagnosis_of_the_complaints_is_allowed_R2_5() -> None:
    assert issue([DIAGNOSIS_SERVICE]).allowed


def test_letter_without_services_is_refused_R2_5() -> None:
    decision = issue(["  "])
    assert not decision.allowed
    assert decision.rules == ("R2.5",)


def test_letter_with_too_many_services_is_refused_R2_5() -> None:
    decision = issue([f"service {i}" for i in range(MAX_SERVICES + 1)])
    assert decision.rules == ("R2.5",)


def test_letter_to_a_clinic_off_the_program_list_is_refused_R2_3_R2_5() -> None:
    decision = issue(["blood test"], clinic=CLINICS[CLINIC_OFF_LIST])
    assert not decision.allowed
    assert decision.rules == ("R2.3",)


def test_letter_for_an_uncovered_component_is_refused_R2_5_R10_2() -> None:
    program = make_program(components=frozenset({Component.DENTAL}))
    event = make_event(component=Component.OUTPATIENT)
    decision = issue(["blood test"], program=program, event=event)
    assert not decision.allowed
    assert decision.rules[:2] == ("R2.2", "R10.1")


def test_letter_outside_the_policy_period_is_refused_R10_2() -> None:
    decision = issue(["blood test"], on=date(2027, 1, 5))
    assert "R10.2" in decision.rules


def test_letter_for_a_closed_event_is_refused_as_a_new_event_R3_1() -> None:
    decision = issue(["blood test"], event=make_event(status=EventStatus.CLOSED))
    assert decision.rules == ("R3.1",)


def test_letter_component_must_match_the_event_R10_2() -> None:
    decision = issue(["filling"], component=Component.DENTAL)
    assert decision.rules == ("R10.2",)


def test_draft_letter_is_active_for_one_month_R2_5_R3_3() -> None:
    letter = draft_letter(
        "LG-2026-000001", CLINICS[CLINIC_CAT2], ["Blood test", "blood test"], make_event(), ON, policy=make_policy()
    )
    assert letter.status is LetterStatus.ACTIVE
    assert letter.valid_until == date(2026, 4, 2)
    assert letter.services == frozenset({"Blood test"})
    assert letter.insured_event_id == 500


def test_expired_letter_with_treatment_going_on_is_extended_a_month_R3_3() -> None:
    transition = extend_letter(make_letter(), make_event(), date(2026, 4, 10), policy=make_policy())
    assert transition.letter.valid_until == date(2026, 5, 10)
    assert transition.letter.status is LetterStatus.ACTIVE
    assert transition.reasons[0].rule == "R3.3"
    assert "expired" in transition.reasons[0].message
    assert transition.as_dict()["valid_until"] == "2026-05-10"


def test_letter_of_a_completed_treatment_is_not_extended_R3_3() -> None:
    decision = check_letter_extension(
        make_letter(), make_event(status=EventStatus.CLOSED), date(2026, 4, 10), policy=make_policy()
    )
    assert not decision.allowed
    assert "complete" in decision.reasons[0].message
    with pytest.raises(RuleViolation) as err:
        extend_letter(make_letter(), make_event(status=EventStatus.CLOSED), date(2026, 4, 10), policy=make_policy())
    assert err.value.rules == ("R3.3",)


def test_closed_or_cancelled_letter_is_not_extended_R3_3() -> None:
    for status in (LetterStatus.CLOSED, LetterStatus.CANCELLED):
        decision = check_letter_extension(
            make_letter(status=status), make_event(), date(2026, 4, 10), policy=make_policy()
        )
        assert not decision.allowed


def test_extending_on_the_day_of_issue_changes_nothing_and_is_refused_R3_3() -> None:
    assert not check_letter_extension(make_letter(), make_event(), ON, policy=make_policy()).allowed


def test_extending_another_events_letter_is_a_caller_error() -> None:
    """R3.3: an extension concerns the letter's own insured event."""
    with pytest.raises(InvalidInput):
        check_letter_extension(make_letter(event_id=1), make_event(id=2), ON, policy=make_policy())


def test_close_and_cancel_are_one_way_R2_5() -> None:
    closed = close_letter(make_letter(), date(2026, 3, 20))
    assert closed.letter.status is LetterStatus.CLOSED
    assert not closed.letter.is_valid_on(date(2026, 3, 21))
    cancelled = cancel_letter(make_letter(), date(2026, 3, 20))
    assert cancelled.letter.status is LetterStatus.CANCELLED
    with pytest.raises(Conflict):
        close_letter(closed.letter, date(2026, 3, 21))
    with pytest.raises(Conflict):
        cancel_letter(closed.letter, date(2026, 3, 21))
    with pytest.raises(Conflict):
        cancel_letter(cancelled.letter, date(2026, 3, 21))
    with pytest.raises(InvalidInput):
        close_letter(make_letter(), date(2026, 3, 1))


# ----------------------------------------------------------------------------- R10.3: never past the policy's end

YEAR_END = make_policy(starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31))


def test_letter_issued_two_weeks_before_the_policy_ends_is_capped_at_its_last_day_R10_2_R10_3() -> None:
    """Issued 2026-12-15 on a policy ending 2026-12-31: valid until 12-31, not 2027-01-15."""
    decision = issue(["blood test"], on=date(2026, 12, 15))
    assert decision.allowed
    assert decision.reasons[0].facts["valid_until"] == "2026-12-31"
    capped = next(r for r in decision.reasons if r.rule == "R10.3")
    assert capped.facts == {
        "policy_number": "VHI-2026-0007",
        "ends_on": "2026-12-31",
        "month_end": "2027-01-15",
        "issued_on": "2026-12-15",
    }
    letter = draft_letter(
        "LG-2026-000002", CLINICS[CLINIC_CAT2], ["x"], make_event(), date(2026, 12, 15), policy=YEAR_END
    )
    assert letter.valid_until == date(2026, 12, 31)


def test_letter_whose_month_ends_on_the_policys_last_day_is_not_capped_R10_3() -> None:
    """Boundary: a month ending exactly on the last day needs no cap (<= keeps it, with no R10.3 reason)."""
    ends_dec_30 = make_policy(ends_on=date(2026, 12, 30))
    assert capped_validity(date(2026, 11, 30), ends_dec_30) == (date(2026, 12, 30), None)
    assert capped_validity(date(2026, 11, 29), ends_dec_30) == (date(2026, 12, 29), None)
    until, reason = capped_validity(date(2026, 12, 1), ends_dec_30)
    assert until == date(2026, 12, 30)
    assert reason is not None and reason.rule == "R10.3" and reason.facts["month_end"] == "2027-01-01"


def test_extension_on_the_policys_last_day_does_not_reach_past_it_R10_3() -> None:
    """Extending on 12-31 a letter already valid to 12-31 would run to 2027-01-31: refused, citing R10.3."""
    letter = make_letter(issued_on=date(2026, 12, 15), valid_until=date(2026, 12, 31))
    decision = check_letter_extension(letter, make_event(), date(2026, 12, 31), policy=YEAR_END)
    assert not decision.allowed
    assert decision.rules == ("R10.3",)
    assert decision.reasons[0].facts["ends_on"] == "2026-12-31"
    assert decision.reasons[0].facts["on"] == "2026-12-31"


def test_extension_is_capped_at_the_policys_end_R10_3() -> None:
    """An expired letter re-approved on 12-20 runs to 12-31, with the R10.3 reason."""
    letter = make_letter(issued_on=date(2026, 11, 1), valid_until=date(2026, 12, 1))
    transition = extend_letter(letter, make_event(), date(2026, 12, 20), policy=YEAR_END)
    assert transition.letter.valid_until == date(2026, 12, 31)
    assert [r.rule for r in transition.reasons] == ["R3.3", "R10.3"]


def test_extension_after_the_policy_ended_is_refused_R10_2() -> None:
    letter = make_letter(issued_on=date(2026, 12, 1), valid_until=date(2026, 12, 31))
    decision = check_letter_extension(letter, make_event(), date(2027, 1, 1), policy=YEAR_END)
    assert decision.rules == ("R10.2",)
    assert decision.reasons[0].facts["policy_number"] == "VHI-2026-0007"
    # the policy's last day itself is inside: that case is decided by R10.3 above, not R10.2
    assert check_letter_extension(letter, make_event(), date(2026, 12, 31), policy=YEAR_END).rules == ("R10.3",)


def test_card_shows_a_letter_that_ended_with_the_policy_R10_3() -> None:
    """A letter valid to 2027-01-15 (issued before the cap) shows as ended with the policy on 2027-01-01."""
    letter = make_letter(issued_on=date(2026, 12, 15), valid_until=date(2027, 1, 15))
    state, reason = letter_state(letter, YEAR_END, date(2027, 1, 1))
    assert state is LetterState.ENDED_WITH_POLICY
    assert reason.rule == "R10.3"
    assert reason.facts["policy_ends_on"] == "2026-12-31"
    assert letter_state(letter, YEAR_END, date(2026, 12, 31))[0] is LetterState.ACTIVE


def test_card_states_of_a_letter_at_each_boundary_R2_5_R3_3() -> None:
    letter = make_letter()  # 2026-03-02 to 2026-04-02
    policy = make_policy()
    assert letter_state(letter, policy, date(2026, 3, 1))[0] is LetterState.NOT_YET_VALID
    assert letter_state(letter, policy, date(2026, 3, 2))[0] is LetterState.ACTIVE
    assert letter_state(letter, policy, date(2026, 4, 2))[0] is LetterState.ACTIVE
    state, reason = letter_state(letter, policy, date(2026, 4, 3))
    assert state is LetterState.EXPIRED and reason.rule == "R3.3"
    assert letter_state(make_letter(status=LetterStatus.CLOSED), policy, ON)[0] is LetterState.CLOSED
    assert letter_state(make_letter(status=LetterStatus.CANCELLED), policy, ON)[0] is LetterState.CANCELLED
