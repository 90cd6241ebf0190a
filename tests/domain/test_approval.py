"""When a visit needs the console's (new) approval (R3.1-R3.3), and the registry exemption (R6.2, R6.3, R7.4)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.approval import BookingChannel, needs_approval
from server.domain.coverage_types import LetterFacts, LetterStatus
from tests.domain.coverage_facts import (
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    attachment,
    dispatcher,
    make_letter,
    registry,
)

IN_LETTER = date(2026, 3, 10)  # make_letter() is valid 2026-03-02..2026-04-02
AFTER_LETTER = date(2026, 4, 3)


def test_new_insured_event_needs_approval_R3_1() -> None:
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=True, letters=[make_letter()]
    )
    assert decision.needs_approval
    assert decision.rules == ("R3.1",)
    assert decision.letter is None
    assert decision.channel is BookingChannel.CONSOLE


def test_visit_within_valid_letter_for_its_services_at_its_clinic_needs_no_approval_R3() -> None:
    letter = make_letter()
    decision = needs_approval(dispatcher(), CLINIC_CAT2, ["Blood  Test"], IN_LETTER, new_event=False, letters=[letter])
    assert not decision.needs_approval
    assert decision.letter == letter
    assert decision.rules == ("R3",)
    assert "LG-2026-000123" in decision.reasons[0].message
    assert decision.reasons[0].facts["valid_until"] == "2026-04-02"


def test_follow_up_visit_without_new_services_is_within_the_letter_R3() -> None:
    decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=[make_letter()])
    assert not decision.needs_approval


def test_letter_valid_on_its_first_and_last_day_R3_3() -> None:
    letter = make_letter()
    for day in (letter.issued_on, letter.valid_until):
        assert not needs_approval(dispatcher(), CLINIC_CAT2, [], day, new_event=False, letters=[letter]).needs_approval


def test_service_not_named_in_the_valid_letter_needs_approval_R3_2() -> None:
    decision = needs_approval(
        dispatcher(),
        CLINIC_CAT2,
        ["blood test", "MRI of the knee"],
        IN_LETTER,
        new_event=False,
        letters=[make_letter()],
    )
    assert decision.needs_approval
    assert decision.rules == ("R3.2",)
    assert decision.reasons[0].facts["missing_services"] == ["MRI of the knee"]


def test_services_of_two_letters_are_not_combined_R3_2() -> None:
    one = make_letter(number="LG-2026-000001", services=frozenset({"blood test"}))
    two = make_letter(number="LG-2026-000002", services=frozenset({"x-ray"}))
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test", "x-ray"], IN_LETTER, new_event=False, letters=[one, two]
    )
    assert decision.needs_approval
    assert decision.rules == ("R3.2",)


def test_expired_letter_needs_new_approval_R3_3() -> None:
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], AFTER_LETTER, new_event=False, letters=[make_letter()]
    )
    assert decision.needs_approval
    assert decision.rules == ("R3.3",)
    assert decision.reasons[0].message.startswith("letter of guarantee LG-2026-000123 expired on 2026-04-02")
    assert decision.reasons[0].facts["letter_number"] == "LG-2026-000123"


def test_valid_letter_at_another_clinic_does_not_authorize_R2_5() -> None:
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2_OTHER, ["blood test"], IN_LETTER, new_event=False, letters=[make_letter()]
    )
    assert decision.needs_approval
    assert decision.rules == ("R2.5",)
    assert decision.reasons[0].facts["letter_clinic_ids"] == [CLINIC_CAT2]


def test_closed_or_cancelled_letter_does_not_authorize_R2_5() -> None:
    for status in (LetterStatus.CLOSED, LetterStatus.CANCELLED):
        decision = needs_approval(
            dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=[make_letter(status=status)]
        )
        assert decision.needs_approval
        assert decision.rules == ("R2.5",)
        assert status.value in decision.reasons[0].message


def test_letter_not_yet_issued_does_not_authorize_R2_5() -> None:
    decision = needs_approval(dispatcher(), CLINIC_CAT2, [], date(2026, 3, 1), new_event=False, letters=[make_letter()])
    assert decision.needs_approval
    assert "only issued on 2026-03-02" in decision.reasons[0].message


def test_open_event_without_any_letter_needs_approval_R2_5() -> None:
    decision = needs_approval(dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False)
    assert decision.needs_approval
    assert decision.rules == ("R2.5",)


def test_registry_person_at_attached_clinic_needs_no_approval_even_for_a_new_event_R6_2() -> None:
    decision = needs_approval(
        registry(CLINIC_CAT2), CLINIC_CAT2, ["MRI"], date(2026, 2, 1), new_event=True, attachment_letters=[attachment()]
    )
    assert not decision.needs_approval
    assert decision.channel is BookingChannel.CLINIC_REGISTRY
    assert decision.rules == ("R6.2", "R6.2")
    assert decision.reasons[1].facts["attachment_letter"] == "AL-2026-000001"


def test_registry_person_at_another_clinic_goes_through_the_console_R6_3() -> None:
    decision = needs_approval(
        registry(CLINIC_CAT2),
        CLINIC_CAT2_OTHER,
        ["MRI"],
        date(2026, 2, 1),
        new_event=True,
        attachment_letters=[attachment()],
    )
    assert decision.needs_approval
    assert decision.rules == ("R6.3", "R3.1")
    assert decision.channel is BookingChannel.CONSOLE


def test_registry_person_at_another_clinic_within_a_valid_letter_needs_no_approval_R6_3() -> None:
    letter = make_letter(clinic_id=CLINIC_CAT2_OTHER)
    decision = needs_approval(
        registry(CLINIC_CAT2), CLINIC_CAT2_OTHER, ["blood test"], IN_LETTER, new_event=False, letters=[letter]
    )
    assert not decision.needs_approval
    assert decision.rules == ("R6.3", "R3")
    assert decision.letter == letter


def test_registry_person_whose_installment_is_unpaid_has_dispatcher_access_R7_4() -> None:
    lapsed_on = date(2026, 4, 2)  # attachment() ends 2026-04-01, the April installment's due date
    decision = needs_approval(
        registry(CLINIC_CAT2), CLINIC_CAT2, ["MRI"], lapsed_on, new_event=True, attachment_letters=[attachment()]
    )
    assert decision.needs_approval
    assert decision.rules == ("R7.4", "R3.1")
    assert "dispatcher access" in decision.reasons[0].message


def test_registry_person_before_the_letter_reaches_the_clinic_goes_through_the_console_R7_2() -> None:
    decision = needs_approval(
        registry(CLINIC_CAT2),
        CLINIC_CAT2,
        ["MRI"],
        date(2026, 1, 12),
        new_event=True,
        attachment_letters=[attachment()],
    )
    assert decision.needs_approval
    assert decision.rules == ("R7.2", "R3.1")


def test_registry_person_without_any_attachment_letter_goes_through_the_console_R6_1() -> None:
    decision = needs_approval(registry(CLINIC_CAT2), CLINIC_CAT2, ["MRI"], IN_LETTER, new_event=True)
    assert decision.needs_approval
    assert decision.rules == ("R6.1", "R3.1")


def test_approval_decision_is_json_ready() -> None:
    """R3: the explained answer reaches the API and the audit log intact."""
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=[make_letter()]
    )
    body = decision.as_dict()
    assert body["needs_approval"] is False
    assert body["letter_number"] == "LG-2026-000123"
    assert body["reasons"][0]["rule"] == "R3"


SERVICES = ["blood test", "x-ray", "MRI", "therapist consultation"]
letters_strategy = st.lists(
    st.builds(
        lambda n, clinic, services, issued, days, status: LetterFacts(
            number=f"LG-2026-{n:06d}",
            clinic_id=clinic,
            services=frozenset(services),
            issued_on=issued,
            valid_until=issued + timedelta(days=days),
            status=status,
        ),
        n=st.integers(1, 999),
        clinic=st.sampled_from([CLINIC_CAT2, CLINIC_CAT2_OTHER]),
        services=st.sets(st.sampled_from(SERVICES), max_size=4),
        issued=st.dates(date(2026, 1, 1), date(2026, 12, 31)),
        days=st.integers(0, 62),
        status=st.sampled_from(list(LetterStatus)),
    ),
    max_size=5,
)


@settings(deadline=None, max_examples=300)
@given(
    letters=letters_strategy,
    on=st.dates(date(2026, 1, 1), date(2027, 3, 31)),
    wanted=st.sets(st.sampled_from(SERVICES), max_size=3),
    clinic=st.sampled_from([CLINIC_CAT2, CLINIC_CAT2_OTHER]),
    registry_elsewhere=st.booleans(),
)
def test_an_expired_letter_never_authorizes_a_visit_property_R3_3(
    letters: list[LetterFacts], on: date, wanted: set[str], clinic: int, registry_elsewhere: bool
) -> None:
    person = registry(99) if registry_elsewhere else dispatcher()
    decision = needs_approval(person, clinic, wanted, on, new_event=False, letters=letters)
    assert decision.reasons, "every answer is explained"
    if decision.letter is not None:
        letter = decision.letter
        assert not decision.needs_approval
        assert letter.status is LetterStatus.ACTIVE
        assert letter.issued_on <= on <= letter.valid_until
        assert letter.clinic_id == clinic
        assert {s.casefold() for s in wanted} <= {s.casefold() for s in letter.services}
    else:
        assert decision.needs_approval
    if all(not letter.is_valid_on(on) for letter in letters):
        assert decision.needs_approval
    if not decision.needs_approval:
        assert decision.letter is not None


def test_registry_person_whose_clinic_left_the_program_is_served_through_the_console_R5_4() -> None:
    """The attachment is still in force on paper, but the clinic left the list: every visit needs the console."""
    decision = needs_approval(
        registry(CLINIC_CAT2),
        CLINIC_CAT2,
        ["MRI"],
        date(2026, 2, 1),
        new_event=True,
        attachment_letters=[attachment()],
        attached_clinic_listed=False,
    )
    assert decision.needs_approval
    assert decision.channel is BookingChannel.CONSOLE
    assert decision.rules == ("R5.4", "R3.1")
    assert decision.reasons[0].facts["attached_clinic_id"] == CLINIC_CAT2


def test_letter_of_one_event_does_not_cover_a_visit_for_new_complaints_R11_5_R3_1() -> None:
    """A valid letter for stomach pain never covers chest pain: new complaints are a new event."""
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=True, letters=[make_letter()]
    )
    assert decision.needs_approval and decision.letter is None
    assert decision.rules == ("R3.1",)


def test_every_reason_carries_its_facts_and_the_answer_its_wire_form_R3_1_R3() -> None:
    """Mutation testing showed fact keys and the JSON form could change unnoticed: they are the audit trail."""
    new = needs_approval(dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=True)
    assert new.reasons[0].facts == {"insured_id": 100, "clinic_id": CLINIC_CAT2, "on": "2026-03-10"}
    assert "new insured event" in new.reasons[0].message
    letter = make_letter()
    within = needs_approval(dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=[letter])
    assert within.reasons[0].facts == {
        "letter_number": "LG-2026-000123",
        "clinic_id": CLINIC_CAT2,
        "issued_on": "2026-03-02",
        "valid_until": "2026-04-02",
        "status": "active",
        "services": ["blood test"],
    }
    assert within.as_dict() == {
        "needs_approval": False,
        "channel": "console",
        "letter_number": "LG-2026-000123",
        "reasons": [r.as_dict() for r in within.reasons],
    }
    assert new.as_dict()["letter_number"] is None
    left = needs_approval(
        registry(CLINIC_CAT2), CLINIC_CAT2, ["MRI"], date(2026, 2, 1), new_event=True, attached_clinic_listed=False
    )
    assert left.reasons[0].message.startswith("the attached clinic has left the program's list")
    assert left.reasons[0].facts == {
        "insured_id": 101,
        "clinic_id": CLINIC_CAT2,
        "on": "2026-02-01",
        "attached_clinic_id": CLINIC_CAT2,
    }
