"""The medical record of a consultation is append-only: meaningful notes, dated addenda (R11.9).

After completion the original notes and diagnosis stay as they were; the treating doctor may
add addenda, each dated and attributed, visible to the patient and audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.roster import require_utc

MIN_MEANINGFUL_CHARS: Final = 3
MAX_ADDENDUM_CHARS: Final = 5_000
ERR_RECORD_NOT_FINAL: Final = "record_not_final"
COMPLETED: Final = "completed"  # consultation.Status.COMPLETED (that module builds on this one)


def _control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in text)


def require_meaningful(value: str, field: str, limit: int, *, min_chars: int = MIN_MEANINGFUL_CHARS) -> str:
    """Clinical text with content: at least ``min_chars`` letters or digits, not ``"."`` or ``"-"``.

    Returns:
        The text, stripped.

    Raises:
        InvalidInput: ``{field}_required`` (empty), ``{field}_not_meaningful``, ``{field}_too_long``,
            ``invalid_{field}`` (control characters).
    """
    text = value.strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty", code=f"{field}_required")
    if len(text) > limit:
        raise InvalidInput(
            f"{field} may be at most {limit} characters", code=f"{field}_too_long", details={"limit": limit}
        )
    if _control(text):
        raise InvalidInput(f"{field} contains control characters", code=f"invalid_{field}")
    if sum(ch.isalnum() for ch in text) < min_chars:
        raise InvalidInput(
            f"{field} must say something: at least {min_chars} letters or digits",
            code=f"{field}_not_meaningful",
            details={"min_chars": min_chars},
        )
    return text


@dataclass(frozen=True, slots=True)
class Addendum:
    """A dated addition to a completed consultation's record, by its treating doctor."""

    consultation_id: int
    author_id: int
    text: str
    created_at: datetime


def new_addendum(
    consultation_id: int, status: str, treating_doctor_id: int | None, author_id: int, text: str, now: datetime
) -> Addendum:
    """An addendum to a completed record (R11.9); the original is never changed.

    Raises:
        NotFound: the author is not the treating doctor (the record is not revealed).
        Conflict: ``record_not_final`` when the consultation is not completed (write notes at completion).
        InvalidInput: empty, meaningless or over-long text.
    """
    require_utc(now)
    if treating_doctor_id != author_id:
        raise NotFound("no such consultation")
    if status != COMPLETED:
        raise Conflict(
            "addenda are added to a completed consultation; its notes are written at completion (R11.9)",
            code=ERR_RECORD_NOT_FINAL,
            details={"consultation_id": consultation_id, "status": status},
        )
    return Addendum(consultation_id, author_id, require_meaningful(text, "addendum", MAX_ADDENDUM_CHARS), now)
