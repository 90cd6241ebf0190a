"""The red-flag checklist before a request joins the queue (R11.6)."""

from __future__ import annotations

import pytest

from server.domain.errors import InvalidInput
from server.domain.red_flags import CODES, assess_red_flags, checklist_view, emergency_instruction

NO = dict.fromkeys(CODES, False)


def test_r11_6_checklist_covers_the_six_red_flags_in_russian_and_english() -> None:
    assert CODES == ("chest_pain", "breathing", "stroke_signs", "heavy_bleeding", "loss_of_consciousness", "self_harm")
    assert all(item["ru"] and item["en"] for item in checklist_view())


def test_r11_6_all_no_is_not_urgent() -> None:
    assessment = assess_red_flags(NO)
    assert not assessment.urgent and assessment.flags == ()
    assert assessment.as_dict() == NO


def test_r11_6_any_yes_is_urgent_and_names_the_flags_in_checklist_order() -> None:
    assessment = assess_red_flags({**NO, "self_harm": True, "chest_pain": True})
    assert assessment.urgent
    assert assessment.flags == ("chest_pain", "self_harm")


def test_r11_6_instruction_says_103_and_112() -> None:
    instruction = emergency_instruction()
    assert instruction["phones"] == ["103", "112"]
    assert "103" in str(instruction["ru"]) and "112" in str(instruction["en"])


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        (None, "red_flags_required"),
        ({"chest_pain": False}, "red_flags_required"),
        ({**NO, "headache": True}, "invalid_red_flags"),
        ({**NO, "breathing": "no"}, "invalid_red_flags"),
        ({**NO, "breathing": 1}, "invalid_red_flags"),
    ],
)
def test_r11_6_missing_partial_unknown_or_non_boolean_answers_are_refused(answers: object, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        assess_red_flags(answers)  # type: ignore[arg-type]
    assert caught.value.code == code
