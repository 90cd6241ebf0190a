"""Assignment off the request path: a change serves only the head of its queue and nudges the background loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import Consultation
from server.domain import red_flags
from server.services import consultations as service
from server.services.consultations.assignment import nudge_assignment
from server.services.context import ServiceContext
from server.services.identity import Principal
from tests.factories import Factories


def _patient(person_id: int) -> Principal:
    return Principal("insured", person_id, "insured", "test-session", datetime(2030, 1, 1, tzinfo=UTC))


async def _status(session_factory: async_sessionmaker[AsyncSession], consultation_id: int) -> tuple[str, int | None]:
    async with session_factory() as session:
        row = await session.get(Consultation, consultation_id)
        assert row is not None
        return row.status, row.offered_to_id


async def test_a_request_does_not_run_the_whole_cycle_r11_1(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The request is offered at once, but another consultation's lapsed offer waits for the cycle (R11.1)."""
    silent = await factories.staff("doctor")
    await factories.shift(silent)
    free = await factories.staff("doctor")
    await factories.shift(free)
    for doctor in (silent, free):
        await factories.online(doctor)  # only doctors with a live socket are offered requests (R11.7)
    lapsed = await factories.consultation(
        await factories.insured(),
        status="offered",
        offered_to_id=silent.id,
        offer_expires_at=clock.now() - timedelta(seconds=1),
    )
    assert await _status(session_factory, lapsed.id) == ("offered", silent.id)
    view = await service.request_consultation(
        ctx,
        _patient((await factories.insured()).id),
        channel="text",
        specialty="general_practice",
        complaints="cough",
        red_flags=dict.fromkeys(red_flags.CODES, False),
    )
    assert (view.status, (await _status(session_factory, view.id))[1]) == ("offered", free.id)
    assert await _status(session_factory, lapsed.id) == ("offered", silent.id)  # not the request's job

    await service.run_assignment_cycle(ctx)
    status, offered_to = await _status(session_factory, lapsed.id)
    assert status == "offered" and offered_to != silent.id  # the cycle passed it on


@pytest.mark.settings(assignment_interval_seconds=3600)
async def test_a_nudge_wakes_the_background_loop_at_once(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """With an hour between cycles, a nudge over the bus still gets a waiting consultation offered in seconds."""
    doctor = await factories.staff("doctor")
    await factories.shift(doctor)
    await factories.online(doctor)  # only doctors with a live socket are offered requests (R11.7)
    await asyncio.sleep(0.2)  # the loop's first run (at start-up) is over: the queue was empty then
    waiting = await factories.consultation(await factories.insured(), status="queued")
    assert await _status(session_factory, waiting.id) == ("queued", None)

    await nudge_assignment(ctx)
    async with asyncio.timeout(10):
        while (await _status(session_factory, waiting.id))[0] != "offered":
            await asyncio.sleep(0.05)
    assert await _status(session_factory, waiting.id) == ("offered", doctor.id)
