"""A consultation in progress is never dropped: shift end, hand-over notes, disconnect grace (R11.8).

- A doctor whose shift ends (or whose shift is deleted) keeps the consultation and finishes it;
  nothing is taken away automatically, so the doctor never loses access mid-sentence.
- Another doctor of the specialty who is on duty and connected may take it over, with a
  hand-over note; the leaving doctor hands it to them, and the record keeps who, whom, when, why.
- A doctor who disconnects gets ``grace``; after it the consultation goes back to the front of
  the queue for another doctor (a hand-over with a system note) or, when no other doctor of the
  specialty is there, it also escalates to the duty team (R11.7). The patient is told either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from server.domain.consultation import ConsultationState, Status
from server.domain.errors import Conflict
from server.domain.record import require_meaningful
from server.domain.roster import require_utc

DEFAULT_DISCONNECT_GRACE: Final = timedelta(minutes=2)
MAX_HANDOVER_NOTE_CHARS: Final = 2_000
ERR_HANDOVER_TARGET: Final = "handover_target_unavailable"
ERR_HANDOVER_SELF: Final = "handover_to_self"


class HandoverKind(StrEnum):
    """How a consultation changed hands."""

    DOCTOR = "doctor"  # the doctor handed it to a named colleague, with a note
    DISCONNECT = "disconnect"  # the doctor's connection was gone past the grace; back to the queue


class DisconnectAction(StrEnum):
    """What to do with an active consultation whose doctor is not connected."""

    WAIT = "wait"  # still within the grace
    REQUEUE = "requeue"  # another doctor of the specialty can take it: front of the queue
    REQUEUE_AND_ESCALATE = "requeue_and_escalate"  # nobody else: front of the queue and alert the duty team


@dataclass(frozen=True, slots=True)
class HandoverTarget:
    """The colleague a doctor hands over to, as far as the rule needs."""

    doctor_id: int
    on_duty_for_specialty: bool
    connected: bool
    active: bool = True


def validate_handover(
    state: ConsultationState, from_doctor_id: int, target: HandoverTarget, note: str
) -> tuple[ConsultationState, str]:
    """Check a doctor-to-doctor hand-over (R11.8) and return the new state and the cleaned note.

    Raises:
        Conflict: not active (``invalid_transition``), not the caller's (``not_your_consultation``),
            to oneself (``handover_to_self``), or the colleague is not on duty for the specialty,
            not connected or disabled (``handover_target_unavailable``).
        InvalidInput: an empty or meaningless note.
    """
    if state.status is not Status.ACTIVE:
        raise Conflict(
            f"only an active consultation can be handed over; {state.id} is {state.status.value}",
            code="invalid_transition",
            details={"consultation_id": state.id, "status": state.status.value, "action": "hand over"},
        )
    if state.doctor_id != from_doctor_id:
        raise Conflict(f"consultation {state.id} is not yours", code="not_your_consultation")
    if target.doctor_id == from_doctor_id:
        raise Conflict("you cannot hand a consultation over to yourself", code=ERR_HANDOVER_SELF)
    if not (target.active and target.on_duty_for_specialty and target.connected):
        raise Conflict(
            "the colleague must be on duty for this specialty and connected to take it over (R11.8)",
            code=ERR_HANDOVER_TARGET,
            details={
                "doctor_id": target.doctor_id,
                "on_duty": target.on_duty_for_specialty,
                "connected": target.connected,
            },
        )
    text = require_meaningful(note, "handover_note", MAX_HANDOVER_NOTE_CHARS)
    return ConsultationState(id=state.id, status=Status.ACTIVE, doctor_id=target.doctor_id), text


def disconnect_action(
    connected: bool,
    disconnected_since: datetime | None,
    now: datetime,
    others_available: bool,
    grace: timedelta = DEFAULT_DISCONNECT_GRACE,
) -> DisconnectAction:
    """What happens to an active consultation whose doctor may have vanished (R11.8).

    Args:
        connected: Whether the doctor has a live connection now.
        disconnected_since: When their last connection ended; ``None`` if never connected.
        now: The instant, aware UTC.
        others_available: Whether another connected doctor of the specialty is on duty.
        grace: How long a dropped connection may take to come back.
    """
    require_utc(now)
    if connected:
        return DisconnectAction.WAIT
    if disconnected_since is not None and now - disconnected_since < grace:
        return DisconnectAction.WAIT
    return DisconnectAction.REQUEUE if others_available else DisconnectAction.REQUEUE_AND_ESCALATE


def shift_end_keeps_consultation(state: ConsultationState) -> bool:
    """A doctor whose duty ends keeps their active consultation to finish it (R11.8): never requeued for that.

    This is the rule the assignment follows; it exists as a function so the tests can name it.
    """
    return state.status is Status.ACTIVE and state.doctor_id is not None


def system_note(grace: timedelta) -> str:
    """The hand-over note written when a doctor's connection is gone past the grace."""
    minutes = max(1, int(grace.total_seconds() // 60))
    return f"The doctor's connection was lost for more than {minutes} min; the consultation returned to the queue."
