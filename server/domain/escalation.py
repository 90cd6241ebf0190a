"""Nobody waits unseen: offer rounds, connected doctors only, and when a waiting request escalates (R11.7).

A round is the set of offers of one request until every doctor who could take it has passed
(declined or let the offer lapse). Within a round a doctor who passed is never offered the same
request again; a new round starts only after ``round_pause``, so a decline sticks for a while
and offers do not alternate between two silent doctors every timeout. A request escalates - once,
live to the dispatchers and admins on duty - as soon as one of these holds:

- nobody of the specialty is on duty, or nobody on duty is connected;
- everybody on duty is full (at their limit or in their last minutes of duty);
- the round is over (everyone eligible passed);
- ``max_lapses`` offers lapsed, or the patient has waited ``max_wait``;
- the request is urgent (red flags, R11.6): shown to the dispatchers at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from server.domain.assignment import DEFAULT_MIN_REMAINING_SHIFT, DoctorLoad, choose_doctor, ineligibility
from server.domain.roster import require_utc

DEFAULT_MAX_LAPSES: Final = 2
DEFAULT_MAX_WAIT: Final = timedelta(minutes=10)
DEFAULT_ROUND_PAUSE: Final = timedelta(minutes=3)


class EscalationReason(StrEnum):
    """Why a waiting request was escalated to the duty team (R11.7)."""

    URGENT = "urgent"
    NOBODY_ON_DUTY = "nobody_on_duty"
    NOBODY_CONNECTED = "nobody_connected"
    ALL_FULL = "all_full"
    ROUND_EXHAUSTED = "round_exhausted"
    OFFERS_LAPSED = "offers_lapsed"
    WAITED_TOO_LONG = "waited_too_long"
    DOCTOR_DISCONNECTED = "doctor_disconnected"


PATIENT_MESSAGES: Final[dict[EscalationReason, str]] = {
    EscalationReason.URGENT: "Your request is urgent: every doctor on duty sees it and the duty team is alerted. "
    "If you feel worse, call 103 or 112 now.",
    EscalationReason.NOBODY_ON_DUTY: "No doctor of this specialty is on duty. The duty team has been alerted; "
    "you can ask a general practitioner instead or wait for a call-back.",
    EscalationReason.NOBODY_CONNECTED: "No doctor of this specialty is online right now. The duty team has been "
    "alerted; you can ask a general practitioner instead or wait for a call-back.",
    EscalationReason.ALL_FULL: "Every doctor of this specialty is busy. The duty team has been alerted; "
    "your place in the queue is kept.",
    EscalationReason.ROUND_EXHAUSTED: "The doctors on duty could not take your request yet. The duty team has been "
    "alerted; your place in the queue is kept, or ask for a general practitioner or a call-back.",
    EscalationReason.OFFERS_LAPSED: "The doctors on duty have not answered yet. The duty team has been alerted; "
    "your place in the queue is kept.",
    EscalationReason.WAITED_TOO_LONG: "You have been waiting longer than we aim for. The duty team has been alerted.",
    EscalationReason.DOCTOR_DISCONNECTED: "Your doctor lost the connection and no other doctor of this specialty "
    "is available. The duty team has been alerted; you stay first in line.",
}


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """The bounds after which a waiting request escalates, and the pause between offer rounds.

    Attributes:
        max_lapses: Lapsed offers of one request before it escalates.
        max_wait: How long a patient may wait before it escalates.
        round_pause: How long after a round ends (everyone passed) a new one may start.
    """

    max_lapses: int = DEFAULT_MAX_LAPSES
    max_wait: timedelta = DEFAULT_MAX_WAIT
    round_pause: timedelta = DEFAULT_ROUND_PAUSE

    def __post_init__(self) -> None:
        if self.max_lapses < 1 or self.max_wait <= timedelta(0) or self.round_pause < timedelta(0):
            raise ValueError("escalation bounds are positive")


@dataclass(frozen=True, slots=True)
class WaitingRequest:
    """A queued request as the escalation and offer rules see it.

    Attributes:
        consultation_id: Its id.
        specialty: The specialty asked for.
        requested_at: When the patient asked (aware UTC).
        skipped_doctor_ids: Doctors who passed in the current round.
        lapses: Offers of this request that lapsed, in all rounds.
        round_ended_at: When the current round ended (everyone eligible passed), or ``None``.
        escalated_at: When it was escalated, or ``None``; it escalates at most once.
        urgent: Red flags were answered "yes" (R11.6).
    """

    consultation_id: int
    specialty: str
    requested_at: datetime
    skipped_doctor_ids: frozenset[int] = frozenset()
    lapses: int = 0
    round_ended_at: datetime | None = None
    escalated_at: datetime | None = None
    urgent: bool = False


class OfferAction(StrEnum):
    """What the assignment does with a queued request now."""

    OFFER = "offer"  # offer it to ``doctor_id``
    NEW_ROUND = "new_round"  # clear the skipped list, then offer it to ``doctor_id``
    END_ROUND = "end_round"  # everyone eligible passed: record the end of the round (and escalate)
    WAIT = "wait"  # nobody can take it now


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """The decision of ``plan_offer``."""

    action: OfferAction
    doctor_id: int | None = None


def connected_only(candidates: Iterable[DoctorLoad], connected_ids: frozenset[int]) -> list[DoctorLoad]:
    """Doctors without a live connection are not offered requests (R11.7)."""
    return [c for c in candidates if c.doctor_id in connected_ids]


def plan_offer(
    request: WaitingRequest,
    candidates: Iterable[DoctorLoad],
    max_active: int,
    now: datetime,
    policy: EscalationPolicy = EscalationPolicy(),
    min_remaining_shift: timedelta = DEFAULT_MIN_REMAINING_SHIFT,
) -> OfferPlan:
    """Whom to offer a queued request to, keeping a decline for the whole round (R11.7).

    ``candidates`` must already be the connected doctors on duty (see ``connected_only``).
    Within a round, doctors in ``skipped_doctor_ids`` are never chosen. When nobody unskipped
    can take it but someone skipped could, the round is over: ``END_ROUND`` once, then ``WAIT``
    until ``round_pause`` has passed, then ``NEW_ROUND`` (the skipped list is cleared).
    """
    require_utc(now)
    pool = list(candidates)
    doctor_id = choose_doctor(pool, request.specialty, request.skipped_doctor_ids, max_active, now, min_remaining_shift)
    if doctor_id is not None:
        return OfferPlan(OfferAction.OFFER, doctor_id)
    if not request.skipped_doctor_ids:
        return OfferPlan(OfferAction.WAIT)
    fresh = choose_doctor(pool, request.specialty, frozenset(), max_active, now, min_remaining_shift)
    if fresh is None:
        return OfferPlan(OfferAction.WAIT)  # the skipped ones cannot take it either (full, off duty)
    if request.round_ended_at is None:
        return OfferPlan(OfferAction.END_ROUND)
    if now - request.round_ended_at >= policy.round_pause:
        return OfferPlan(OfferAction.NEW_ROUND, fresh)
    return OfferPlan(OfferAction.WAIT)


def escalation_due(
    request: WaitingRequest,
    on_duty: Iterable[DoctorLoad],
    connected_ids: frozenset[int],
    max_active: int,
    now: datetime,
    policy: EscalationPolicy = EscalationPolicy(),
    min_remaining_shift: timedelta = DEFAULT_MIN_REMAINING_SHIFT,
) -> EscalationReason | None:
    """Whether a queued request escalates now, and why; ``None`` if it did already or need not (R11.7).

    Args:
        request: The waiting request.
        on_duty: The doctors on duty for its specialty now, connected or not, with loads.
        connected_ids: Doctors with a live connection.
        max_active: The global limit of simultaneous consultations (a doctor's own wins).
        now: The instant, aware UTC.
        policy: The bounds.
        min_remaining_shift: Duty that must remain for a new consultation.
    """
    require_utc(now)
    if request.escalated_at is not None:
        return None
    if request.urgent:
        return EscalationReason.URGENT
    doctors = [d for d in on_duty if request.specialty in d.specialties and d.on_duty]
    if not doctors:
        return EscalationReason.NOBODY_ON_DUTY
    online = connected_only(doctors, connected_ids)
    if not online:
        return EscalationReason.NOBODY_CONNECTED
    if all(
        ineligibility(d, request.specialty, frozenset(), max_active, now, min_remaining_shift) is not None
        for d in online
    ):
        return EscalationReason.ALL_FULL
    if request.round_ended_at is not None:
        return EscalationReason.ROUND_EXHAUSTED
    if request.lapses >= policy.max_lapses:
        return EscalationReason.OFFERS_LAPSED
    if now - request.requested_at >= policy.max_wait:
        return EscalationReason.WAITED_TOO_LONG
    return None


def after_lapse(request: WaitingRequest, doctor_id: int) -> WaitingRequest:
    """The request after an offer to ``doctor_id`` lapsed: that doctor is skipped this round, one more lapse."""
    return replace(request, skipped_doctor_ids=request.skipped_doctor_ids | {doctor_id}, lapses=request.lapses + 1)


def after_decline(request: WaitingRequest, doctor_id: int) -> WaitingRequest:
    """The request after ``doctor_id`` declined: skipped for the rest of the round (R11.7)."""
    return replace(request, skipped_doctor_ids=request.skipped_doctor_ids | {doctor_id})
