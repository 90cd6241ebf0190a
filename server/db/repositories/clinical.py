"""Queries for the clinical-safety records: duty alerts, consents, doctor connections, hand-overs, addenda."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    ConsultationAddendum,
    ConsultationHandover,
    DoctorConnection,
    DutyAlert,
    PatientConsent,
)

# A socket row not renewed for this long belongs to a process that died: it counts as closed.
CONNECTION_STALE_AFTER: Final = timedelta(seconds=150)


# ----------------------------------------------------------------------------- duty alerts


async def open_alert_for(session: AsyncSession, kind: str, consultation_id: int) -> DutyAlert | None:
    """The unacknowledged alert of this kind for a consultation, so one situation is alerted once."""
    stmt = select(DutyAlert).where(
        DutyAlert.kind == kind, DutyAlert.consultation_id == consultation_id, DutyAlert.acknowledged_at.is_(None)
    )
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def list_alerts(session: AsyncSession, *, include_acknowledged: bool, limit: int = 200) -> list[DutyAlert]:
    """Alerts, newest first; open ones only unless asked."""
    stmt = select(DutyAlert)
    if not include_acknowledged:
        stmt = stmt.where(DutyAlert.acknowledged_at.is_(None))
    return list((await session.execute(stmt.order_by(DutyAlert.id.desc()).limit(limit))).scalars())


async def acknowledge_alert(session: AsyncSession, alert_id: int, staff_id: int, now: datetime) -> bool:
    """Mark an open alert acknowledged; ``False`` when it was already (one acknowledger wins)."""
    result = await session.execute(
        update(DutyAlert)
        .where(DutyAlert.id == alert_id, DutyAlert.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by_id=staff_id)
    )
    return bool(getattr(result, "rowcount", 0))


# ----------------------------------------------------------------------------- consents


async def consents_of(session: AsyncSession, person_id: int) -> list[PatientConsent]:
    """Every consent record of the person, oldest first."""
    stmt = select(PatientConsent).where(PatientConsent.insured_person_id == person_id).order_by(PatientConsent.id)
    return list((await session.execute(stmt)).scalars())


async def withdraw_consents(session: AsyncSession, person_id: int, kind: str, now: datetime, address: str) -> list[int]:
    """Withdraw the standing consents of one kind; returns the ids withdrawn."""
    stmt = select(PatientConsent.id).where(
        PatientConsent.insured_person_id == person_id,
        PatientConsent.kind == kind,
        PatientConsent.withdrawn_at.is_(None),
    )
    ids = list((await session.execute(stmt)).scalars())
    if ids:
        await session.execute(
            update(PatientConsent).where(PatientConsent.id.in_(ids)).values(withdrawn_at=now, withdrawn_from=address)
        )
    return ids


# ----------------------------------------------------------------------------- doctor connections


def _live(now: datetime) -> ColumnElement[bool]:
    return and_(DoctorConnection.closed_at.is_(None), DoctorConnection.seen_at > now - CONNECTION_STALE_AFTER)


async def connection_opened(session: AsyncSession, socket_id: str, doctor_id: int, now: datetime) -> None:
    """A doctor's socket authenticated."""
    session.add(DoctorConnection(socket_id=socket_id, doctor_id=doctor_id, connected_at=now, seen_at=now))


async def connection_closed(session: AsyncSession, socket_id: str, now: datetime) -> None:
    """A doctor's socket ended."""
    await session.execute(
        update(DoctorConnection)
        .where(DoctorConnection.socket_id == socket_id, DoctorConnection.closed_at.is_(None))
        .values(closed_at=now)
    )


async def connections_seen(session: AsyncSession, socket_ids: Iterable[str], now: datetime) -> None:
    """Renew the sockets this process still holds."""
    ids = list(socket_ids)
    if ids:
        await session.execute(
            update(DoctorConnection)
            .where(DoctorConnection.socket_id.in_(ids), DoctorConnection.closed_at.is_(None))
            .values(seen_at=now)
        )


async def connected_doctors(session: AsyncSession, now: datetime, doctor_ids: Iterable[int] | None = None) -> set[int]:
    """Doctors with at least one live socket in any process now."""
    stmt = select(DoctorConnection.doctor_id).where(_live(now)).distinct()
    if doctor_ids is not None:
        stmt = stmt.where(DoctorConnection.doctor_id.in_(list(doctor_ids)))
    return set((await session.execute(stmt)).scalars())


async def last_disconnect(session: AsyncSession, doctor_id: int, now: datetime) -> datetime | None:
    """When the doctor's last socket ended (closed, or went stale), or ``None`` if they never connected."""
    # Computed in Python: interval arithmetic differs between SQLite and PostgreSQL.
    stmt = select(DoctorConnection.closed_at, DoctorConnection.seen_at).where(DoctorConnection.doctor_id == doctor_id)
    latest: datetime | None = None
    for closed_at, seen_at in (await session.execute(stmt)).all():
        ended = closed_at if closed_at is not None else seen_at + CONNECTION_STALE_AFTER
        if ended > now:
            continue  # still live
        latest = ended if latest is None or ended > latest else latest
    return latest


async def prune_connections(session: AsyncSession, now: datetime, keep: timedelta = timedelta(days=1)) -> None:
    """Forget sockets that ended more than ``keep`` ago."""
    cutoff = now - keep
    await session.execute(
        delete(DoctorConnection).where(
            or_(
                DoctorConnection.closed_at < cutoff,
                and_(DoctorConnection.closed_at.is_(None), DoctorConnection.seen_at < cutoff),
            )
        )
    )


# ----------------------------------------------------------------------------- hand-overs and addenda


async def handovers_of(session: AsyncSession, consultation_id: int) -> list[ConsultationHandover]:
    """The consultation's hand-overs, oldest first."""
    stmt = (
        select(ConsultationHandover)
        .where(ConsultationHandover.consultation_id == consultation_id)
        .order_by(ConsultationHandover.id)
    )
    return list((await session.execute(stmt)).scalars())


async def addenda_of(session: AsyncSession, consultation_ids: Iterable[int]) -> dict[int, list[ConsultationAddendum]]:
    """Addenda per consultation, oldest first."""
    ids = list(consultation_ids)
    result: dict[int, list[ConsultationAddendum]] = {i: [] for i in ids}
    if not ids:
        return result
    stmt = (
        select(ConsultationAddendum)
        .where(ConsultationAddendum.consultation_id.in_(ids))
        .order_by(ConsultationAddendum.id)
    )
    for row in (await session.execute(stmt)).scalars():
        result[row.consultation_id].append(row)
    return result
