"""Boundaries of the approval check (R3.1-R3.3, R2.5, R6.2, R6.3), found by mutation testing (issue 9).

Each test pins one comparison or one choice of ``needs_approval`` that a surviving mutant could flip
without any other test noticing: ``<=`` against ``<`` on services and dates, which letter is returned
or cited when several qualify, and the facts each reason carries for the audit trail.
"""

from __future__ import annotations

from datetime import date

from server.domain.approval import BookingChannel, needs_approval
from server.domain.coverage_types import LetterStatus
from tests.domain.coverage_facts import (
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    attachment,
    dispatcher,
    make_letter,
    registry,
)

IN_LETTER = date(2026, 3, 10)  # make_letter() is valid 2026-03-02..2026-04-02
LETTER_FACTS = {
    "letter_number": "LG-2026-000123",
    "clinic_id": CLINIC_CAT2,
    "issued_on": "2026-03-02",
    "valid_until": "2026-04-02",
    "status": "active",
}


def test_a_visit_for_exactly_all_of_the_letters_services_needs_no_approval_R3_2() -> None:
    """R3.2 asks for a service *not named* in the letter: asking for all of them is within it (``<=``, not ``<``)."""
    decision = needs_approval(
        dispatcher(),
        CLINIC_CAT2,
        ["therapist consultation", "blood test"],
        IN_LETTER,
        new_event=False,
        letters=[make_letter()],
    )
    assert not decision.needs_approval
    assert decision.rules == ("R3",)
    assert decision.reasons[0].facts == {**LETTER_FACTS, "services": ["therapist consultation", "blood test"]}


def test_of_two_letters_covering_the_visit_the_one_valid_longest_is_used_R3() -> None:
    """R3: the visit is booked under the letter that stays valid longest, whatever order the letters come in."""
    short = make_letter(number="LG-2026-000001", issued_on=date(2026, 3, 5), valid_until=date(2026, 3, 20))
    long = make_letter(number="LG-2026-000002", issued_on=date(2026, 3, 1), valid_until=date(2026, 4, 30))
    for letters in ([short, long], [long, short]):
        decision = needs_approval(
            dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=letters
        )
        assert decision.letter == long
        assert decision.reasons[0].facts["letter_number"] == "LG-2026-000002"


def test_a_letter_covering_the_visit_wins_over_a_longer_one_that_does_not_R3_R3_2() -> None:
    """R3/R3.2: every valid letter is tried, not only the longest."""
    narrow = make_letter(number="LG-2026-000009", services=frozenset({"x-ray"}), valid_until=date(2026, 5, 1))
    covering = make_letter(number="LG-2026-000010")
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=[narrow, covering]
    )
    assert not decision.needs_approval
    assert decision.letter == covering


def test_the_missing_services_are_counted_against_the_closest_letter_R3_2() -> None:
    """R3.2 names the valid letter with most of the requested services, and only the services it lacks."""
    one = make_letter(number="LG-2026-000001", services=frozenset({"blood test"}))
    two = make_letter(number="LG-2026-000002", services=frozenset({"blood test", "x-ray"}))
    for letters in ([one, two], [two, one]):
        decision = needs_approval(
            dispatcher(), CLINIC_CAT2, ["blood test", "x-ray", "MRI"], IN_LETTER, new_event=False, letters=letters
        )
        assert decision.needs_approval
        assert decision.rules == ("R3.2",)
        assert decision.reasons[0].facts == {
            **LETTER_FACTS,
            "letter_number": "LG-2026-000002",
            "missing_services": ["MRI"],
        }
        assert decision.reasons[0].message.startswith("MRI not named in the valid letter of guarantee LG-2026-000002")


def test_a_letter_is_expired_from_the_day_after_its_last_day_R3_3() -> None:
    """R3.3 boundary: valid on ``valid_until`` itself (R3), expired the next day with the letter's facts."""
    letter = make_letter()
    on_last_day = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], date(2026, 4, 2), new_event=False, letters=[letter]
    )
    assert on_last_day.rules == ("R3",)
    next_day = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], date(2026, 4, 3), new_event=False, letters=[letter]
    )
    assert next_day.rules == ("R3.3",)
    assert next_day.reasons[0].facts == LETTER_FACTS


def test_the_latest_expired_letter_is_cited_R3_3() -> None:
    """R3.3 cites the letter that expired last, whatever the order."""
    older = make_letter(number="LG-2026-000001", issued_on=date(2026, 1, 10), valid_until=date(2026, 2, 10))
    newer = make_letter(number="LG-2026-000002", issued_on=date(2026, 1, 5), valid_until=date(2026, 3, 1))
    for letters in ([older, newer], [newer, older]):
        decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=letters)
        assert decision.rules == ("R3.3",)
        assert decision.reasons[0].facts["letter_number"] == "LG-2026-000002"
        assert decision.reasons[0].message.startswith("letter of guarantee LG-2026-000002 expired on 2026-03-01")


def test_an_expired_letter_does_not_add_r3_3_beside_a_valid_one_R3_2_R3_3() -> None:
    """R3.3 is for an expired letter while no valid one is at hand; with a valid one only R3.2 applies."""
    expired = make_letter(number="LG-2026-000001", issued_on=date(2026, 1, 5), valid_until=date(2026, 2, 5))
    valid = make_letter(number="LG-2026-000002", services=frozenset({"x-ray"}))
    decision = needs_approval(
        dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False, letters=[expired, valid]
    )
    assert decision.rules == ("R3.2",)


def test_a_finished_letter_past_its_date_is_not_an_expired_one_R3_3_R2_5() -> None:
    """R3.3 is about an *active* letter whose month ran out; a closed one says it was closed (R2.5)."""
    closed = make_letter(status=LetterStatus.CLOSED)
    decision = needs_approval(dispatcher(), CLINIC_CAT2, [], date(2026, 5, 1), new_event=False, letters=[closed])
    assert decision.rules == ("R2.5",)
    assert decision.reasons[0].facts == {**LETTER_FACTS, "status": "closed"}
    assert decision.reasons[0].message == (
        "letter of guarantee LG-2026-000123 is closed and no longer authorizes visits: "
        "the console must approve the visit"
    )


def test_the_last_issued_finished_letter_is_cited_R2_5() -> None:
    """R2.5 names the most recently issued finished letter (by issue date, then number), whatever the order."""
    first = make_letter(number="LG-2026-000001", issued_on=date(2026, 2, 1), status=LetterStatus.CLOSED)
    second = make_letter(number="LG-2026-000002", issued_on=date(2026, 3, 1), status=LetterStatus.CANCELLED)
    for letters in ([first, second], [second, first]):
        decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=letters)
        assert decision.reasons[0].facts["letter_number"] == "LG-2026-000002"
        assert decision.reasons[0].facts["status"] == "cancelled"


def test_a_letter_issued_later_names_its_first_day_R2_5() -> None:
    """R2.5: the day before a letter's issue it does not authorize; the earliest such letter is named."""
    later = make_letter(number="LG-2026-000002", issued_on=date(2026, 3, 20), valid_until=date(2026, 4, 20))
    sooner = make_letter(number="LG-2026-000001", issued_on=date(2026, 3, 11), valid_until=date(2026, 4, 11))
    for letters in ([later, sooner], [sooner, later]):
        decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=letters)
        assert decision.needs_approval
        assert decision.rules == ("R2.5",)
        assert decision.reasons[0].facts == {
            **LETTER_FACTS,
            "letter_number": "LG-2026-000001",
            "issued_on": "2026-03-11",
            "valid_until": "2026-04-11",
        }
        assert decision.reasons[0].message == (
            "letter of guarantee LG-2026-000001 is only issued on 2026-03-11: the console must approve the visit"
        )


def test_letters_to_other_clinics_are_listed_once_and_sorted_R2_5() -> None:
    """R2.5 facts: the clinics the event's letters went to, each once, in order."""
    letters = [
        make_letter(number="LG-2026-000003", clinic_id=40),
        make_letter(number="LG-2026-000001", clinic_id=CLINIC_CAT2_OTHER),
        make_letter(number="LG-2026-000002", clinic_id=40),
    ]
    decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=letters)
    assert decision.reasons[0].facts == {
        "insured_id": 100,
        "clinic_id": CLINIC_CAT2,
        "on": "2026-03-10",
        "letter_clinic_ids": [CLINIC_CAT2_OTHER, 40],
    }
    assert decision.reasons[0].message == (
        "the letters of guarantee of this event are addressed to other clinics: the console must approve the visit"
    )


def test_no_letter_at_all_carries_the_visit_facts_R2_5() -> None:
    decision = needs_approval(dispatcher(), CLINIC_CAT2, ["blood test"], IN_LETTER, new_event=False)
    assert decision.reasons[0].facts == {"insured_id": 100, "clinic_id": CLINIC_CAT2, "on": "2026-03-10"}
    assert decision.reasons[0].message == (
        "no letter of guarantee has been sent to this clinic for this insured event: the console must approve the visit"
    )
    assert decision.letter is None and decision.channel is BookingChannel.CONSOLE


def test_an_attachment_letter_to_another_clinic_does_not_exempt_at_the_attached_one_R6_2() -> None:
    """R6.2 exempts only with the attached clinic's own letter in force; a letter to another clinic is not it."""
    decision = needs_approval(
        registry(CLINIC_CAT2),
        CLINIC_CAT2,
        ["MRI"],
        date(2026, 2, 1),
        new_event=True,
        attachment_letters=[attachment(clinic_id=CLINIC_CAT2_OTHER)],
    )
    assert decision.needs_approval
    assert decision.channel is BookingChannel.CONSOLE
    assert decision.rules == ("R6.1", "R3.1")


def test_the_exemption_carries_the_visit_and_the_letter_in_force_R6_2() -> None:
    decision = needs_approval(
        registry(CLINIC_CAT2), CLINIC_CAT2, ["MRI"], date(2026, 2, 1), new_event=True, attachment_letters=[attachment()]
    )
    assert decision.needs_approval is False  # a flag for the API, not merely falsy
    assert decision.reasons[0].facts == {"insured_id": 101, "clinic_id": CLINIC_CAT2, "on": "2026-02-01"}
    assert decision.reasons[0].message == (
        "visit to the attached clinic: book directly with its reception, no approval needed"
    )
    assert decision.letter is None
    assert decision.as_dict()["channel"] == "clinic_registry"


def test_another_clinic_names_the_attached_one_R6_3() -> None:
    decision = needs_approval(registry(CLINIC_CAT2), CLINIC_CAT2_OTHER, ["MRI"], date(2026, 2, 1), new_event=True)
    assert decision.rules == ("R6.3", "R3.1")
    assert decision.reasons[0].facts == {
        "insured_id": 101,
        "clinic_id": CLINIC_CAT2_OTHER,
        "on": "2026-02-01",
        "attached_clinic_id": CLINIC_CAT2,
    }


def test_a_follow_up_visit_says_so_R3() -> None:
    decision = needs_approval(dispatcher(), CLINIC_CAT2, [], IN_LETTER, new_event=False, letters=[make_letter()])
    assert decision.reasons[0].message == (
        "within letter of guarantee LG-2026-000123 (valid until 2026-04-02) for a follow-up visit at its clinic: "
        "no new approval needed"
    )
    assert decision.reasons[0].facts["services"] == []
