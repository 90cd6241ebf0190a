"""The consultation queue: offers, timeouts, least-loaded choice, limits, shift-end handover, races (R11.1, R11.2)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.db.engine import make_engine, make_session_factory
from server.db.models import Consultation, ConsultationMessage, InsuredPerson, StaffAccount
from server.domain import red_flags
from server.domain.errors import Conflict
from server.keys import context_key
from server.services import consultation_safety as safety
from server.services import consultations as service
from server.services.context import ServiceContext
from server.services.coverage_facts import coverage_day, to_insured_facts, to_policy_facts, to_program_facts
from server.services.identity import Principal
from tests.factories import Factories
from tests.fakes import RecordingSender


def _principal(role: str, subject_id: int) -> Principal:
    subject_type = "insured" if role == "insured" else "staff"
    return Principal(subject_type, subject_id, role, "test-session", datetime(2030, 1, 1, tzinfo=UTC))


async def _doctor(
    factories: Factories,
    clock: FixedClock,
    *,
    starts: timedelta = timedelta(hours=-1),
    hours: float = 8,
    **fields: object,
) -> StaffAccount:
    doctor = await factories.staff("doctor", **fields)
    await factories.shift(doctor, starts_at=clock.now() + starts, hours=hours)
    await factories.online(doctor)
    return doctor


async def _request(ctx: ServiceContext, person: InsuredPerson) -> service.ConsultationView:
    return await service.request_consultation(
        ctx,
        _principal("insured", person.id),
        channel="text",
        specialty="general_practice",
        complaints="cough",
        red_flags=dict.fromkeys(red_flags.CODES, False),
    )


async def _get(ctx: ServiceContext, consultation_id: int) -> Consultation:
    async with ctx.session_factory() as session:
        row = await session.get(Consultation, consultation_id)
        assert row is not None
        return row


async def _busy(factories: Factories, doctor: StaffAccount, count: int) -> None:
    for _ in range(count):
        await factories.consultation(await factories.insured(), doctor, status="active")


async def test_an_offer_not_accepted_in_time_goes_to_the_next_doctor(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    """R11.1: a doctor who does not accept within the timeout is skipped and the next one is offered."""
    first = await _doctor(factories, clock)
    second = await _doctor(factories, clock)
    view = await _request(ctx, await factories.insured())
    assert (view.status, (await _get(ctx, view.id)).offered_to_id) == ("offered", first.id)

    clock.advance(timedelta(seconds=59))
    assert await service.run_assignment_cycle(ctx) == 0
    assert (await _get(ctx, view.id)).offered_to_id == first.id

    clock.advance(timedelta(seconds=1))
    assert await service.run_assignment_cycle(ctx) == 1
    row = await _get(ctx, view.id)
    assert (row.status, row.offered_to_id, row.skipped_doctor_ids) == ("offered", second.id, [first.id])

    with pytest.raises(Conflict) as refused:
        await service.accept_offer(ctx, _principal("doctor", first.id), view.id)
    assert refused.value.code == "offer_expired"
    accepted = await service.accept_offer(ctx, _principal("doctor", second.id), view.id)
    assert accepted.status == "active"


async def test_accepting_after_the_deadline_is_409_and_passes_the_offer_on(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    first = await _doctor(factories, clock)
    second = await _doctor(factories, clock)
    view = await _request(ctx, await factories.insured())
    clock.advance(timedelta(seconds=61))
    with pytest.raises(Conflict) as refused:
        await service.accept_offer(ctx, _principal("doctor", first.id), view.id)
    assert refused.value.code == "offer_expired"
    row = await _get(ctx, view.id)
    assert (row.status, row.offered_to_id) == ("offered", second.id)


async def test_r11_7_when_every_doctor_has_passed_the_round_ends_it_escalates_and_a_new_round_waits(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    """R11.7: a decline sticks for the round; the duty team is alerted; the next round starts after the pause."""
    first = await _doctor(factories, clock)
    second = await _doctor(factories, clock)
    view = await _request(ctx, await factories.insured())
    await service.decline_offer(ctx, _principal("doctor", first.id), view.id)
    assert (await _get(ctx, view.id)).offered_to_id == second.id
    await service.decline_offer(ctx, _principal("doctor", second.id), view.id)
    await service.run_assignment_cycle(ctx)  # the background loop, nudged by the decline
    row = await _get(ctx, view.id)
    assert (row.status, row.offered_to_id, row.escalation_reason) == ("queued", None, "round_exhausted")
    assert row.round_ended_at == clock.now()
    clock.advance(timedelta(minutes=ctx.settings.offer_round_pause_minutes) - timedelta(seconds=1))
    await service.run_assignment_cycle(ctx)
    assert (await _get(ctx, view.id)).status == "queued"
    clock.advance(timedelta(seconds=1))
    await service.run_assignment_cycle(ctx)
    row = await _get(ctx, view.id)
    assert (row.status, row.skipped_doctor_ids, row.round_ended_at) == ("offered", [], None)


async def test_the_least_loaded_doctor_is_chosen(ctx: ServiceContext, factories: Factories, clock: FixedClock) -> None:
    busy = await _doctor(factories, clock)
    lighter = await _doctor(factories, clock)
    await _busy(factories, busy, 2)
    await _busy(factories, lighter, 1)
    view = await _request(ctx, await factories.insured())
    assert (await _get(ctx, view.id)).offered_to_id == lighter.id


async def test_the_per_doctor_limit_is_respected_and_freed_capacity_is_used(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    """Pending offers count towards the limit; a doctor at the limit gets nothing until a consultation ends."""
    doctor = await _doctor(factories, clock, max_active_consultations=2)
    held = await factories.consultation(await factories.insured(), doctor, status="active")
    first = await _request(ctx, await factories.insured())
    second = await _request(ctx, await factories.insured())
    assert (first.status, second.status) == ("offered", "queued")
    assert await service.run_assignment_cycle(ctx) == 0
    assert (await _get(ctx, second.id)).status == "queued"

    await service.cancel_consultation(ctx, _principal("insured", held.insured_person_id), held.id)
    row = await _get(ctx, second.id)
    assert (row.status, row.offered_to_id) == ("offered", doctor.id)


async def test_a_doctor_whose_shift_is_ending_gets_no_new_offers(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    await _doctor(factories, clock, starts=timedelta(hours=-8), hours=8 + 5 / 60)  # 5 minutes left
    view = await _request(ctx, await factories.insured())
    assert view.status == "queued"
    assert view.doctors_on_duty == 1


async def test_a_pending_offer_returns_to_the_queue_when_the_shift_is_ending(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    leaving = await _doctor(factories, clock, starts=timedelta(hours=-8), hours=8 + 10.5 / 60)
    arriving = await _doctor(factories, clock, starts=timedelta(seconds=30))
    view = await _request(ctx, await factories.insured())
    assert (await _get(ctx, view.id)).offered_to_id == leaving.id
    clock.advance(timedelta(seconds=45))  # 9.75 minutes of duty left, the offer itself still open
    await service.run_assignment_cycle(ctx)
    row = await _get(ctx, view.id)
    assert (row.status, row.offered_to_id, row.skipped_doctor_ids) == ("offered", arriving.id, [])


async def test_r11_8_at_shift_end_the_doctor_keeps_the_consultation_until_their_connection_is_gone(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: Any
) -> None:
    """R11.8: the leaving doctor finishes it; only a lost connection past the grace hands it on, chat intact."""
    leaving = await factories.staff("doctor")
    await factories.shift(leaving, starts_at=clock.now() - timedelta(hours=7), hours=7.5)  # ends in 30 minutes
    await safety.doctor_connected(ctx, "leaving-socket", leaving.id)
    arriving = await _doctor(factories, clock, starts=timedelta(minutes=20))
    view = await _request(ctx, await factories.insured())
    await service.accept_offer(ctx, _principal("doctor", leaving.id), view.id)
    await factories.add(
        ConsultationMessage(
            consultation_id=view.id,
            seq=1,
            sender_key=f"staff:{leaving.id}",
            sender_role="doctor",
            client_message_id="m1",
            kind="text",
            body="How long have you had the cough?",
            created_at=clock.now(),
        )
    )
    clock.advance(timedelta(minutes=45))  # the shift ended 15 minutes ago
    await safety.renew_connections(ctx, ["leaving-socket"])
    await service.run_assignment_cycle(ctx)
    assert (await _get(ctx, view.id)).doctor_id == leaving.id  # never dropped mid-sentence

    await safety.doctor_disconnected(ctx, "leaving-socket")
    clock.advance(timedelta(seconds=ctx.settings.disconnect_grace_seconds))
    await service.run_assignment_cycle(ctx)
    row = await _get(ctx, view.id)
    assert (row.status, row.offered_to_id, row.doctor_id, row.skipped_doctor_ids) == (
        "offered",
        arriving.id,
        None,
        [leaving.id],
    )
    async with session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(ConsultationMessage))).scalar_one() == 1


async def test_no_handover_while_the_doctor_stays_on_duty_back_to_back(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    doctor = await _doctor(factories, clock, starts=timedelta(hours=-7), hours=7.5)
    await factories.shift(doctor, starts_at=clock.now() + timedelta(minutes=30), hours=8)
    view = await _request(ctx, await factories.insured())
    await service.accept_offer(ctx, _principal("doctor", doctor.id), view.id)
    clock.advance(timedelta(hours=1))
    await service.run_assignment_cycle(ctx)
    row = await _get(ctx, view.id)
    assert (row.status, row.doctor_id) == ("active", doctor.id)


async def _second_process(ctx: ServiceContext) -> tuple[ServiceContext, object]:
    """A context with its own engine, as a second server process would have."""
    engine = make_engine(ctx.settings.effective_database_url)
    return dataclasses.replace(ctx, session_factory=make_session_factory(engine)), engine


async def test_two_concurrent_assignment_cycles_make_one_offer(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    """Two processes running the loop at once never offer a consultation twice."""
    await _doctor(factories, clock)
    await _doctor(factories, clock)
    other, engine = await _second_process(ctx)
    try:
        for _ in range(5):
            queued = await factories.consultation(await factories.insured(), None, status="queued")
            made = await asyncio.gather(service.run_assignment_cycle(ctx), service.run_assignment_cycle(other))
            assert sum(made) == 1
            row = await _get(ctx, queued.id)
            assert row.status == "offered" and row.offered_to_id is not None
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


async def test_two_concurrent_cycles_respect_the_doctor_limit(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    doctor = await _doctor(factories, clock, max_active_consultations=1)
    for _ in range(3):
        await factories.consultation(await factories.insured(), None, status="queued")
    other, engine = await _second_process(ctx)
    try:
        made = await asyncio.gather(service.run_assignment_cycle(ctx), service.run_assignment_cycle(other))
    finally:
        await engine.dispose()  # type: ignore[attr-defined]
    assert sum(made) == 1
    async with ctx.uow() as uow:
        offered = (
            await uow.session.execute(
                select(func.count()).select_from(Consultation).where(Consultation.offered_to_id == doctor.id)
            )
        ).scalar_one()
    assert offered == 1


async def test_concurrent_requests_of_one_person_make_one_consultation(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    person = await factories.insured()
    results = await asyncio.gather(*(_request(ctx, person) for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(r, service.ConsultationView) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, service.ConsultationView))


async def test_the_background_loop_offers_queued_consultations(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: FixedClock,
    sender: RecordingSender,
    factories: Factories,
) -> None:
    app = create_app(settings.model_copy(update={"assignment_interval_seconds": 0.05}), clock=clock, code_sender=sender)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    doctor = await _doctor(factories, clock)
    queued = await factories.consultation(await factories.insured(), None, status="queued")
    ctx = client.app[context_key]
    async with asyncio.timeout(10):
        while (await _get(ctx, queued.id)).offered_to_id != doctor.id:
            await asyncio.sleep(0.05)


async def test_coverage_facts_convert_stored_rows(ctx: ServiceContext, factories: Factories, clock: FixedClock) -> None:
    """The ORM -> domain converters shared with the dispatch rules."""
    program = await factories.program(telemedicine_allowance_per_year=7)
    policy = await factories.policy(program=program, payment_mode="installments")
    person = await factories.insured(policy=policy)
    facts = to_program_facts(program, [1, 2])
    assert facts.telemedicine_allowance_per_year == 7 and facts.clinic_ids == frozenset({1, 2})
    assert to_policy_facts(policy).program_id == program.id
    assert to_insured_facts(person).service_type == "dispatcher"
    assert coverage_day(datetime(2026, 6, 10, 22, 30, tzinfo=UTC)).isoformat() == "2026-06-11"  # Moscow is UTC+3
