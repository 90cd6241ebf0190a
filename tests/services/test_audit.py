"""The audit trail (checklist D1, D2): appended with the action, hash-chained, refused edits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from server.clock import FixedClock
from server.db.models import AuditEvent
from server.db.repositories.audit import verify_chain
from server.services import audit
from server.services.context import ServiceContext
from server.services.identity import Principal


def _doctor(clock: FixedClock) -> Principal:
    return Principal("staff", 7, "doctor", "sid", clock.now() + timedelta(minutes=15))


async def test_events_chain_and_verify(ctx: ServiceContext, clock: FixedClock, session_factory) -> None:
    for index in range(5):
        await audit.record(
            ctx,
            _doctor(clock),
            action="consultation.read",
            resource_type="consultation",
            resource_id=index,
            patient_id=3,
        )
        clock.advance(timedelta(seconds=1))
    async with session_factory() as session:
        assert await verify_chain(session) is None
        rows = (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
    assert [r.resource_id for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 5))
    assert rows[0].actor == "staff:7" and rows[0].actor_role == "doctor" and rows[0].result == "allowed"


async def test_the_database_refuses_updates_and_deletes_D2(
    ctx: ServiceContext, clock: FixedClock, session_factory
) -> None:
    await audit.record(
        ctx, _doctor(clock), action="chat.read", resource_type="consultation", resource_id=1, patient_id=1
    )
    async with session_factory() as session:
        with pytest.raises((DBAPIError, IntegrityError)):
            await session.execute(text("UPDATE audit_events SET result = 'denied'"))
        await session.rollback()
        with pytest.raises((DBAPIError, IntegrityError)):
            await session.execute(text("DELETE FROM audit_events"))
        await session.rollback()
        assert (await session.execute(select(AuditEvent.result))).scalars().all() == ["allowed"]


async def test_a_forged_row_breaks_the_chain_D2(ctx: ServiceContext, clock: FixedClock, session_factory) -> None:
    """Even a row inserted behind the app's back (bypassing the chain) is detected."""
    await audit.record(ctx, _doctor(clock), action="a", resource_type="consultation", resource_id=1, patient_id=1)
    async with session_factory() as session:
        session.add(
            AuditEvent(
                occurred_at=clock.now(),
                actor="staff:9",
                actor_role="admin",
                action="a",
                resource_type="consultation",
                resource_id="2",
                patient_id=1,
                result="allowed",
                request_id="-",
                prev_hash="f" * 64,
                hash="e" * 64,
            )
        )
        await session.commit()
        broken = await verify_chain(session)
        forged_id = (await session.execute(select(AuditEvent.id).where(AuditEvent.actor == "staff:9"))).scalar_one()
    assert broken == forged_id
