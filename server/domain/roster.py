"""The doctors' duty roster: shifts, who is on duty, and the round-the-clock coverage alarm (R11.1, R11.2)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Final

from server.domain.decisions import Decision, Reason
from server.domain.errors import Conflict, InvalidInput


@dataclass(frozen=True, slots=True)
class Specialty:
    """A telemedicine specialty (R11.1).

    Attributes:
        code: The wire and database code, e.g. ``"general_practice"``.
        label: What the specialty is called in a list, e.g. ``"General practice"``.
        practitioner: What its doctor is called in a sentence, e.g. ``"general practitioner"``.
    """

    code: str
    label: str
    practitioner: str


GENERAL_PRACTICE: Final = "general_practice"

# General practice first: it is the one R11.2 requires round the clock.
SPECIALTIES: Final[tuple[Specialty, ...]] = (
    Specialty(GENERAL_PRACTICE, "General practice", "general practitioner"),
    Specialty("pediatrics", "Pediatrics", "pediatrician"),
    Specialty("cardiology", "Cardiology", "cardiologist"),
    Specialty("neurology", "Neurology", "neurologist"),
    Specialty("dermatology", "Dermatology", "dermatologist"),
    Specialty("gynecology", "Gynecology", "gynecologist"),
    Specialty("otolaryngology", "Otolaryngology (ENT)", "otolaryngologist"),
    Specialty("gastroenterology", "Gastroenterology", "gastroenterologist"),
    Specialty("endocrinology", "Endocrinology", "endocrinologist"),
    Specialty("psychotherapy", "Psychotherapy", "psychotherapist"),
)
SPECIALTY_CODES: Final[frozenset[str]] = frozenset(s.code for s in SPECIALTIES)
_BY_CODE: Final[dict[str, Specialty]] = {s.code: s for s in SPECIALTIES}

# R11.2 demands round-the-clock cover for general practice only; other specialties may have hours.
ALWAYS_COVERED: Final[tuple[str, ...]] = (GENERAL_PRACTICE,)
DEFAULT_MAX_SHIFT_HOURS: Final = 24
_HOUR: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Shift:
    """One doctor on duty for one specialty during ``[starts_at, ends_at)`` (aware UTC).

    ``id`` is ``None`` for a shift that is being imported and has no row yet.
    """

    id: int | None
    doctor_id: int
    specialty: str
    starts_at: datetime
    ends_at: datetime

    @property
    def duration(self) -> timedelta:
        """How long the shift lasts."""
        return self.ends_at - self.starts_at

    def covers(self, instant: datetime) -> bool:
        """Whether the doctor is on this shift at ``instant`` (start inclusive, end exclusive)."""
        return self.starts_at <= instant < self.ends_at


@dataclass(frozen=True, slots=True)
class Gap:
    """A period ``[start, end)`` in which nobody of a specialty is on duty."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        """How long nobody is on duty."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class HourCoverage:
    """Cover of one hour: ``count`` is the fewest distinct doctors on duty at any instant of it.

    A count of 0 therefore means a gap somewhere within the hour, even if it is covered in part.
    """

    hour_start: datetime
    count: int


def get_specialty(code: str) -> Specialty:
    """The specialty with this code, so callers get its labels.

    Raises:
        InvalidInput: ``unknown_specialty`` when the code is not a telemedicine specialty.
    """
    try:
        return _BY_CODE[code]
    except KeyError:
        raise InvalidInput(
            f"unknown specialty {code!r}", code="unknown_specialty", details={"specialty": code}
        ) from None


def ensure_utc(value: datetime, name: str) -> datetime:
    """Refuse naive or non-UTC datetimes, because every instant in the domain is aware UTC.

    Args:
        value: The instant to check.
        name: The field name, for the error message.

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidInput: ``not_utc`` when it has no UTC offset of zero.
    """
    offset = value.utcoffset()
    if offset is None or offset != timedelta(0):
        raise InvalidInput(f"{name} must be an aware UTC instant", code="not_utc", details={"field": name})
    return value


def require_utc(value: datetime, name: str = "now") -> datetime:
    """Refuse a naive or non-UTC instant computed by the server (``now`` from the clock): a bug, not bad input.

    Raises:
        ValueError: when ``value`` is not aware UTC.
    """
    offset = value.utcoffset()
    if offset is None or offset != timedelta(0):
        raise ValueError(f"{name} must be an aware UTC datetime (take now from the injected clock)")
    return value


def _ensure_period(start: datetime, end: datetime) -> None:
    ensure_utc(start, "start")
    ensure_utc(end, "end")
    if end < start:
        raise InvalidInput("the period ends before it starts", code="invalid_period")


def validate_shift(shift: Shift, *, max_hours: int = DEFAULT_MAX_SHIFT_HOURS) -> Shift:
    """Check one shift before it is stored, so the roster never holds an impossible one.

    Args:
        shift: The shift to check.
        max_hours: The longest shift allowed, in hours.

    Returns:
        The shift unchanged.

    Raises:
        InvalidInput: naive/non-UTC times, end not after start, longer than ``max_hours``,
            or a specialty that telemedicine does not offer.
    """
    ensure_utc(shift.starts_at, "starts_at")
    ensure_utc(shift.ends_at, "ends_at")
    if shift.ends_at <= shift.starts_at:
        raise InvalidInput("a shift must end after it starts", code="invalid_shift_period")
    if shift.duration > timedelta(hours=max_hours):
        raise InvalidInput(
            f"a shift may last at most {max_hours} hours",
            code="shift_too_long",
            details={"max_hours": max_hours, "hours": shift.duration.total_seconds() / 3600},
        )
    get_specialty(shift.specialty)
    return shift


def overlapping_shifts(shifts: Iterable[Shift]) -> list[tuple[Shift, Shift]]:
    """Pairs of shifts of one doctor that overlap: a doctor cannot hold two posts at once.

    Back-to-back shifts (one ends when the next starts) do not overlap. Shifts of different
    specialties count too: each shift is one post in the queue.

    Returns:
        Pairs ``(earlier, later)`` ordered by doctor, then start.
    """
    by_doctor: dict[int, list[Shift]] = defaultdict(list)
    for shift in shifts:
        by_doctor[shift.doctor_id].append(shift)
    pairs: list[tuple[Shift, Shift]] = []
    for doctor_id in sorted(by_doctor):
        ordered = sorted(by_doctor[doctor_id], key=lambda s: (s.starts_at, s.ends_at, s.id or 0))
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                if second.starts_at >= first.ends_at:
                    break
                pairs.append((first, second))
    return pairs


def ensure_no_overlaps(shifts: Iterable[Shift]) -> None:
    """Refuse a roster (or an import merged with the stored shifts) that double-books a doctor.

    Raises:
        Conflict: ``shift_overlap``, with the clashing shifts in ``details``.
    """
    pairs = overlapping_shifts(shifts)
    if not pairs:
        return
    first, second = pairs[0]
    raise Conflict(
        f"doctor {first.doctor_id} would be on two shifts at once "
        f"({_span(first.starts_at, first.ends_at)} and {_span(second.starts_at, second.ends_at)})",
        code="shift_overlap",
        details={
            "overlaps": [
                {
                    "doctor_id": a.doctor_id,
                    "shift_ids": [a.id, b.id],
                    "starts_at": [a.starts_at.isoformat(), b.starts_at.isoformat()],
                }
                for a, b in pairs
            ]
        },
    )


DEFAULT_MAX_CONTINUOUS_DUTY_HOURS: Final = 24


def ensure_continuous_duty_within(
    shifts: Iterable[Shift], *, max_hours: int = DEFAULT_MAX_CONTINUOUS_DUTY_HOURS
) -> None:
    """Refuse a roster in which one doctor is on duty without a break for longer than ``max_hours``.

    Back-to-back shifts (one ending when or after the next starts) are one run of duty, even across
    specialties: a 24-hour shift next to a 12-hour one is 36 hours awake, however it is split.

    Raises:
        Conflict: ``continuous_duty_too_long`` with the doctor, the run and its hours in ``details``.
    """
    by_doctor: dict[int, list[Shift]] = defaultdict(list)
    for shift in shifts:
        by_doctor[shift.doctor_id].append(shift)
    limit = timedelta(hours=max_hours)
    for doctor_id in sorted(by_doctor):
        for start, end in _merge((s.starts_at, s.ends_at) for s in by_doctor[doctor_id]):
            if end - start > limit:
                hours = (end - start).total_seconds() / 3600
                raise Conflict(
                    f"doctor {doctor_id} would be on duty for {hours:g} hours without a break "
                    f"({_span(start, end)}); at most {max_hours} hours in a row",
                    code="continuous_duty_too_long",
                    details={
                        "doctor_id": doctor_id,
                        "starts_at": start.isoformat(),
                        "ends_at": end.isoformat(),
                        "hours": hours,
                        "max_hours": max_hours,
                    },
                )


def _merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _profile(
    shifts: Iterable[Shift], specialty: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    """Contiguous segments of ``[start, end)`` with the number of distinct doctors on duty in each."""
    per_doctor: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for shift in shifts:
        if shift.specialty == specialty and shift.starts_at < end and shift.ends_at > start:
            per_doctor[shift.doctor_id].append((max(shift.starts_at, start), min(shift.ends_at, end)))
    delta: dict[datetime, int] = defaultdict(int)
    for intervals in per_doctor.values():
        # A doctor with overlapping shifts (refused on import, but be safe) counts once.
        for a, b in _merge(intervals):
            delta[a] += 1
            delta[b] -= 1
    boundaries = sorted({start, end, *delta})
    segments: list[tuple[datetime, datetime, int]] = []
    on_duty_count = 0
    for a, b in pairwise(boundaries):
        on_duty_count += delta.get(a, 0)
        segments.append((a, b, on_duty_count))
    return segments


def coverage_gaps(shifts: Iterable[Shift], specialty: str, start: datetime, end: datetime) -> list[Gap]:
    """Every maximal part of ``[start, end)`` with nobody of ``specialty`` on duty (R11.2).

    The gaps are exact (not rounded to hours), sorted, disjoint and merged: two gaps never touch.

    Args:
        shifts: The roster (any specialties; others are ignored).
        specialty: The specialty to check.
        start: Window start, aware UTC.
        end: Window end, aware UTC, exclusive.

    Raises:
        InvalidInput: naive times, or ``end`` before ``start``.
    """
    _ensure_period(start, end)
    gaps: list[Gap] = []
    for a, b, count in _profile(shifts, specialty, start, end):
        if count:
            continue
        if gaps and gaps[-1].end == a:
            gaps[-1] = Gap(gaps[-1].start, b)
        else:
            gaps.append(Gap(a, b))
    return gaps


def hourly_coverage(
    shifts: Iterable[Shift],
    start: datetime,
    end: datetime,
    *,
    specialties: Iterable[str] | None = None,
) -> dict[str, list[HourCoverage]]:
    """Per specialty, per hour from ``start``, the fewest doctors on duty: the admin's roster grid.

    Hours are counted from ``start`` (pass an hour-aligned start for clock hours); the last one is
    cut at ``end``.

    Args:
        shifts: The roster.
        start: Window start, aware UTC.
        end: Window end, aware UTC, exclusive.
        specialties: Which to report; by default every known specialty plus any found in ``shifts``,
            so a specialty with nobody rostered shows as zeros rather than being absent.

    Raises:
        InvalidInput: naive times, or ``end`` before ``start``.
    """
    _ensure_period(start, end)
    shift_list = list(shifts)
    if specialties is None:
        codes = [s.code for s in SPECIALTIES] + sorted({s.specialty for s in shift_list} - SPECIALTY_CODES)
    else:
        codes = list(dict.fromkeys(specialties))
    result: dict[str, list[HourCoverage]] = {}
    for code in codes:
        segments = _profile(shift_list, code, start, end)
        hours: list[HourCoverage] = []
        index = 0
        hour_start = start
        while hour_start < end:
            hour_end = min(hour_start + _HOUR, end)
            fewest: int | None = None
            while index < len(segments) and segments[index][1] <= hour_start:
                index += 1
            j = index
            while j < len(segments) and segments[j][0] < hour_end:
                fewest = segments[j][2] if fewest is None else min(fewest, segments[j][2])
                j += 1
            hours.append(HourCoverage(hour_start, fewest or 0))
            hour_start = hour_end
        result[code] = hours
    return result


def on_duty(shifts: Iterable[Shift], now: datetime, specialty: str | None = None) -> list[int]:
    """Ids of the doctors on duty at ``now`` (of one specialty when given), ascending.

    Args:
        shifts: The roster.
        now: The instant, aware UTC.
        specialty: Only doctors on a shift of this specialty, when given.
    """
    require_utc(now)
    return sorted({s.doctor_id for s in shifts if s.covers(now) and (specialty is None or s.specialty == specialty)})


def duty_ends_at(
    shifts: Iterable[Shift], doctor_id: int, now: datetime, specialty: str | None = None
) -> datetime | None:
    """When the doctor's current duty ends, following back-to-back shifts, so a handover waits for the real end.

    Args:
        shifts: The roster.
        doctor_id: The doctor.
        now: The instant, aware UTC.
        specialty: Follow only shifts of this specialty, when given.

    Returns:
        The end of the unbroken run of shifts covering ``now``, or ``None`` if off duty.
    """
    require_utc(now)
    own = sorted(
        (s for s in shifts if s.doctor_id == doctor_id and (specialty is None or s.specialty == specialty)),
        key=lambda s: s.starts_at,
    )
    covering = [s.ends_at for s in own if s.covers(now)]
    if not covering:
        return None
    end = max(covering)
    for shift in own:  # sorted by start, and ``end`` only grows: one pass finds the whole run
        if shift.starts_at > end:
            break
        end = max(end, shift.ends_at)
    return end


def shift_ending_within(
    shifts: Iterable[Shift],
    doctor_id: int,
    now: datetime,
    minutes: int,
    *,
    specialty: str | None = None,
) -> bool:
    """Whether the doctor's duty ends within ``minutes`` (or has already ended): time to hand over.

    Args:
        shifts: The roster.
        doctor_id: The doctor.
        now: The instant, aware UTC.
        minutes: The handover horizon.
        specialty: Consider only shifts of this specialty, when given.

    Returns:
        ``True`` when the doctor is off duty now or their duty ends at or before ``now + minutes``.
    """
    ends = duty_ends_at(list(shifts), doctor_id, now, specialty)
    return ends is None or ends - now <= timedelta(minutes=minutes)


def _hm(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _span(start: datetime, end: datetime) -> str:
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if start_utc.date() == end_utc.date():
        return f"{_hm(start_utc)}-{end_utc:%H:%M} UTC"
    return f"{_hm(start_utc)} - {_hm(end_utc)} UTC"


def _practitioner(code: str) -> str:
    found = _BY_CODE.get(code)
    return found.practitioner if found is not None else f"doctor of {code!r}"


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def roster_alarm(
    shifts: Iterable[Shift],
    start: datetime,
    end: datetime,
    *,
    specialties: Sequence[str] = ALWAYS_COVERED,
) -> Decision:
    """Check round-the-clock cover: every gap is an alarm with its own reason, never a silent queue (R11.2).

    Args:
        shifts: The roster.
        start: Window start, aware UTC.
        end: Window end, aware UTC, exclusive.
        specialties: Specialties that must be covered at every instant (general practice by default).

    Returns:
        An allowing decision when covered; otherwise a refusal with one R11.2 reason per gap, e.g.
        "no general practitioner on duty 2026-12-01 03:00-05:00 UTC".

    Raises:
        InvalidInput: naive times, or ``end`` before ``start``.
    """
    shift_list = list(shifts)
    reasons: list[Reason] = []
    for code in specialties:
        for gap in coverage_gaps(shift_list, code, start, end):
            reasons.append(
                Reason(
                    "R11.2",
                    f"no {_practitioner(code)} on duty {_span(gap.start, gap.end)}",
                    {
                        "specialty": code,
                        "gap_start": gap.start.isoformat(),
                        "gap_end": gap.end.isoformat(),
                        "minutes": int(gap.duration.total_seconds() // 60),
                    },
                )
            )
    if reasons:
        return Decision.deny(*reasons)
    who = " and ".join(_with_article(_practitioner(code)) for code in specialties) or "nobody required"
    return Decision.allow(
        Reason(
            "R11.2",
            f"{who} on duty at every moment of {_span(start, end)}",
            {"specialties": list(specialties), "start": start.isoformat(), "end": end.isoformat()},
        )
    )
