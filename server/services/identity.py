"""Who is calling: the authenticated principal every handler and socket works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.domain.roles import ROLE_ADMIN, ROLE_DISPATCHER, ROLE_DOCTOR, ROLE_HR, ROLE_INSURED, STAFF_ROLES

__all__ = [
    "ROLE_ADMIN",
    "ROLE_DISPATCHER",
    "ROLE_DOCTOR",
    "ROLE_HR",
    "ROLE_INSURED",
    "STAFF_ROLES",
    "Principal",
]


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
