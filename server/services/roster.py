"""Duty roster use cases: edit and import shifts, a doctor's own view, and the coverage check with its alerts (R11.2).

A gap in general practice is an alarm, never a silent queue (R11.2): every coverage check
records new gaps in ``roster_alerts`` (deduplicated), logs a WARNING and sets the
``telemed_roster_gap_hours`` metric per specialty. The check runs after every roster change
and periodically in the background (server/api/roster.py).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import DutyShift, RosterAlert, StaffAccount
from server.db.repositories import roster as repo
from server.domain import roster as rules
from server.domain.errors import DomainError, InvalidInput, NotFound, RuleViolation
from server.services.context import ServiceContext

log = logging.getLogger(__name__)

CSV_COLUMNS: Final = ("doctor_username", "specialty", "starts_at", "ends_at")
MAX_IMPORT_ROWS: Final = 5000
ALERT_RULE: Final = "R11.2"
_CHECK_LOCK_KEY: Final = 727_112  # pg_advisory_xact_lock key: one coverage check writes alerts at a time


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class LocalTimes:
    """A shift's start and end in a named time zone."""

    timezone: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class ShiftView:
    """A shift with its doctor's name; times are aware UTC (``local`` adds a time zone's view)."""

    id: int
    doctor_id: int
    doctor_username: str
    doctor_name: str
    specialty: str
    starts_at: datetime
    ends_at: datetime
    hours: float
    local: LocalTimes | None = None


@dataclass(frozen=True, slots=True)
class ShiftRow:
    """One row of an import, numbered from 1 as the admin sees it (header excluded)."""

    row: int
    doctor_username: str
    specialty: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an all-or-nothing import did."""

    created: int
    unchanged: int
    shifts: list[ShiftView]


@dataclass(frozen=True, slots=True)
class GapView:
    """A period with nobody of a specialty on duty."""

    start: datetime
    end: datetime
    hours: float


@dataclass(frozen=True, slots=True)
class SpecialtyCoverageView:
    """One specialty's coverage over the checked window."""

    specialty: str
    required_24_7: bool
    covered_hours: float
    gap_hours: float
    gaps: list[GapView]
    alert: bool
    rule: str | None
    message: str | None
    uncovered_hours: list[datetime] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AlertView:
    """A roster gap alert as admins see it."""

    id: int
    specialty: str
    rule: str
    gap_start: datetime
    gap_end: datetime
    hours: float
    detected_at: datetime
    last_seen_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CoverageView:
    """The result of a coverage check."""

    window_start: datetime
    window_end: datetime
    total_hours: float
    ok: bool  # every round-the-clock specialty is covered at every moment (R11.2)
    specialties: list[SpecialtyCoverageView]
    alerts: list[AlertView] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers


def hours_between(start: datetime, end: datetime) -> float:
    """A period's length in hours, to the hundredth (shifts, gaps, alerts, the checked window)."""
    return round((end - start).total_seconds() / 3600, 2)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} needs a UTC offset (ISO-8601, e.g. 2026-06-10T09:00:00+03:00)", code="naive_time")
    return value.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {name!r}", code="unknown_timezone", details={"tz": name}) from None


def _view(shift: DutyShift, doctor: StaffAccount | None, zone: ZoneInfo | None = None) -> ShiftView:
    local = None
    if zone is not None:
        local = LocalTimes(zone.key, shift.starts_at.astimezone(zone), shift.ends_at.astimezone(zone))
    return ShiftView(
        id=shift.id,
        doctor_id=shift.doctor_id,
        doctor_username=doctor.username if doctor else "",
        doctor_name=doctor.full_name if doctor else "",
        specialty=shift.specialty,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        hours=hours_between(shift.starts_at, shift.ends_at),
        local=local,
    )


def to_domain_shift(shift: DutyShift) -> rules.Shift:
    """A stored shift as the domain's ``Shift``."""
    return rules.Shift(shift.id, shift.doctor_id, shift.specialty, shift.starts_at, shift.ends_at)


def _check_candidate(doctor: StaffAccount, shift: rules.Shift) -> None:
    """Refuse an impossible shift (domain checks) or one of a specialty the doctor does not practise."""
    rules.validate_shift(shift)
    if shift.specialty not in (doctor.specialties or []):
        has = ", ".join(doctor.specialties or []) or "-"
        raise InvalidInput(
            f"{doctor.username} does not practise {shift.specialty} (has: {has})",
            code="doctor_lacks_specialty",
            details={"doctor_id": doctor.id, "specialty": shift.specialty},
        )


async def _check_no_overlap(
    session: AsyncSession, candidates: Sequence[rules.Shift], max_continuous_hours: int
) -> None:
    """Refuse shifts that double-book a doctor or keep them on duty too long without a break.

    The stored shifts are read ``max_continuous_hours`` either side, so a run of back-to-back
    shifts (a 24-hour shift next to a 12-hour one) is seen whole.
    """
    if not candidates:
        return
    reach = timedelta(hours=max_continuous_hours)
    start = min(s.starts_at for s in candidates) - reach
    end = max(s.ends_at for s in candidates) + reach
    stored = await repo.shifts_of_doctors_overlapping(session, (s.doctor_id for s in candidates), start, end)
    replaced = {s.id for s in candidates if s.id is not None}
    roster = [*(to_domain_shift(s) for s in stored if s.id not in replaced), *candidates]
    rules.ensure_no_overlaps(roster)
    rules.ensure_continuous_duty_within(roster, max_hours=max_continuous_hours)


async def _after_roster_change(ctx: ServiceContext) -> None:
    try:
        await run_coverage_check(ctx)
    except Exception:
        log.exception("coverage check after a roster change failed; the periodic check will retry")


# ----------------------------------------------------------------------------- use cases: shifts


async def list_shifts(
    ctx: ServiceContext, *, start: datetime, end: datetime, specialty: str | None = None
) -> list[ShiftView]:
    """The roster in a window, for admins and dispatchers.

    Args:
        ctx: Service context.
        start: Window start (aware).
        end: Window end (aware, exclusive).
        specialty: Only this specialty, when given.

    Raises:
        InvalidInput: naive times, an unknown specialty, or a window that ends before it starts.
    """
    start, end = _utc(start, "from"), _utc(end, "to")
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", code="invalid_period")
    if end - start > timedelta(days=93):
        raise InvalidInput("ask for at most 93 days at a time", code="window_too_long")
    if specialty is not None:
        rules.get_specialty(specialty)
    async with ctx.uow() as uow:
        shifts = await repo.shifts_overlapping(uow.session, start, end, specialty=specialty)
        doctors = await repo.doctors_by_id(uow.session, (s.doctor_id for s in shifts))
        return [_view(s, doctors.get(s.doctor_id)) for s in shifts]


async def create_shift(
    ctx: ServiceContext,
    *,
    doctor_id: int | None,
    doctor_username: str | None,
    specialty: str,
    starts_at: datetime,
    ends_at: datetime,
) -> ShiftView:
    """Add one shift after checking it like an imported row.

    Args:
        ctx: Service context.
        doctor_id: The doctor's staff id (or give ``doctor_username``).
        doctor_username: The doctor's username.
        specialty: The specialty they are on duty for; the doctor must practise it.
        starts_at: Start (aware; stored as UTC).
        ends_at: End (aware, after the start, at most 24 hours later).

    Raises:
        InvalidInput: unknown doctor, naive time, end not after start, longer than 24 h,
            unknown specialty, or one the doctor does not practise.
        Conflict: ``shift_overlap`` when the doctor already has a shift then.
    """
    async with ctx.uow() as uow:
        session = uow.session
        doctor = await _find_doctor(session, doctor_id, doctor_username)
        candidate = rules.Shift(None, doctor.id, specialty, _utc(starts_at, "starts_at"), _utc(ends_at, "ends_at"))
        _check_candidate(doctor, candidate)
        await repo.lock_doctor_roster(session, doctor.id)
        await _check_no_overlap(session, [candidate], ctx.settings.max_continuous_duty_hours)
        shift = DutyShift(
            doctor_id=doctor.id,
            specialty=candidate.specialty,
            starts_at=candidate.starts_at,
            ends_at=candidate.ends_at,
            created_at=ctx.clock.now(),
        )
        session.add(shift)
        await session.flush()
        view = _view(shift, doctor)
        await uow.commit()
    log.info(
        "roster: added shift %s (%s, %s %s-%s)", view.id, view.doctor_username, specialty, view.starts_at, view.ends_at
    )
    await _after_roster_change(ctx)
    return view


async def _find_doctor(session: AsyncSession, doctor_id: int | None, doctor_username: str | None) -> StaffAccount:
    doctor: StaffAccount | None = None
    if doctor_id is not None:
        doctor = await repo.get_doctor(session, doctor_id)
    elif doctor_username is not None:
        doctor = (await repo.doctors_by_username(session, [doctor_username])).get(doctor_username)
    if doctor is None:
        raise InvalidInput(
            "no active doctor with that id or username",
            code="unknown_doctor",
            details={"doctor_id": doctor_id, "doctor_username": doctor_username},
        )
    return doctor


async def update_shift(
    ctx: ServiceContext,
    shift_id: int,
    *,
    doctor_id: int | None = None,
    specialty: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> ShiftView:
    """Change a shift; the changed shift is checked like a new one.

    Raises:
        NotFound: no such shift.
        InvalidInput: as ``create_shift``.
        Conflict: ``shift_overlap``.
    """
    async with ctx.uow() as uow:
        session = uow.session
        shift = await repo.get_shift(session, shift_id, for_update=True)
        if shift is None:
            raise NotFound("no such shift")
        doctor = await _find_doctor(session, doctor_id if doctor_id is not None else shift.doctor_id, None)
        candidate = rules.Shift(
            shift.id,
            doctor.id,
            specialty if specialty is not None else shift.specialty,
            _utc(starts_at, "starts_at") if starts_at is not None else shift.starts_at,
            _utc(ends_at, "ends_at") if ends_at is not None else shift.ends_at,
        )
        _check_candidate(doctor, candidate)
        await repo.lock_doctor_roster(session, doctor.id)
        await _check_no_overlap(session, [candidate], ctx.settings.max_continuous_duty_hours)
        shift.doctor_id = candidate.doctor_id
        shift.specialty = candidate.specialty
        shift.starts_at = candidate.starts_at
        shift.ends_at = candidate.ends_at
        await session.flush()
        view = _view(shift, doctor)
        await uow.commit()
    log.info("roster: changed shift %s", shift_id)
    await _after_roster_change(ctx)
    return view


async def delete_shift(ctx: ServiceContext, shift_id: int) -> None:
    """Remove a shift; a gap it opens is reported by the coverage check that follows (R11.2).

    Raises:
        NotFound: no such shift.
    """
    async with ctx.uow() as uow:
        if not await repo.delete_shift(uow.session, shift_id):
            raise NotFound("no such shift")
        await uow.commit()
    log.info("roster: deleted shift %s", shift_id)
    await _after_roster_change(ctx)


def parse_roster_csv(content: str) -> list[ShiftRow]:
    """Parse an import file with columns ``doctor_username,specialty,starts_at,ends_at`` (ISO-8601 with offset).

    Args:
        content: The CSV text (a header row first).

    Returns:
        The rows, numbered from 1 after the header.

    Raises:
        RuleViolation: ``invalid_roster`` listing every bad row (nothing is imported).
        InvalidInput: ``malformed_csv`` when the header is missing or wrong.
    """
    reader = csv.reader(io.StringIO(content.removeprefix("\ufeff")))
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        raise InvalidInput("the CSV is empty", code="malformed_csv") from None
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read: {exc}", code="malformed_csv") from None
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise InvalidInput(
            f"the CSV header must name the columns {', '.join(CSV_COLUMNS)} (missing: {', '.join(missing)})",
            code="malformed_csv",
        )
    index = {column: header.index(column) for column in CSV_COLUMNS}
    rows: list[ShiftRow] = []
    errors: list[dict[str, Any]] = []
    try:
        for number, record in enumerate(reader, start=1):
            if not any(cell.strip() for cell in record):
                continue
            problems: list[str] = []
            if len(record) < len(header):
                errors.append({"row": number, "errors": [f"expected {len(header)} columns, got {len(record)}"]})
                continue
            values = {column: record[i].strip() for column, i in index.items()}
            times: dict[str, datetime] = {}
            for column in ("starts_at", "ends_at"):
                try:
                    parsed = datetime.fromisoformat(values[column])
                except ValueError:
                    problems.append(f"{column}: not an ISO-8601 date-time: {values[column]!r}")
                    continue
                if parsed.tzinfo is None:
                    problems.append(f"{column}: needs a UTC offset, e.g. +03:00")
                    continue
                times[column] = parsed.astimezone(UTC)
            if not values["doctor_username"]:
                problems.append("doctor_username: empty")
            if problems:
                errors.append({"row": number, "errors": problems})
                continue
            rows.append(
                ShiftRow(number, values["doctor_username"], values["specialty"], times["starts_at"], times["ends_at"])
            )
            if number > MAX_IMPORT_ROWS:
                raise InvalidInput(f"import at most {MAX_IMPORT_ROWS} rows at a time", code="import_too_large")
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read: {exc}", code="malformed_csv") from None
    if errors:
        raise _import_refused(errors)
    return rows


def _import_refused(errors: list[dict[str, Any]]) -> RuleViolation:
    return RuleViolation(
        f"{len(errors)} row(s) are not valid; nothing was imported",
        code="invalid_roster",
        details={"errors": sorted(errors, key=lambda e: e["row"])},
    )


async def import_shifts(ctx: ServiceContext, rows: Sequence[ShiftRow]) -> ImportOutcome:
    """Import shifts all or nothing; a row identical to a stored shift is left as it is.

    Every row is checked (doctor, specialty, period, length, overlaps with the stored roster
    and with the other rows) before anything is saved; any bad row refuses the whole import.

    Args:
        ctx: Service context.
        rows: The parsed rows.

    Returns:
        How many shifts were created and how many were already there.

    Raises:
        RuleViolation: ``invalid_roster`` with ``details.errors`` = [{row, errors}].
        InvalidInput: an empty import or one over the size limit.
    """
    if not rows:
        raise InvalidInput("the import has no rows", code="empty_import")
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidInput(f"import at most {MAX_IMPORT_ROWS} rows at a time", code="import_too_large")
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        doctors = await repo.doctors_by_username(session, (r.doctor_username for r in rows))
        errors: dict[int, list[str]] = defaultdict(list)
        candidates: list[tuple[ShiftRow, rules.Shift]] = []
        for row in rows:
            doctor = doctors.get(row.doctor_username)
            if doctor is None:
                errors[row.row].append(f"unknown doctor {row.doctor_username!r}")
                continue
            shift = rules.Shift(
                None, doctor.id, row.specialty, _utc(row.starts_at, "starts_at"), _utc(row.ends_at, "ends_at")
            )
            try:
                _check_candidate(doctor, shift)
            except DomainError as exc:
                errors[row.row].append(exc.message)
                continue
            candidates.append((row, shift))
        for doctor in sorted(doctors.values(), key=lambda d: d.id):
            await repo.lock_doctor_roster(session, doctor.id)
        new, unchanged = await _split_existing(session, candidates)
        _collect_overlaps(await _stored_around(session, new), new, errors)
        if not errors:
            await _collect_long_duty(session, new, errors, ctx.settings.max_continuous_duty_hours)
        if errors:
            raise _import_refused([{"row": number, "errors": problems} for number, problems in errors.items()])
        added: list[DutyShift] = []
        for _, shift in new:
            added.append(
                DutyShift(
                    doctor_id=shift.doctor_id,
                    specialty=shift.specialty,
                    starts_at=shift.starts_at,
                    ends_at=shift.ends_at,
                    created_at=now,
                )
            )
        session.add_all(added)
        await session.flush()
        by_id = {d.id: d for d in doctors.values()}
        views = [_view(s, by_id.get(s.doctor_id)) for s in added]
        await uow.commit()
    log.info("roster: imported %d shifts (%d unchanged)", len(added), unchanged)
    await _after_roster_change(ctx)
    return ImportOutcome(created=len(added), unchanged=unchanged, shifts=views)


async def _split_existing(
    session: AsyncSession, candidates: list[tuple[ShiftRow, rules.Shift]]
) -> tuple[list[tuple[ShiftRow, rules.Shift]], int]:
    """Drop rows identical to a stored shift (re-importing a file changes nothing)."""
    if not candidates:
        return [], 0
    stored = await _stored_around(session, candidates)
    existing = {(s.doctor_id, s.specialty, s.starts_at, s.ends_at) for s in stored}
    new: list[tuple[ShiftRow, rules.Shift]] = []
    seen: set[tuple[int, str, datetime, datetime]] = set()
    unchanged = 0
    for row, shift in candidates:
        key = (shift.doctor_id, shift.specialty, shift.starts_at, shift.ends_at)
        if key in existing:
            unchanged += 1
        elif key not in seen:
            seen.add(key)
            new.append((row, shift))
        else:
            unchanged += 1
    return new, unchanged


async def _stored_around(
    session: AsyncSession, candidates: Sequence[tuple[ShiftRow, rules.Shift]]
) -> list[rules.Shift]:
    if not candidates:
        return []
    start = min(s.starts_at for _, s in candidates)
    end = max(s.ends_at for _, s in candidates)
    stored = await repo.shifts_of_doctors_overlapping(session, (s.doctor_id for _, s in candidates), start, end)
    return [to_domain_shift(s) for s in stored]


async def _collect_long_duty(
    session: AsyncSession, new: list[tuple[ShiftRow, rules.Shift]], errors: dict[int, list[str]], max_hours: int
) -> None:
    """Name the first row of each doctor whose shifts make a run of duty longer than ``max_hours``."""
    if not new:
        return
    reach = timedelta(hours=max_hours)
    start = min(s.starts_at for _, s in new) - reach
    end = max(s.ends_at for _, s in new) + reach
    stored = [
        to_domain_shift(s)
        for s in await repo.shifts_of_doctors_overlapping(session, (s.doctor_id for _, s in new), start, end)
    ]
    for doctor_id in sorted({s.doctor_id for _, s in new}):
        own = [s for _, s in new if s.doctor_id == doctor_id]
        try:
            rules.ensure_continuous_duty_within(
                [*(s for s in stored if s.doctor_id == doctor_id), *own], max_hours=max_hours
            )
        except DomainError as exc:
            first = min(row.row for row, s in new if s.doctor_id == doctor_id)
            errors[first].append(exc.message)


def _collect_overlaps(
    stored: list[rules.Shift], new: list[tuple[ShiftRow, rules.Shift]], errors: dict[int, list[str]]
) -> None:
    """Name every row whose shift double-books its doctor (with a stored shift or another row)."""
    row_of = {id(shift): row.row for row, shift in new}
    for first, second in rules.overlapping_shifts([*stored, *(shift for _, shift in new)]):
        for this, other in ((first, second), (second, first)):
            number = row_of.get(id(this))
            if number is None:
                continue
            against = f"row {row_of[id(other)]}" if id(other) in row_of else f"stored shift {other.id}"
            errors[number].append(
                f"overlaps {against} of the same doctor ({other.starts_at.isoformat()} - {other.ends_at.isoformat()})"
            )


DEFAULT_TIME_ZONE: Final = "Europe/Moscow"


async def my_shifts(
    ctx: ServiceContext, doctor_id: int, *, start: datetime, end: datetime, tz: str | None = None
) -> list[ShiftView]:
    """A doctor's own shifts in a window, with their times also in the time zone ``tz``.

    Without ``tz`` the doctor's own time zone is used (a Vladivostok doctor sees Vladivostok
    time), and Moscow time when they have none.

    Raises:
        InvalidInput: unknown time zone, naive times, or an empty or too long window.
    """
    start, end = _utc(start, "from"), _utc(end, "to")
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", code="invalid_period")
    if end - start > timedelta(days=93):
        raise InvalidInput("ask for at most 93 days at a time", code="window_too_long")
    async with ctx.uow() as uow:
        doctors = await repo.doctors_by_id(uow.session, [doctor_id])
        own = doctors.get(doctor_id)
        zone = _zone(tz or (own.time_zone if own is not None else None) or DEFAULT_TIME_ZONE)
        shifts = await repo.shifts_overlapping(uow.session, start, end, doctor_id=doctor_id)
        return [_view(s, doctors.get(s.doctor_id), zone) for s in shifts]


async def set_time_zone(ctx: ServiceContext, doctor_id: int, tz: str) -> str:
    """Set the doctor's own time zone for "my shifts" (an IANA name such as ``Asia/Vladivostok``).

    Raises:
        InvalidInput: ``unknown_timezone``.
    """
    zone = _zone(tz)
    async with ctx.uow() as uow:
        doctor = await uow.session.get(StaffAccount, doctor_id)
        if doctor is None:
            raise NotFound("no such doctor")
        doctor.time_zone = zone.key
        await uow.commit()
    return zone.key


# ----------------------------------------------------------------------------- coverage check and alerts


def _alert_view(alert: RosterAlert) -> AlertView:
    details = alert.details or {}

    def _instant(key: str) -> datetime | None:
        raw = details.get(key)
        return datetime.fromisoformat(raw) if isinstance(raw, str) else None

    return AlertView(
        id=alert.id,
        specialty=alert.specialty,
        rule=str(details.get("rule", ALERT_RULE)),
        gap_start=alert.gap_start,
        gap_end=alert.gap_end,
        hours=hours_between(alert.gap_start, alert.gap_end),
        detected_at=alert.detected_at,
        last_seen_at=_instant("last_seen_at"),
        resolved_at=_instant("resolved_at"),
        resolution=str(details["resolution"]) if details.get("resolution") else None,
        message=str(details.get("message", "")),
    )


def coverage_window(now: datetime, weeks: int) -> tuple[datetime, datetime]:
    """The checked window: from the start of the current clock hour, ``weeks`` weeks ahead."""
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(weeks=weeks)


async def run_coverage_check(ctx: ServiceContext, *, weeks: int | None = None) -> CoverageView:
    """Check the coming weeks' roster per specialty; record, log and meter every gap (R11.2).

    General practice must be covered at every moment (R11.2): each gap becomes a
    ``roster_alerts`` row (an identical or continuing open gap is not recorded twice), a WARNING
    in the log and hours in ``telemed_roster_gap_hours{specialty}``. Other specialties keep
    hours, so their gaps are reported and metered but are not alerts. An open alert whose gap
    is no longer found is marked resolved (``filled`` by a roster change, or ``passed``).

    Args:
        ctx: Service context.
        weeks: How far ahead to check; the ``roster_check_weeks`` setting by default.

    Returns:
        The per-specialty coverage and the open alerts.
    """
    weeks = weeks or ctx.settings.roster_check_weeks
    now = ctx.clock.now()
    start, end = coverage_window(now, weeks)
    async with ctx.uow() as uow:
        session = uow.session
        await _lock_check(session)
        stored = await repo.shifts_overlapping(session, start, end)
        shifts = [to_domain_shift(s) for s in stored]
        known = [s.code for s in rules.SPECIALTIES]
        extra = sorted(({s.specialty for s in shifts} | await repo.all_doctor_specialties(session)) - set(known))
        alarm = rules.roster_alarm(shifts, start, end)
        messages = {
            (r.facts.get("specialty"), r.facts.get("gap_start")): r.message for r in alarm.reasons if not alarm.allowed
        }
        views: list[SpecialtyCoverageView] = []
        required_gaps: list[tuple[str, rules.Gap, str]] = []
        for code in [*known, *extra]:
            gaps = rules.coverage_gaps(shifts, code, start, end)
            gap_seconds = sum(g.duration.total_seconds() for g in gaps)
            required = code in rules.ALWAYS_COVERED
            message = None
            if required and gaps:
                first = gaps[0]
                message = f"{len(gaps)} gap(s) in round-the-clock cover; first: " + messages.get(
                    (code, first.start.isoformat()), f"nobody on duty from {first.start.isoformat()}"
                )
                for gap in gaps:
                    required_gaps.append(
                        (code, gap, messages.get((code, gap.start.isoformat()), f"no {code} doctor on duty"))
                    )
            uncovered: list[datetime] = []
            if required and gaps:
                # The clock hours with nobody on duty at some moment: what the admin must fill (R11.2).
                hours = rules.hourly_coverage(shifts, start, end, specialties=[code])[code]
                uncovered = [hour.hour_start for hour in hours if hour.count == 0]
            views.append(
                SpecialtyCoverageView(
                    specialty=code,
                    uncovered_hours=uncovered,
                    required_24_7=required,
                    covered_hours=round((end - start).total_seconds() / 3600 - gap_seconds / 3600, 2),
                    gap_hours=round(gap_seconds / 3600, 2),
                    gaps=[GapView(g.start, g.end, hours_between(g.start, g.end)) for g in gaps],
                    alert=required and bool(gaps),
                    rule=ALERT_RULE if required else None,
                    message=message,
                )
            )
            ctx.metrics.roster_gap_hours.labels(specialty=code).set(gap_seconds / 3600)
        new_alerts = await _record_alerts(session, now, start, end, required_gaps)
        open_views = [_alert_view(a) for a in await repo.open_alerts(session)]
        await uow.commit()
    for alert in new_alerts:
        log.warning(
            "R11.2 roster gap: %s (%s, %s to %s); telemedicine requests will wait with nobody to answer",
            alert.message,
            alert.specialty,
            alert.gap_start.isoformat(),
            alert.gap_end.isoformat(),
        )
    return CoverageView(
        window_start=start,
        window_end=end,
        total_hours=hours_between(start, end),
        ok=not any(item.alert for item in views),
        specialties=views,
        alerts=open_views,
    )


async def _lock_check(session: AsyncSession) -> None:
    """Serialise coverage checks across processes so an alert is never recorded twice.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN IMMEDIATE already serialises writers.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHECK_LOCK_KEY})


async def _record_alerts(
    session: AsyncSession,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    gaps: list[tuple[str, rules.Gap, str]],
) -> list[AlertView]:
    """Reconcile the open alerts with the gaps just found; returns the alerts that are new.

    A found gap that overlaps an open alert of its specialty is the same gap (it may have shrunk
    as time passed, or grown at the horizon): the alert is kept, with its interval updated. A gap
    overlapping no open alert is new. An open alert overlapping no found gap is resolved.
    """
    open_alerts = await repo.open_alerts(session, for_update=True)
    matched: set[int] = set()
    new: list[RosterAlert] = []
    stamp = now.isoformat()
    for specialty, gap, message in gaps:
        alert = next(
            (
                a
                for a in open_alerts
                if a.id not in matched and a.specialty == specialty and a.gap_start < gap.end and a.gap_end > gap.start
            ),
            None,
        )
        if alert is None:
            created = RosterAlert(
                specialty=specialty,
                gap_start=gap.start,
                gap_end=gap.end,
                detected_at=now,
                details={
                    "rule": ALERT_RULE,
                    "message": message,
                    "last_seen_at": stamp,
                    "resolved_at": None,
                    "resolution": None,
                },
            )
            session.add(created)
            new.append(created)
            continue
        matched.add(alert.id)
        # A gap already under way starts at the window start now; keep when it really began.
        gap_start = gap.start if gap.start > window_start else min(alert.gap_start, gap.start)
        gap_end = gap.end if gap.end < window_end else max(alert.gap_end, gap.end)
        if (alert.gap_start, alert.gap_end) != (gap_start, gap_end):
            alert.gap_start, alert.gap_end = gap_start, gap_end
            message_now = message
        else:
            message_now = str(alert.details.get("message", message))
        alert.details = {**alert.details, "last_seen_at": stamp, "message": message_now}
    for alert in open_alerts:
        if alert.id in matched:
            continue
        resolution = "passed" if alert.gap_end <= window_start else "filled"
        alert.details = {**alert.details, "resolved_at": stamp, "resolution": resolution}
        log.info("R11.2 roster gap alert %s resolved (%s)", alert.id, resolution)
    await session.flush()
    return [_alert_view(a) for a in new]


async def list_alerts(ctx: ServiceContext, *, include_resolved: bool = False) -> list[AlertView]:
    """Roster gap alerts for admins: open ones, or all with ``include_resolved``."""
    async with ctx.uow() as uow:
        alerts = await repo.list_alerts(uow.session, include_resolved=include_resolved)
        return [_alert_view(a) for a in alerts]


async def ensure_gap_alert_now(ctx: ServiceContext, specialty: str) -> None:
    """Called when a request finds nobody of a round-the-clock specialty on duty: re-run the check (R11.2).

    The check records the gap as an alert (if it is not one already) and logs it.
    """
    if specialty in rules.ALWAYS_COVERED:
        await _after_roster_change(ctx)
