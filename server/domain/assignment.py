"""Which on-duty doctor is offered the next queued consultation, and by when they must accept (R11.1, R11.2)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from server.domain.roster import require_utc

DEFAULT_MIN_REMAINING_SHIFT: Final = timedelta(minutes=10)


class Ineligible(StrEnum):
    """Why a doctor is not offered a consultation (for logs and the admin's queue view)."""

    OFF_DUTY = "off_duty"
    OTHER_SPECIALTY = "other_specialty"
    SKIPPED = "skipped"
    AT_CAPACITY = "at_capacity"
    SHIFT_ENDING = "shift_ending"


@dataclass(frozen=True, slots=True)
class DoctorLoad:
    """A doctor as the assignment sees them.

    Attributes:
        doctor_id: The doctor's staff id.
        specialties: The specialties they are on duty for now.
        active_count: Consultations they hold: active ones plus pending offers (so a doctor who
            accepts every offer still stays within the limit).
        on_duty: Whether they are on a shift now.
        shift_ends_at: When their current duty ends (aware UTC); ``None`` when off duty.
        max_active: Their own limit of simultaneous consultations; ``None`` uses the global one.
    """

    doctor_id: int
    specialties: frozenset[str]
    active_count: int
    on_duty: bool
    shift_ends_at: datetime | None
    max_active: int | None = None


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """A queued consultation waiting for an offer, oldest first in a queue."""

    consultation_id: int
    specialty: str
    skipped_doctor_ids: frozenset[int] = frozenset()


def ineligibility(
    candidate: DoctorLoad,
    specialty: str,
    skipped: frozenset[int],
    max_active: int,
    now: datetime,
    min_remaining_shift: timedelta = DEFAULT_MIN_REMAINING_SHIFT,
) -> Ineligible | None:
    """Why ``candidate`` may not be offered this consultation, or ``None`` if they may.

    A doctor whose duty ends within ``min_remaining_shift`` gets no new consultation: it would
    only be handed over again.
    """
    if not candidate.on_duty or candidate.shift_ends_at is None:
        return Ineligible.OFF_DUTY
    if specialty not in candidate.specialties:
        return Ineligible.OTHER_SPECIALTY
    if candidate.doctor_id in skipped:
        return Ineligible.SKIPPED
    limit = max_active if candidate.max_active is None else candidate.max_active
    if candidate.active_count >= limit:
        return Ineligible.AT_CAPACITY
    if candidate.shift_ends_at - now <= min_remaining_shift:
        return Ineligible.SHIFT_ENDING
    return None


def choose_doctor(
    candidates: Iterable[DoctorLoad],
    specialty: str,
    skipped: frozenset[int],
    max_active: int,
    now: datetime,
    min_remaining_shift: timedelta = DEFAULT_MIN_REMAINING_SHIFT,
) -> int | None:
    """The doctor to offer a consultation to, or ``None`` when nobody can take it now.

    Eligible: on duty for the specialty, not skipped for this consultation, under their limit of
    simultaneous consultations, and with more than ``min_remaining_shift`` of duty left. Among
    them the least loaded wins; ties go to the one whose duty ends latest (fewer handovers), then
    the lowest id, so the choice is deterministic.

    Args:
        candidates: The doctors to consider.
        specialty: The consultation's specialty.
        skipped: Doctors who declined, let the offer lapse or handed it over.
        max_active: The limit of simultaneous consultations per doctor, unless their own is set.
        now: The instant, aware UTC.
        min_remaining_shift: Duty that must remain for a new consultation.

    Returns:
        The chosen doctor's id.
    """
    require_utc(now)
    best: tuple[int, float, int] | None = None
    for candidate in candidates:
        if ineligibility(candidate, specialty, skipped, max_active, now, min_remaining_shift) is not None:
            continue
        assert candidate.shift_ends_at is not None  # checked by ineligibility
        key = (candidate.active_count, -candidate.shift_ends_at.timestamp(), candidate.doctor_id)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def plan_offers(
    queue: Sequence[QueuedItem],
    candidates: Iterable[DoctorLoad],
    max_active: int,
    now: datetime,
    min_remaining_shift: timedelta = DEFAULT_MIN_REMAINING_SHIFT,
) -> list[tuple[int, int]]:
    """Offers for a whole queue in one pass, oldest first, counting each offer towards the doctor's load.

    Returns:
        ``(consultation_id, doctor_id)`` pairs; consultations nobody can take now are left out.
    """
    loads = {c.doctor_id: c for c in candidates}
    offers: list[tuple[int, int]] = []
    for item in queue:
        doctor_id = choose_doctor(
            loads.values(), item.specialty, item.skipped_doctor_ids, max_active, now, min_remaining_shift
        )
        if doctor_id is None:
            continue
        loads[doctor_id] = replace(loads[doctor_id], active_count=loads[doctor_id].active_count + 1)
        offers.append((item.consultation_id, doctor_id))
    return offers


def offer_deadline(now: datetime, accept_timeout: timedelta) -> datetime:
    """When an offer lapses if the doctor does not accept: the consultation then goes to the next doctor.

    Raises:
        ValueError: a non-positive timeout.
    """
    require_utc(now)
    if accept_timeout <= timedelta(0):
        raise ValueError("the accept timeout is positive")
    return now + accept_timeout


def queue_position(queued_ids_in_order: Sequence[int], consultation_id: int) -> int | None:
    """The 1-based place of a consultation in its queue (oldest request first), or ``None`` if not queued."""
    try:
        return queued_ids_in_order.index(consultation_id) + 1
    except ValueError:
        return None
