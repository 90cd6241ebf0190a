"""Consultation storage on the test backend: conditional state changes (exactly one racer wins), loads, queue order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.repositories import consultations as repo
from tests.factories import Factories


async def test_an_offer_is_made_only_from_the_queue_and_accepted_only_by_its_doctor_in_time(
    session_factory: async_sessionmaker[AsyncSession], factories: Factories, clock: FixedClock
) -> None:
    first = await factories.staff("doctor")
    second = await factories.staff("doctor")
    consultation = await factories.consultation(await factories.insured(), status="queued")
    deadline = clock.now() + timedelta(seconds=60)
    async with session_factory() as session:
        assert await repo.mark_offered(session, consultation.id, first.id, deadline)
        assert not await repo.mark_offered(session, consultation.id, second.id, deadline)  # no longer queued
        assert not await repo.mark_accepted(session, consultation.id, second.id, clock.now())  # not offered to them
        assert not await repo.mark_accepted(session, consultation.id, first.id, deadline)  # the deadline has passed
        assert await repo.mark_accepted(session, consultation.id, first.id, clock.now())
        await session.commit()
        row = await repo.refresh_consultation(session, consultation.id)
    assert row is not None and (row.status, row.doctor_id, row.offered_to_id) == ("active", first.id, None)


async def test_two_sessions_racing_for_one_consultation_one_wins(
    session_factory: async_sessionmaker[AsyncSession], factories: Factories, clock: FixedClock
) -> None:
    """The conditional UPDATE is the lock: the second writer sees the row changed and gets ``False``."""
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(await factories.insured(), status="queued")
    async with session_factory() as first:
        assert await repo.mark_offered(first, consultation.id, doctor.id, clock.now() + timedelta(minutes=1))
        await first.commit()
    async with session_factory() as second:
        patient_id = consultation.insured_person_id
        assert not await repo.mark_cancelled(second, consultation.id, patient_id + 1, clock.now(), "x")  # not theirs
        assert await repo.mark_cancelled(second, consultation.id, patient_id, clock.now(), "x")
        await second.commit()
    async with session_factory() as third:
        assert not await repo.mark_offer_returned(third, consultation.id, doctor.id, [doctor.id])  # cancelled meanwhile


async def test_loads_count_active_consultations_and_pending_offers(
    session_factory: async_sessionmaker[AsyncSession], factories: Factories, clock: FixedClock
) -> None:
    doctor = await factories.staff("doctor")
    idle = await factories.staff("doctor")
    await factories.consultation(await factories.insured(), doctor, status="active")
    await factories.consultation(
        await factories.insured(),
        status="offered",
        offered_to_id=doctor.id,
        offer_expires_at=clock.now() + timedelta(minutes=1),
    )
    await factories.consultation(await factories.insured(), doctor, status="completed")
    async with session_factory() as session:
        assert await repo.doctor_loads(session, [doctor.id, idle.id]) == {doctor.id: 2, idle.id: 0}


async def test_the_queue_is_served_oldest_request_first(
    session_factory: async_sessionmaker[AsyncSession], factories: Factories, clock: FixedClock
) -> None:
    later = await factories.consultation(await factories.insured(), status="queued")
    earlier = await factories.consultation(
        await factories.insured(), status="queued", requested_at=clock.now() - timedelta(minutes=5)
    )
    async with session_factory() as session:
        assert [c.id for c in await repo.queued_consultations(session)] == [earlier.id, later.id]
        assert await repo.waiting_ahead(session, later) == 1
        assert await repo.waiting_ahead(session, earlier) == 0
