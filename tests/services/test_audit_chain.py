"""The audit trail's head is pinned: edits, deleting the newest rows and truncation are all found (checklist D2)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.services import audit, audit_chain
from server.services.context import ServiceContext
from server.services.identity import Principal


def _doctor(clock: FixedClock) -> Principal:
    return Principal("staff", 7, "doctor", "sid", clock.now() + timedelta(minutes=15))


async def _record(ctx: ServiceContext, clock: FixedClock, count: int) -> None:
    for index in range(count):
        await audit.record(
            ctx,
            _doctor(clock),
            action="consultation.read",
            resource_type="consultation",
            resource_id=index,
            patient_id=3,
        )
        clock.advance(timedelta(seconds=1))


async def _tamper(session_factory: async_sessionmaker[AsyncSession], statement: str) -> None:
    """What an attacker with the database owner's rights does: drop the append-only trigger, then change rows."""
    async with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            await session.execute(text("DROP TRIGGER audit_events_no_update"))
            await session.execute(text("DROP TRIGGER audit_events_no_delete"))
        await session.execute(text(statement))
        await session.commit()


async def test_intact_trail_passes_and_the_head_is_pinned_and_logged(
    ctx: ServiceContext, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    await _record(ctx, clock, 3)
    with caplog.at_level("INFO", logger="telemed.audit"):
        pinned = await audit_chain.checkpoint(ctx)
    assert pinned is not None and pinned.ok and pinned.events == 3 and pinned.checkpoints == 1
    assert any(f"hash {pinned.head_hash}" in r.getMessage() for r in caplog.records)
    assert await audit_chain.checkpoint(ctx) is None  # the head did not move
    report = await audit_chain.verify(ctx)
    assert report.ok and report.problem is None


async def test_an_edited_row_is_found(
    ctx: ServiceContext, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _record(ctx, clock, 4)
    await audit_chain.checkpoint(ctx)
    await _tamper(session_factory, "UPDATE audit_events SET result = 'denied' WHERE resource_id = '1'")
    report = await audit_chain.verify(ctx)
    assert not report.ok and report.first_broken_id is not None


@pytest.mark.parametrize("newest", [1, 5])
async def test_deleting_the_newest_rows_is_found(
    ctx: ServiceContext, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession], newest: int
) -> None:
    """The shorter chain is still intact in itself; only the pinned head shows the cut."""
    await _record(ctx, clock, 8)
    await audit_chain.checkpoint(ctx)
    await _tamper(
        session_factory,
        f"DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events ORDER BY id DESC LIMIT {newest})",
    )
    report = await audit_chain.verify(ctx)
    assert report.first_broken_id is None  # the chain alone does not notice
    assert not report.ok and report.events == 8 - newest
    assert "deleted" in (report.problem or "")


async def test_truncation_is_found(
    ctx: ServiceContext, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _record(ctx, clock, 3)
    await audit_chain.checkpoint(ctx)
    await _tamper(session_factory, "DELETE FROM audit_events")
    report = await audit_chain.verify(ctx)
    assert not report.ok and report.events == 0


async def test_checkpoints_are_append_only(
    ctx: ServiceContext, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _record(ctx, clock, 2)
    await audit_chain.checkpoint(ctx)
    async with session_factory() as session:
        for statement in ("UPDATE audit_checkpoints SET event_count = 1", "DELETE FROM audit_checkpoints"):
            with pytest.raises((DBAPIError, IntegrityError)):
                await session.execute(text(statement))
            await session.rollback()


async def test_cli_audit_verify_exits_1_on_a_cut_trail(
    ctx: ServiceContext,
    clock: FixedClock,
    session_factory: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from server.cli_audit import _verify

    await _record(ctx, clock, 3)
    assert await _verify(ctx.settings, pin=True) == 0
    await _tamper(session_factory, "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)")
    capsys.readouterr()
    assert await _verify(ctx.settings, pin=False) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
