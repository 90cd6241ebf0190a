"""An honest wait estimate for a waiting patient: capacity, limits, time left on shifts, offers in flight (R11.7).

The naive estimate (``consultation.estimate_wait``) divides the people ahead by the doctors on
duty; it says "0 minutes" to the next patient when the only doctor is at their limit, or when
every doctor is in their last minutes of duty and takes no new requests. This one plays the
queue forward instead: every doctor has ``limit`` slots; a busy slot (an active consultation or
an offer in flight) frees when that consultation is expected to end; a free slot takes the next
person in line; a doctor stops taking new people ``min_remaining`` before their duty ends, and a
doctor whose shift starts later joins then. The patient's wait is when the slot that serves them
frees. When no slot can be found within the horizon (nobody on duty or scheduled, or nobody
connected), the answer is ``None``: "unknown", never a wrong number.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from server.domain.roster import require_utc

DEFAULT_HORIZON: Final = timedelta(hours=12)
MIN_REMAINING_OF_OVERRUN: Final = timedelta(minutes=1)


class WaitBasis(StrEnum):
    """What the estimate rests on, for the patient's screen and the logs."""

    OFFERED = "offered"  # a doctor has the request in front of them now
    ESTIMATED = "estimated"  # played forward from the capacity below
    UNKNOWN = "unknown"  # no slot within the horizon: nobody connected, on duty or scheduled


@dataclass(frozen=True, slots=True)
class DoctorCapacity:
    """One doctor's run of duty as far as the queue can use it.

    Attributes:
        doctor_id: The doctor.
        limit: Their limit of simultaneous consultations.
        available_from: When they take requests (now for a doctor on duty; a later shift's start).
        accepts_until: When they stop taking new ones (duty end minus the last minutes).
        busy_since: For each slot in use (active consultations and offers in flight), when it
            started; an offer in flight counts as starting now.
        connected: Whether they can be offered anything (doctors on duty but offline cannot).
    """

    doctor_id: int
    limit: int
    available_from: datetime
    accepts_until: datetime
    busy_since: tuple[datetime, ...] = ()
    connected: bool = True


@dataclass(frozen=True, slots=True)
class HonestWait:
    """The queue place and the wait, or ``None`` minutes when it is unknown."""

    position: int
    minutes: int | None
    basis: WaitBasis


def estimate_honest_wait(
    position: int,
    capacity: Iterable[DoctorCapacity],
    mean: timedelta,
    now: datetime,
    *,
    offered: bool = False,
    horizon: timedelta = DEFAULT_HORIZON,
) -> HonestWait:
    """When the patient at ``position`` (1-based, among requests still to be offered) gets a doctor.

    Args:
        position: 1 for the next request to be offered.
        capacity: The doctors on duty now and those starting within the horizon.
        mean: Mean consultation length.
        now: The instant, aware UTC.
        offered: The request is offered to a doctor right now (0 minutes, ``OFFERED``).
        horizon: Beyond this the answer is "unknown".

    Raises:
        ValueError: position below 1 or a non-positive mean.
    """
    require_utc(now)
    if position < 1 or mean <= timedelta(0):
        raise ValueError("position starts at 1 and the mean is positive")
    if offered:
        return HonestWait(position, 0, WaitBasis.OFFERED)
    served_at = _serve_time(position, list(capacity), mean, now, now + horizon)
    if served_at is None:
        return HonestWait(position, None, WaitBasis.UNKNOWN)
    minutes = math.ceil(max(timedelta(0), served_at - now).total_seconds() / 60)
    return HonestWait(position, minutes, WaitBasis.ESTIMATED)


def _serve_time(
    position: int, capacity: Sequence[DoctorCapacity], mean: timedelta, now: datetime, until: datetime
) -> datetime | None:
    """Play the queue forward: the instant the ``position``-th person is served, or ``None``."""
    slots: list[tuple[datetime, int, int]] = []  # (free at, doctor index, tie-break)
    serial = 0
    for index, doctor in enumerate(capacity):
        if not doctor.connected or doctor.limit <= 0:
            continue
        start = max(now, doctor.available_from)
        for since in doctor.busy_since[: doctor.limit]:
            free = max(since + mean, now + MIN_REMAINING_OF_OVERRUN, start)
            slots.append((free, index, serial))
            serial += 1
        for _ in range(max(0, doctor.limit - len(doctor.busy_since))):
            slots.append((start, index, serial))
            serial += 1
    heapq.heapify(slots)
    served = 0
    while slots:
        free, index, tie = heapq.heappop(slots)
        if free > until:
            return None
        if free >= capacity[index].accepts_until:
            continue  # this doctor takes nobody new any more
        served += 1
        if served == position:
            return free
        heapq.heappush(slots, (free + mean, index, tie))
    return None
