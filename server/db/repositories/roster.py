"""Queries for the duty roster (shifts), the doctors it names and the roster gap alerts (R11.2)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import DutyShift, RosterAlert, StaffAccount


async def shifts_overlapping(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    specialty: str | None = None,
    doctor_id: int | None = None,
) -> list[DutyShift]:
    """Shifts that overlap ``[start, end)``, oldest first.

    Args:
        session: The open session.
        start: Window start (aware UTC).
        end: Window end (aware UTC, exclusive).
        specialty: Only shifts of this specialty, when given.
        doctor_id: Only this doctor's shifts, when given.

    Returns:
        The shifts ordered by start, then id.
    """
    stmt = select(DutyShift).where(DutyShift.starts_at < end, DutyShift.ends_at > start)
    if specialty is not None:
        stmt = stmt.where(DutyShift.specialty == specialty)
    if doctor_id is not None:
        stmt = stmt.where(DutyShift.doctor_id == doctor_id)
    stmt = stmt.order_by(DutyShift.starts_at, DutyShift.id)
    return list((await session.execute(stmt)).scalars())


async def shifts_of_doctors_overlapping(
    session: AsyncSession, doctor_ids: Iterable[int], start: datetime, end: datetime
) -> list[DutyShift]:
    """Shifts of any of ``doctor_ids`` overlapping ``[start, end)`` (for overlap checks in bulk)."""
    ids = sorted(set(doctor_ids))
    if not ids:
        return []
    stmt = (
        select(DutyShift)
        .where(DutyShift.doctor_id.in_(ids), DutyShift.starts_at < end, DutyShift.ends_at > start)
        .order_by(DutyShift.starts_at, DutyShift.id)
    )
    return list((await session.execute(stmt)).scalars())


async def next_shift_start(session: AsyncSession, specialty: str, after: datetime) -> datetime | None:
    """When the next shift of a specialty starts after ``after`` (told to a patient who waits for it)."""
    stmt = select(func.min(DutyShift.starts_at)).where(DutyShift.specialty == specialty, DutyShift.starts_at > after)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_shift(session: AsyncSession, shift_id: int, *, for_update: bool = False) -> DutyShift | None:
    """One shift by id, optionally locked for a change."""
    stmt = select(DutyShift).where(DutyShift.id == shift_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_shift(session: AsyncSession, shift_id: int) -> int:
    """Delete a shift; returns how many rows went (0 or 1)."""
    result = await session.execute(delete(DutyShift).where(DutyShift.id == shift_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def get_doctor(session: AsyncSession, doctor_id: int) -> StaffAccount | None:
    """An active doctor account by id, or ``None``."""
    stmt = select(StaffAccount).where(
        StaffAccount.id == doctor_id, StaffAccount.role == "doctor", StaffAccount.is_active.is_(True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_doctor_roster(session: AsyncSession, doctor_id: int) -> None:
    """Lock the doctor's account row so that two concurrent edits of their shifts cannot double-book them."""
    await session.execute(select(StaffAccount.id).where(StaffAccount.id == doctor_id).with_for_update())


async def doctors_by_username(session: AsyncSession, usernames: Iterable[str]) -> dict[str, StaffAccount]:
    """Active doctor accounts keyed by username (unknown names are simply absent)."""
    names = sorted(set(usernames))
    if not names:
        return {}
    stmt = select(StaffAccount).where(
        StaffAccount.username.in_(names), StaffAccount.role == "doctor", StaffAccount.is_active.is_(True)
    )
    return {doctor.username: doctor for doctor in (await session.execute(stmt)).scalars()}


async def doctors_by_id(session: AsyncSession, doctor_ids: Iterable[int]) -> dict[int, StaffAccount]:
    """Staff accounts keyed by id (used to name the doctors of a roster listing)."""
    ids = sorted(set(doctor_ids))
    if not ids:
        return {}
    stmt = select(StaffAccount).where(StaffAccount.id.in_(ids))
    return {doctor.id: doctor for doctor in (await session.execute(stmt)).scalars()}


async def all_doctor_specialties(session: AsyncSession) -> set[str]:
    """Every specialty some active doctor has (the coverage check reports each)."""
    stmt = select(StaffAccount.specialties).where(StaffAccount.role == "doctor", StaffAccount.is_active.is_(True))
    found: set[str] = set()
    for (specialties,) in (await session.execute(stmt)).all():
        found.update(specialties or [])
    return found


async def open_alerts(session: AsyncSession, *, for_update: bool = False) -> list[RosterAlert]:
    """Alerts not yet resolved (``details.resolved_at`` unset), oldest gap first."""
    stmt = select(RosterAlert).order_by(RosterAlert.gap_start, RosterAlert.id)
    if for_update:
        stmt = stmt.with_for_update()
    return [alert for alert in (await session.execute(stmt)).scalars() if not alert.details.get("resolved_at")]


async def list_alerts(
    session: AsyncSession, *, include_resolved: bool, since: datetime | None = None, limit: int = 500
) -> Sequence[RosterAlert]:
    """Alerts for the admin API, newest gap first.

    Args:
        session: The open session.
        include_resolved: Also list alerts whose gap was filled or has passed.
        since: Only alerts detected at or after this instant.
        limit: At most this many.
    """
    stmt = select(RosterAlert).order_by(RosterAlert.gap_start.desc(), RosterAlert.id.desc())
    if since is not None:
        stmt = stmt.where(RosterAlert.detected_at >= since)
    alerts = list((await session.execute(stmt)).scalars())
    if not include_resolved:
        alerts = [alert for alert in alerts if not alert.details.get("resolved_at")]
    return alerts[:limit]
