"""Append-only record: meaningful notes and dated addenda by the treating doctor (R11.9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.record import new_addendum, require_meaningful

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", [".", "-", "...", " ? ", "ok", "—!"])
def test_r11_9_notes_without_content_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        require_meaningful(text, "notes", 100)
    assert caught.value.code == "notes_not_meaningful"


def test_r11_9_short_real_notes_pass_stripped() -> None:
    assert require_meaningful("  ОРВИ  ", "notes", 100) == "ОРВИ"
    assert require_meaningful("J06", "notes", 100) == "J06"


def test_r11_9_addendum_by_the_treating_doctor_to_a_completed_record() -> None:
    addendum = new_addendum(4, "completed", 7, 7, " Swab result: negative. ", NOW)
    assert (addendum.consultation_id, addendum.author_id, addendum.text, addendum.created_at) == (
        4,
        7,
        "Swab result: negative.",
        NOW,
    )


def test_r11_9_addendum_refusals() -> None:
    with pytest.raises(NotFound):
        new_addendum(4, "completed", 7, 8, "another doctor's text", NOW)
    with pytest.raises(Conflict) as caught:
        new_addendum(4, "active", 7, 7, "too early for an addendum", NOW)
    assert caught.value.code == "record_not_final"
    with pytest.raises(InvalidInput):
        new_addendum(4, "completed", 7, 7, ".", NOW)
