"""Attachment letters: generated on bundling, sent next business day, running to the next installment (R6.1, R7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.attachment import (
    attachment_effective,
    attachment_letter_for_payment,
    effective_due_date,
    format_attachment_letter_number,
    next_due_date,
)
from server.domain.calendar import is_business_day
from server.domain.coverage_types import AttachmentLetterFacts, PaymentMode, PolicyFacts
from server.domain.errors import InvalidInput, RuleViolation
from tests.domain.coverage_facts import (
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    CLINICS,
    attachment,
    dispatcher,
    make_policy,
    quarterly_policy,
    registry,
)

CLINIC = CLINICS[CLINIC_CAT2]


def test_letter_is_generated_on_the_bundling_day_R7_1() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    assert plan.generated_on == date(2026, 6, 10)
    assert plan.reasons[0].rule == "R7.1"


def test_letter_is_sent_on_the_next_business_day_R7_2() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 11))
    assert plan.send_on == date(2026, 6, 15)  # Russia Day (Friday) and the weekend skipped
    assert plan.reasons[1].rule == "R7.2"
    assert plan.valid_from == date(2026, 6, 15)  # R6.2: effective once the clinic has it


def test_installment_letter_attaches_until_the_next_due_date_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 1, 12))
    assert plan.valid_until == date(2026, 4, 1)
    assert any(r.rule == "R7.3" and "next installment due on 2026-04-01" in r.message for r in plan.reasons)


def test_lump_sum_letter_attaches_until_the_policy_end_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), make_policy(), CLINIC, date(2026, 3, 3))
    assert plan.valid_until == date(2026, 12, 31)
    assert "lump sum" in plan.reasons[-1].message


def test_last_installment_attaches_until_the_policy_end_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 10, 1))
    assert plan.valid_until == date(2026, 12, 31)


def test_early_payment_runs_to_the_installment_after_the_one_paid_R7_3() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(),
        quarterly_policy(),
        CLINIC,
        date(2026, 3, 25),
        covers_due_on=date(2026, 4, 1),
        previous_letters=[previous],
    )
    assert plan.valid_until == date(2026, 7, 1)
    assert plan.valid_from == date(2026, 3, 25)  # continues the letter in force: no gap


def test_payment_on_the_due_date_continues_without_a_gap_R7_3() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2026, 4, 1), previous_letters=[previous]
    )
    assert plan.valid_from == date(2026, 4, 1)
    assert plan.valid_until == date(2026, 7, 1)
    assert any("continues letter AL-2026-000001" in r.message for r in plan.reasons)


def test_late_payment_reattaches_only_when_the_clinic_gets_the_letter_R7_4() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2026, 4, 10), previous_letters=[previous]
    )
    assert plan.send_on == date(2026, 4, 13)
    assert plan.valid_from == date(2026, 4, 13)
    letters = [previous, plan.to_facts("AL-2026-000002")]
    assert attachment_effective(letters, date(2026, 4, 1)).allowed
    gap = attachment_effective(letters, date(2026, 4, 5))
    assert not gap.allowed
    assert gap.rules == ("R7.2",)
    assert attachment_effective(letters, date(2026, 4, 13)).allowed


def test_payment_before_the_policy_starts_attaches_from_its_start_R7_3() -> None:
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2025, 12, 15), covers_due_on=date(2026, 1, 1)
    )
    assert plan.valid_from == date(2026, 1, 1)
    assert plan.valid_until == date(2026, 4, 1)


def test_letter_goes_only_to_a_registry_persons_attached_clinic_R6_1() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(dispatcher(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    assert err.value.rules == ("R6.1",)
    with pytest.raises(RuleViolation):
        attachment_letter_for_payment(registry(), quarterly_policy(), CLINICS[CLINIC_CAT2_OTHER], date(2026, 6, 10))


def test_no_letter_after_the_policy_ended_R7_3() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2027, 1, 10))
    assert err.value.rules == ("R7.3",)


def test_person_of_another_policy_is_a_caller_error() -> None:
    """R7.3: the letter follows the person's own policy schedule."""
    with pytest.raises(InvalidInput):
        other = PolicyFacts(8, "VHI-2026-0008", date(2026, 1, 1), date(2026, 12, 31), PaymentMode.LUMP_SUM)
        attachment_letter_for_payment(registry(), other, CLINIC, date(2026, 6, 10))


def test_plan_becomes_stored_facts_with_a_number_R6_1() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    number = format_attachment_letter_number(2026, 42)
    assert number == "AL-2026-000042"
    facts = plan.to_facts(number)
    assert facts.clinic_id == CLINIC_CAT2
    assert facts.valid_until == date(2026, 7, 1)
    assert plan.as_dict()["send_on"] == "2026-06-11"


def test_attachment_in_force_exempts_visits_and_cites_the_letter_R6_2() -> None:
    decision = attachment_effective([attachment()], date(2026, 2, 1))
    assert decision.allowed
    assert decision.rules == ("R6.2",)
    assert decision.reasons[0].facts["attachment_letter"] == "AL-2026-000001"


def test_attachment_ends_at_the_unpaid_installments_due_date_R7_4() -> None:
    assert attachment_effective([attachment()], date(2026, 4, 1)).allowed
    decision = attachment_effective([attachment()], date(2026, 4, 2))
    assert not decision.allowed
    assert decision.rules == ("R7.4",)
    assert "dispatcher access only until it is paid" in decision.reasons[0].message


def test_no_attachment_letter_means_no_attachment_R6_1() -> None:
    assert attachment_effective([], date(2026, 2, 1)).rules == ("R6.1",)


def test_letters_to_another_clinic_do_not_attach_R6_2() -> None:
    decision = attachment_effective([attachment(clinic_id=CLINIC_CAT2_OTHER)], date(2026, 2, 1), clinic_id=CLINIC_CAT2)
    assert not decision.allowed


def test_next_due_date_ignores_lump_sum_and_dates_after_the_policy() -> None:
    """R7.3: only installments within the policy end an attachment letter."""
    assert next_due_date(make_policy(), date(2026, 1, 1)) is None
    assert next_due_date(quarterly_policy(), date(2026, 4, 1)) == date(2026, 7, 1)
    assert next_due_date(quarterly_policy(), date(2026, 10, 1)) is None


@settings(deadline=None, max_examples=150)
@given(
    offsets=st.lists(st.integers(1, 364), min_size=1, max_size=11, unique=True),
    early=st.lists(st.integers(0, 20), min_size=12, max_size=12),
    start_offset=st.integers(0, 5),
)
def test_paying_every_installment_on_time_leaves_no_gap_property_R7_3_R7_4(
    offsets: list[int], early: list[int], start_offset: int
) -> None:
    start = date(2026, 1, 1)
    dues = (start, *sorted(start + timedelta(days=o) for o in offsets))
    policy = make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=dues)
    letters: list[AttachmentLetterFacts] = []
    bundled = start + timedelta(days=start_offset)
    for i, due in enumerate(dues):
        if i > 0:
            # on time: on or before the due date, in the order of the schedule
            bundled = max(due - timedelta(days=early[i]), bundled)
        plan = attachment_letter_for_payment(
            registry(), policy, CLINIC, bundled, covers_due_on=due, previous_letters=letters
        )
        assert plan.generated_on == bundled
        assert plan.send_on > bundled and is_business_day(plan.send_on)
        # R7.5: a due date on a non-business day moves to the next business day
        assert plan.valid_until in (*(min(effective_due_date(d), policy.ends_on) for d in dues), policy.ends_on)
        letters.append(plan.to_facts(f"AL-2026-{i + 1:06d}"))
    day = min(letter.valid_from for letter in letters if letter.valid_from <= letter.valid_until)
    while day <= policy.ends_on:
        assert attachment_effective(letters, day).allowed, day
        day += timedelta(days=1)
    assert not attachment_effective(letters, policy.ends_on + timedelta(days=1)).allowed


# ------------------------------------------------------------------ R7.4 both schedules, R7.5, R7.6, R7.7, R5.4

from decimal import Decimal  # noqa: E402

from server.domain.attachment import (  # noqa: E402
    DuePayment,
    Installment,
    match_payment,
    overdue_installments,
    same_day_letter,
)
from tests.domain.coverage_facts import make_program  # noqa: E402


def premium(due: date, paid: bool) -> Installment:
    return Installment(due, paid, "premium", "VHI-2026-0007")


def additional(due: date, paid: bool) -> Installment:
    return Installment(due, paid, "additional_premium", "AA-2026-000001")


def test_late_earlier_installment_does_not_attach_while_a_later_one_is_due_R7_4() -> None:
    """Q2 paid on 07-05 while Q3 (due 07-01) is unpaid: no letter until Q3 is paid."""
    installments = [
        premium(date(2026, 1, 1), True),
        premium(date(2026, 4, 1), True),
        premium(date(2026, 7, 1), False),
        premium(date(2026, 10, 1), False),
    ]
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(
            registry(),
            quarterly_policy(),
            CLINIC,
            date(2026, 7, 5),
            covers_due_on=date(2026, 4, 1),
            installments=installments,
        )
    assert err.value.rules == ("R7.4",)
    facts = err.value.reasons[0].facts
    assert facts["bundled_on"] == "2026-07-05"
    assert facts["unpaid"] == [
        {"due_on": "2026-07-01", "effective_due_on": "2026-07-01", "schedule": "premium", "reference": "VHI-2026-0007"}
    ]


def test_both_schedules_must_be_paid_up_to_date_R7_4() -> None:
    """The employer pays Q3 while the additional premium due the same day is unpaid: no new letter."""
    installments = [
        premium(date(2026, 7, 1), True),
        additional(date(2026, 7, 1), False),
        premium(date(2026, 10, 1), False),
    ]
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(
            registry(), quarterly_policy(), CLINIC, date(2026, 7, 1), installments=installments
        )
    assert err.value.rules == ("R7.4",)
    assert err.value.reasons[0].facts["unpaid"][0]["schedule"] == "additional_premium"
    # once both are paid, the letter runs to the earliest unpaid installment of either schedule
    paid = [
        premium(date(2026, 7, 1), True),
        additional(date(2026, 7, 1), True),
        additional(date(2026, 8, 3), False),
        premium(date(2026, 10, 1), False),
    ]
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 7, 1), installments=paid)
    assert plan.valid_until == date(2026, 8, 3)


def test_installment_due_tomorrow_is_not_overdue_and_ends_the_letter_R7_4() -> None:
    """Boundary: due after the bundling day is fine (<=, not <, decides overdue)."""
    assert overdue_installments([premium(date(2026, 7, 2), False)], date(2026, 7, 1)) == []
    assert overdue_installments([premium(date(2026, 7, 1), False)], date(2026, 7, 1)) == [
        premium(date(2026, 7, 1), False)
    ]
    assert overdue_installments([premium(date(2026, 6, 30), True)], date(2026, 7, 1)) == []
    plan = attachment_letter_for_payment(
        registry(),
        quarterly_policy(),
        CLINIC,
        date(2026, 7, 1),
        installments=[premium(date(2026, 7, 1), True), premium(date(2026, 7, 2), False)],
    )
    assert plan.valid_until == date(2026, 7, 2)


def test_every_installment_paid_attaches_to_the_policys_end_R7_3() -> None:
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2026, 10, 1), installments=[premium(date(2026, 10, 1), True)]
    )
    assert plan.valid_until == date(2026, 12, 31)
    assert "no installment left unpaid" in plan.reasons[-1].message


def test_due_date_on_a_holiday_moves_to_the_next_business_day_R7_5() -> None:
    """Due 2027-01-01, paid 01-11 (the first business day): on time, no lapse from 01-02 to 01-11."""
    assert effective_due_date(date(2027, 1, 1)) == date(2027, 1, 11)
    assert effective_due_date(date(2026, 7, 1)) == date(2026, 7, 1)  # a Wednesday stays
    policy = make_policy(
        mode=PaymentMode.INSTALLMENTS,
        starts_on=date(2026, 7, 1),
        ends_on=date(2027, 6, 30),
        due_dates=(date(2026, 7, 1), date(2027, 1, 1)),
    )
    first = attachment_letter_for_payment(
        registry(),
        policy,
        CLINIC,
        date(2026, 7, 1),
        installments=[premium(date(2026, 7, 1), True), premium(date(2027, 1, 1), False)],
    )
    assert first.valid_until == date(2027, 1, 11)
    assert first.reasons[-1].facts["scheduled_due_on"] == "2027-01-01"
    assert "R7.5" in first.reasons[-1].message
    letters = [first.to_facts("AL-2026-000001")]
    for day in (date(2027, 1, 2), date(2027, 1, 10), date(2027, 1, 11)):
        assert attachment_effective(letters, day).allowed, day
    assert not attachment_effective(letters, date(2027, 1, 12)).allowed
    # due (moved) on 01-11: counted as due that day, not before; paid on 01-11 it continues without a gap
    assert overdue_installments([premium(date(2027, 1, 1), False)], date(2027, 1, 11)) == [
        premium(date(2027, 1, 1), False)
    ]
    assert overdue_installments([premium(date(2027, 1, 1), False)], date(2027, 1, 10)) == []
    second = attachment_letter_for_payment(
        registry(),
        policy,
        CLINIC,
        date(2027, 1, 11),
        previous_letters=letters,
        installments=[premium(date(2026, 7, 1), True), premium(date(2027, 1, 1), True)],
    )
    assert second.valid_from == date(2027, 1, 11)
    assert second.valid_until == date(2027, 6, 30)


def test_legacy_single_schedule_reading_also_moves_due_dates_R7_5() -> None:
    policy = make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=(date(2026, 1, 1), date(2026, 5, 9)))
    plan = attachment_letter_for_payment(registry(), policy, CLINIC, date(2026, 1, 12), covers_due_on=date(2026, 1, 1))
    assert plan.valid_until == date(2026, 5, 12)  # 05-09 Victory Day (Sat), 05-11 day off: next business day 05-12


def test_one_letter_per_person_per_day_R7_6() -> None:
    """A second payment the same day updates that day's letter instead of making a second one."""
    earlier = attachment(valid_from=date(2026, 4, 2), valid_until=date(2026, 7, 1))
    today = AttachmentLetterFacts(
        "AL-2026-000009", CLINIC.id, date(2026, 7, 1), date(2026, 7, 2), date(2026, 7, 1), date(2026, 8, 3)
    )
    assert same_day_letter([earlier, today], CLINIC.id, date(2026, 7, 1)) == today
    assert same_day_letter([earlier, today], CLINIC.id, date(2026, 7, 2)) is None
    assert same_day_letter([earlier, today], CLINIC_CAT2_OTHER, date(2026, 7, 1)) is None


AA1 = "AA-2026-000001"
AA2 = "AA-2026-000002"


def test_payment_is_matched_by_the_reference_it_carries_R7_6() -> None:
    """Two persons owe the same additional premium: each payment goes to the agreement it names."""
    due = [
        DuePayment(1, AA1, Decimal("1000.00"), date(2026, 5, 15)),
        DuePayment(2, AA2, Decimal("1000.00"), date(2026, 5, 10)),
    ]
    match = match_payment(due, Decimal("1000.00"), "aa-2026-000001 ")
    assert match.matched and match.scheduled is not None and match.scheduled.id == 1
    assert match.reasons[0].rule == "R7.6" and match.reasons[0].facts["scheduled_payment_id"] == 1


def test_ambiguous_payment_waits_for_an_admin_R7_6() -> None:
    due = [
        DuePayment(1, AA1, Decimal("1000.00"), date(2026, 5, 15)),
        DuePayment(2, AA2, Decimal("1000.00"), date(2026, 5, 10)),
    ]
    match = match_payment(due, Decimal("1000.00"), None)
    assert not match.matched
    assert match.reasons[0].rule == "R7.6"
    assert match.reasons[0].facts["candidates"] == [2, 1]
    assert match.reasons[0].facts["references"] == [AA1, AA2]


def test_payment_without_reference_on_one_schedule_pays_it_in_order_R7_6() -> None:
    due = [
        DuePayment(3, "VHI-2026-0007", Decimal("500.00"), date(2026, 7, 1)),
        DuePayment(4, "VHI-2026-0007", Decimal("500.00"), date(2026, 4, 1)),
        DuePayment(5, "VHI-2026-0007", Decimal("500.00"), date(2026, 1, 1), paid=True),
        DuePayment(6, AA1, Decimal("700.00"), date(2026, 4, 1)),
    ]
    match = match_payment(due, Decimal("500.00"), "")
    assert match.scheduled is not None and match.scheduled.id == 4
    assert not match_payment(due, Decimal("501.00"), None).matched
    # a reference whose next payment is of another amount is not forced
    wrong = match_payment(due, Decimal("500.00"), AA1)
    assert not wrong.matched and wrong.reasons[0].facts["scheduled_amount"] == "700.00"
    assert not match_payment(due, Decimal("500.00"), "AA-2026-999999").matched


def test_letter_that_would_reach_the_clinic_after_the_policy_ends_is_refused_R7_7() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(registry(), make_policy(), CLINIC, date(2026, 12, 30))
    assert err.value.rules == ("R7.7",)
    assert err.value.reasons[0].facts == {"send_on": "2027-01-11", "ends_on": "2026-12-31", "bundled_on": "2026-12-30"}
    ends_fri = make_policy(ends_on=date(2026, 12, 25))
    assert attachment_letter_for_payment(registry(), ends_fri, CLINIC, date(2026, 12, 24)).send_on == date(2026, 12, 25)


def test_no_letter_to_a_clinic_that_left_the_program_R5_4() -> None:
    program = make_program(clinic_ids=frozenset({CLINIC_CAT2_OTHER}))
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(registry(), make_policy(), CLINIC, date(2026, 5, 4), program=program)
    assert err.value.rules == ("R5.4",)
    assert err.value.reasons[0].facts == {"clinic_id": CLINIC.id, "program_id": 1, "insured_id": 101}
    assert attachment_letter_for_payment(registry(), make_policy(), CLINIC, date(2026, 5, 4), program=make_program())


def test_payment_on_the_last_days_continuing_an_attachment_is_not_refused_R7_7_R7_3() -> None:
    """R7.7 refuses only a letter that would start after the end; a continuation starts on the bundling day."""
    policy = quarterly_policy()
    running = attachment(valid_from=date(2026, 10, 2), valid_until=date(2026, 12, 31))
    plan = attachment_letter_for_payment(registry(), policy, CLINIC, date(2026, 12, 30), previous_letters=[running])
    assert plan.valid_from == date(2026, 12, 30)
    assert plan.valid_until == date(2026, 12, 31)


def test_replacement_clinic_gets_a_letter_for_the_time_already_paid_R5_4() -> None:
    from server.domain.attachment import replacement_attachment_letter

    new_clinic = CLINICS[CLINIC_CAT2_OTHER]
    moved = registry(clinic_id=CLINIC_CAT2_OTHER)
    old = attachment(valid_from=date(2026, 4, 2), valid_until=date(2026, 7, 1))
    plan = replacement_attachment_letter(moved, quarterly_policy(), new_clinic, date(2026, 6, 10), [old])
    assert plan is not None
    assert (plan.clinic_id, plan.send_on, plan.valid_from, plan.valid_until) == (
        CLINIC_CAT2_OTHER,
        date(2026, 6, 11),
        date(2026, 6, 11),
        date(2026, 7, 1),
    )
    assert [r.rule for r in plan.reasons] == ["R5.4", "R7.2"]
    assert plan.reasons[0].facts["previous_letter"] == old.number
    # nothing paid is left (the old letter ended the day before): the next payment makes the letter
    assert replacement_attachment_letter(moved, quarterly_policy(), new_clinic, date(2026, 7, 2), [old]) is None
    # boundary: the old letter's last day is still carried over (>=), but a letter sent after it is not
    assert replacement_attachment_letter(moved, quarterly_policy(), new_clinic, date(2026, 7, 1), [old]) is None
    last_day = replacement_attachment_letter(moved, quarterly_policy(), new_clinic, date(2026, 6, 30), [old])
    assert last_day is not None and last_day.valid_from == last_day.valid_until == date(2026, 7, 1)
    with pytest.raises(InvalidInput):
        replacement_attachment_letter(registry(), quarterly_policy(), new_clinic, date(2026, 6, 10), [old])
