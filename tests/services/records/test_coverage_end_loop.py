"""A removal dated in the future takes effect on its day by itself, once, with several processes (issue 16).

Two app instances (two server processes) share the database and the injected clock; each runs the
coverage-end loop. Before the day nothing happens; when the clock passes it, cover ends exactly once:
one ``coverage_ended`` change, one SMS, the account inactive.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.db.models import InsuredPerson, RecordChange
from server.services.context import ServiceContext
from server.services.records import coverage_end
from tests.factories import Factories
from tests.fakes import RecordingSender

INTERVAL = 0.05


async def _state(session_factory: async_sessionmaker[AsyncSession], person_id: int) -> tuple[bool, list[str]]:
    async with session_factory() as session:
        person = await session.get(InsuredPerson, person_id)
        assert person is not None
        actors = (
            await session.scalars(
                select(RecordChange.actor).where(
                    RecordChange.insured_person_id == person_id, RecordChange.action == "coverage_ended"
                )
            )
        ).all()
        return person.is_active, list(actors)


@pytest.mark.settings(coverage_end_interval_seconds=INTERVAL)
async def test_two_processes_loops_end_a_future_removal_on_its_day_once(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: FixedClock,
    sender: RecordingSender,
    factories: Factories,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    removal = date(2026, 6, 12)  # two days after the clock's today
    person = await factories.insured(starts_on=date(2026, 1, 1), removed_on=removal)
    await aiohttp_client(create_app(settings, clock=clock, code_sender=sender))
    await aiohttp_client(create_app(settings, clock=clock, code_sender=sender))

    await asyncio.sleep(INTERVAL * 8)  # several cycles of both loops
    assert await _state(session_factory, person.id) == (True, [])

    clock.advance(timedelta(days=2))  # 2026-06-12: the removal date has come
    for _ in range(200):
        active, _actors = await _state(session_factory, person.id)
        if not active:
            break
        await asyncio.sleep(INTERVAL)
    await asyncio.sleep(INTERVAL * 8)  # both loops go round again: nothing more happens
    assert await _state(session_factory, person.id) == (False, [coverage_end.SYSTEM_ACTOR.key])
    assert [m.phone for m in sender.messages if "cover" in m.text] == [person.phone]


async def test_concurrent_runs_claim_each_person_once(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The claim is a conditional UPDATE: two runs at the same moment split the due persons, never repeat one."""
    due = [await factories.insured(starts_on=date(2026, 1, 1), removed_on=date(2026, 6, 10)) for _ in range(3)]
    first, second = await asyncio.gather(coverage_end.end_coverage_job(ctx), coverage_end.end_coverage_job(ctx))
    assert sorted(first.persons + second.persons) == sorted(p.id for p in due)
    for person in due:
        assert await _state(session_factory, person.id) == (False, [coverage_end.SYSTEM_ACTOR.key])
