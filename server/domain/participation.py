"""Who takes part in a consultation and who may write to its chat now (medical secrecy; checklist B4, C1, C5).

- the consultation's patient (insured person ``insured_person_id``) and its assigned doctor
  (staff ``doctor_id`` with role ``doctor``) may read the chat in any status;
- the patient may write while the consultation is ``queued``, ``offered`` or ``active`` (to add
  details while waiting); the doctor only while it is ``active``; nobody writes once it is
  ``completed`` or ``cancelled`` (``consultation_closed``);
- nobody else reads or writes, admins included: a non-participant is told the consultation does
  not exist (``not_found``).

Pure functions on plain data: the chat service, the socket hub and the socket commands all ask
these, so the rule lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from server.domain.errors import Conflict, DomainError, NotFound
from server.domain.roles import ROLE_DOCTOR

PATIENT_WRITES: Final = frozenset({"queued", "offered", "active"})
DOCTOR_WRITES: Final = frozenset({"active"})
CLOSED: Final = frozenset({"completed", "cancelled"})

ERR_CONSULTATION_CLOSED: Final = "consultation_closed"
ERR_CONSULTATION_NOT_ACTIVE: Final = "consultation_not_active"

Part = Literal["patient", "doctor"]


@dataclass(frozen=True, slots=True)
class ConsultationAccess:
    """What chat needs to know about a consultation: who takes part, its state, its last sequence."""

    id: int
    status: str
    insured_person_id: int
    doctor_id: int | None
    last_seq: int


class Caller(Protocol):
    """Whoever asks: an authenticated principal (only these three facts matter here)."""

    @property
    def subject_type(self) -> str: ...

    @property
    def subject_id(self) -> int: ...

    @property
    def role(self) -> str: ...


def participant_of(access: ConsultationAccess | None, caller: Caller) -> Part | None:
    """``"patient"``, ``"doctor"`` or None: the caller's part in this consultation."""
    if access is None:
        return None
    if caller.subject_type == "insured" and caller.subject_id == access.insured_person_id:
        return "patient"
    if (
        caller.subject_type == "staff"
        and caller.role == ROLE_DOCTOR
        and access.doctor_id is not None
        and caller.subject_id == access.doctor_id
    ):
        return "doctor"
    return None


def write_refusal(access: ConsultationAccess | None, caller: Caller) -> DomainError | None:
    """Why this caller may not write to the chat now, or None when they may."""
    part = participant_of(access, caller)
    if part is None or access is None:
        return NotFound("no such consultation")
    if access.status in CLOSED:
        return Conflict("the consultation has ended; the chat is read-only", code=ERR_CONSULTATION_CLOSED)
    allowed = PATIENT_WRITES if part == "patient" else DOCTOR_WRITES
    if access.status not in allowed:
        return Conflict("the consultation is not active yet", code=ERR_CONSULTATION_NOT_ACTIVE)
    return None
