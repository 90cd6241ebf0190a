"""The unit of work on the test backend: commit or roll back, after-commit hooks, publishing after commit."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bus import InProcessBus, Message, Subscription
from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from server.db.models import Policyholder
from server.db.uow import UnitOfWork
from server.domain.errors import Unavailable


async def _holders(session_factory: async_sessionmaker[AsyncSession], name: str) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).where(Policyholder.name == name))).scalar_one())


def _holder(name: str, clock: FixedClock) -> Policyholder:
    return Policyholder(kind="corporate", name=name, created_at=clock.now())


async def _next(subscription: Subscription) -> tuple[str, Message] | None:
    try:
        return await asyncio.wait_for(subscription.get(), 0.2)
    except TimeoutError:
        return None


async def test_commit_keeps_the_work_and_leaving_without_commit_rolls_it_back(
    session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    async with UnitOfWork(session_factory) as uow:
        uow.session.add(_holder("kept", clock))
        await uow.commit()
    async with UnitOfWork(session_factory) as uow:
        uow.session.add(_holder("dropped", clock))
        await uow.session.flush()
    assert await _holders(session_factory, "kept") == 1
    assert await _holders(session_factory, "dropped") == 0


async def test_an_error_inside_rolls_back_and_propagates(
    session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    with pytest.raises(ValueError, match="boom"):
        async with UnitOfWork(session_factory) as uow:
            uow.session.add(_holder("failed", clock))
            await uow.session.flush()
            raise ValueError("boom")
    assert await _holders(session_factory, "failed") == 0


async def test_after_commit_hooks_run_once_after_commit_and_never_on_rollback(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ran: list[str] = []

    async def async_hook() -> None:
        ran.append("async")

    async with UnitOfWork(session_factory) as uow:
        uow.after_commit(lambda: ran.append("sync"))
        uow.after_commit(async_hook)
        assert ran == []  # nothing before the commit
        await uow.commit()
        await uow.commit()  # a second commit does not run them again
    assert ran == ["sync", "async"]

    async with UnitOfWork(session_factory) as uow:
        uow.after_commit(lambda: ran.append("rolled back"))
    assert ran == ["sync", "async"]


async def test_publish_reaches_the_bus_only_after_commit(session_factory: async_sessionmaker[AsyncSession]) -> None:
    bus = InProcessBus()
    await bus.start()
    subscription = bus.subscribe(["consultation:1"])
    try:
        async with UnitOfWork(session_factory, bus) as uow:
            uow.publish("consultation:1", {"type": "consultation.updated", "status": "queued"})
            assert await _next(subscription) is None  # not before the commit
            await uow.commit()
        assert await _next(subscription) == ("consultation:1", {"type": "consultation.updated", "status": "queued"})

        async with UnitOfWork(session_factory, bus) as uow:
            uow.publish("consultation:1", {"type": "consultation.updated", "status": "rolled back"})
        assert await _next(subscription) is None
    finally:
        subscription.close()
        await bus.close()


class _BrokenBus(InProcessBus):
    async def publish(self, channel: str, message: Message) -> None:
        raise ConnectionError("bus down")


async def test_a_bus_failure_after_commit_is_logged_not_raised(
    session_factory: async_sessionmaker[AsyncSession], clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The commit already happened: the use case succeeds and clients catch up from the database."""
    with caplog.at_level(logging.WARNING, logger="server.db.uow"):
        async with UnitOfWork(session_factory, _BrokenBus()) as uow:
            uow.session.add(_holder("published", clock))
            uow.publish("consultation:1", {"type": "consultation.updated"})
            await uow.commit()
    assert await _holders(session_factory, "published") == 1
    assert "could not publish consultation.updated" in caplog.text


async def test_publish_needs_a_bus(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(RuntimeError, match="no bus"):
            uow.publish("consultation:1", {"type": "x"})


async def test_an_unreachable_database_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    """A connection failure becomes ``Unavailable`` (503 at the edge) saying nothing was saved."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    try:
        with pytest.raises(Unavailable, match="nothing was saved"):
            async with UnitOfWork(make_session_factory(engine)) as uow:
                await uow.session.execute(select(1))
    finally:
        await engine.dispose()
        # aiosqlite's worker thread of the failed connection answers once more after the failure;
        # let it, or it calls into this test's closed loop and the error lands on the next test.
        await asyncio.sleep(0.2)
