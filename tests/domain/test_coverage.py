"""Is it an insured event? Coverage by component, policy dates and the person's status (R2.1, R2.2, R10.1, R10.2)."""

from __future__ import annotations

from datetime import date

import pytest

from server.domain.coverage import MAX_COMPLAINTS_CHARS, check_complaints, evaluate_coverage
from server.domain.coverage_types import Component
from server.domain.errors import InvalidInput
from tests.domain.coverage_facts import dispatcher, make_policy, make_program


def test_component_in_program_on_valid_day_is_an_insured_event_R2_2_R10_2() -> None:
    decision = evaluate_coverage(dispatcher(), make_policy(), make_program(), Component.OUTPATIENT, date(2026, 6, 10))
    assert decision.allowed
    assert decision.rules[0] == "R2.2"
    assert "R10.2" in decision.rules
    assert decision.reasons[0].facts["policy_number"] == "VHI-2026-0007"


def test_component_not_in_program_is_not_covered_and_says_why_R10_1() -> None:
    program = make_program(components=frozenset({Component.OUTPATIENT, Component.TELEMEDICINE}))
    decision = evaluate_coverage(dispatcher(), make_policy(), program, "dental", date(2026, 6, 10))
    assert not decision.allowed
    assert decision.rules == ("R2.2", "R10.1")
    assert "does not include dental care" in decision.reasons[1].message
    assert decision.reasons[1].facts["program_components"] == ["outpatient", "telemedicine"]


@pytest.mark.parametrize(
    ("on", "words"),
    [(date(2025, 12, 31), "only starts on 2026-01-01"), (date(2027, 1, 1), "ended on 2026-12-31")],
)
def test_policy_not_valid_that_day_is_not_covered_R10_2(on: date, words: str) -> None:
    decision = evaluate_coverage(dispatcher(), make_policy(), make_program(), Component.OUTPATIENT, on)
    assert not decision.allowed
    assert decision.rules == ("R2.2", "R10.2")
    assert words in decision.reasons[1].message


@pytest.mark.parametrize("on", [date(2026, 1, 1), date(2026, 12, 31)])
def test_first_and_last_policy_days_are_covered_R10_2(on: date) -> None:
    assert evaluate_coverage(dispatcher(), make_policy(), make_program(), Component.AMBULANCE, on).allowed


def test_every_failing_condition_is_listed_R2_2() -> None:
    program = make_program(components=frozenset({Component.DENTAL}))
    decision = evaluate_coverage(dispatcher(active=False), make_policy(), program, "inpatient", date(2027, 2, 1))
    assert decision.rules == ("R2.2", "R10.2", "R10.2", "R10.1")
    assert decision.reasons[0].message.startswith("not an insured event: ")


def test_unknown_component_is_invalid_input_R10_1() -> None:
    with pytest.raises(InvalidInput) as err:
        evaluate_coverage(dispatcher(), make_policy(), make_program(), "spa", date(2026, 6, 10))
    assert err.value.rules == ("R10.1",)


def test_facts_of_another_policy_are_a_caller_error() -> None:
    """R10.2: coverage is judged on the person's own policy; mixing facts is a bug, not a refusal."""
    program = make_program(id=2)
    with pytest.raises(InvalidInput):
        evaluate_coverage(dispatcher(), make_policy(), program, "dental", date(2026, 6, 10))


def test_console_records_the_complaints_R2_1() -> None:
    assert check_complaints("  sore   throat ").allowed
    empty = check_complaints("   ")
    assert not empty.allowed
    assert empty.rules == ("R2.1",)
    assert not check_complaints("x" * (MAX_COMPLAINTS_CHARS + 1)).allowed
