"""Who is calling: the authenticated principal every handler and socket works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

ROLE_INSURED: Final = "insured"
ROLE_DOCTOR: Final = "doctor"
ROLE_DISPATCHER: Final = "dispatcher"
ROLE_HR: Final = "hr"
ROLE_ADMIN: Final = "admin"
STAFF_ROLES: Final = frozenset({ROLE_DOCTOR, ROLE_DISPATCHER, ROLE_HR, ROLE_ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an insured person or a staff account, in one session."""

    subject_type: str
    subject_id: int
    role: str
    session_id: str
    token_expires_at: datetime

    @property
    def key(self) -> str:
        """A stable string naming the subject (``insured:12``), used in chat and bus channels."""
        return f"{self.subject_type}:{self.subject_id}"

    @property
    def is_insured(self) -> bool:
        """Whether this is an insured person."""
        return self.role == ROLE_INSURED
