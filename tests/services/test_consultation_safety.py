"""Clinical-safety use cases on the real database: escalation, disconnect grace, wait, addenda, alerts, consents.

R11.6-R11.9 and checklist E1; the routes and sockets that use them are tested under tests/api and tests/realtime.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import Consultation, ConsultationHandover, DutyAlert, DutyShift, StaffAccount
from server.domain import roster as roster_rules
from server.domain.consent import CURRENT_TEXTS, ConsentKind, ConsentRequired
from server.domain.errors import Conflict, NotFound
from server.services import alerts, consents
from server.services import consultation_safety as safety
from server.services.context import ServiceContext
from server.services.identity import Principal
from server.services.roster import to_domain_shift
from tests.factories import Factories


def _staff(account: StaffAccount, clock: FixedClock) -> Principal:
    return Principal("staff", account.id, account.role, "sid", clock.now() + timedelta(minutes=15))


async def _shifts(session_factory: async_sessionmaker[AsyncSession]) -> list[roster_rules.Shift]:
    async with session_factory() as session:
        return [to_domain_shift(s) for s in (await session.execute(select(DutyShift))).scalars()]


async def _alerts(session_factory: async_sessionmaker[AsyncSession]) -> list[DutyAlert]:
    async with session_factory() as session:
        return list((await session.execute(select(DutyAlert).order_by(DutyAlert.id))).scalars())


async def test_r11_8_a_disconnected_doctor_gets_a_grace_then_the_consultation_goes_to_the_front_of_the_queue(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor, colleague = await factories.staff("doctor"), await factories.staff("doctor")
    for account in (doctor, colleague):
        await factories.shift(account, hours=12)
    consultation = await factories.consultation(await factories.insured(), doctor)
    await safety.doctor_connected(ctx, "sock-d", doctor.id)
    await safety.doctor_connected(ctx, "sock-c", colleague.id)
    shifts = await _shifts(session_factory)
    assert await safety.disconnect_sweep(ctx, shifts, clock.now()) == 0
    await safety.doctor_disconnected(ctx, "sock-d")
    clock.advance(timedelta(seconds=ctx.settings.disconnect_grace_seconds - 1))
    assert await safety.disconnect_sweep(ctx, shifts, clock.now()) == 0
    clock.advance(timedelta(seconds=2))
    assert await safety.disconnect_sweep(ctx, shifts, clock.now()) == 1
    async with session_factory() as session:
        row = await session.get(Consultation, consultation.id)
        assert row is not None and (row.status, row.doctor_id, row.skipped_doctor_ids) == ("queued", None, [doctor.id])
        handover = (await session.execute(select(ConsultationHandover))).scalar_one()
        assert (handover.kind, handover.from_doctor_id, handover.to_doctor_id) == ("disconnect", doctor.id, None)
    assert await _alerts(session_factory) == []  # a colleague is there: no alarm needed


async def test_r11_8_nobody_else_connected_means_requeue_and_alert(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor = await factories.staff("doctor")
    await factories.shift(doctor, hours=12)
    consultation = await factories.consultation(await factories.insured(), doctor)
    clock.advance(timedelta(minutes=10))  # never connected at all
    assert await safety.disconnect_sweep(ctx, await _shifts(session_factory), clock.now()) == 1
    [alert] = await _alerts(session_factory)
    assert (alert.kind, alert.consultation_id, alert.reason) == (
        "doctor_disconnected",
        consultation.id,
        "doctor_disconnected",
    )
    assert alert.details["phone"]


async def test_r11_8_a_connected_doctor_whose_shift_ended_keeps_the_consultation(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor = await factories.staff("doctor")
    await factories.shift(doctor, hours=1.5)
    consultation = await factories.consultation(await factories.insured(), doctor)
    await safety.doctor_connected(ctx, "sock", doctor.id)
    clock.advance(timedelta(hours=2))
    await safety.renew_connections(ctx, ["sock"])
    assert await safety.disconnect_sweep(ctx, await _shifts(session_factory), clock.now()) == 0
    async with session_factory() as session:
        row = await session.get(Consultation, consultation.id)
        assert row is not None and row.status == "active" and row.doctor_id == doctor.id


async def test_r11_7_nobody_on_duty_escalates_once_with_a_live_alert(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    queued = await factories.consultation(await factories.insured(), status="queued", specialty="dermatology")
    subscription = ctx.bus.subscribe([alerts.duty_alerts_channel()])
    try:
        await asyncio.sleep(0.05)  # let a Redis subscription settle
        async with session_factory() as session:
            rows = list((await session.execute(select(Consultation.id))).scalars())
        assert await safety.check_escalations(ctx, rows, [], clock.now()) == 1
        assert await safety.check_escalations(ctx, rows, [], clock.now()) == 0
        received = [await asyncio.wait_for(subscription.get(), 5)]
    finally:
        subscription.close()
    [alert] = await _alerts(session_factory)
    assert (alert.kind, alert.reason, alert.consultation_id) == ("escalation", "nobody_on_duty", queued.id)
    assert alert.details["options"] == ["general_practice", "call_back"]
    assert "duty.alert" in str(received)


async def test_r11_7_the_wait_with_the_only_doctor_at_their_limit_is_not_zero(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor = await factories.staff("doctor", specialties=["dermatology"])
    await factories.shift(doctor, specialty="dermatology", hours=12)
    await safety.doctor_connected(ctx, "sock", doctor.id)
    for minutes in (14, 10, 5):
        await factories.consultation(
            await factories.insured(),
            doctor,
            specialty="dermatology",
            accepted_at=clock.now() - timedelta(minutes=minutes),
        )
    waiting = await factories.consultation(await factories.insured(), status="queued", specialty="dermatology")
    shifts = await _shifts(session_factory)
    async with session_factory() as session:
        row = await session.get(Consultation, waiting.id)
        assert row is not None
        wait = await safety.honest_wait(ctx, session, row, shifts, clock.now(), 15)
    assert wait.position == 1 and wait.minutes == 1


async def test_r11_9_addenda_by_the_treating_doctor_only_after_completion_and_append_only(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor, other = await factories.staff("doctor"), await factories.staff("doctor")
    patient = await factories.insured()
    done = await factories.consultation(patient, doctor, status="completed", notes="Rest and fluids.")
    clock.advance(timedelta(hours=5))
    added = await safety.add_addendum(ctx, _staff(doctor, clock), done.id, "Swab culture: negative.")
    assert added.created_at == clock.now() and added.text == "Swab culture: negative."
    with pytest.raises(NotFound):
        await safety.add_addendum(ctx, _staff(other, clock), done.id, "Not my patient.")
    active = await factories.consultation(await factories.insured(), doctor)
    with pytest.raises(Conflict):
        await safety.add_addendum(ctx, _staff(doctor, clock), active.id, "Too early for this.")
    async with session_factory() as session:
        assert (await safety.addenda_for(session, [done.id]))[done.id] == [added]
        original = await session.get(Consultation, done.id)
        assert original is not None and original.notes == "Rest and fluids."
        for statement in ("UPDATE consultation_addenda SET text = 'x'", "DELETE FROM consultation_addenda"):
            with pytest.raises((DBAPIError, IntegrityError)):
                await session.execute(text(statement))
            await session.rollback()


async def test_alerts_are_acknowledged_once_and_reads_are_audited(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    await factories.consultation(await factories.insured(), status="queued", specialty="neurology")
    dispatcher, admin = await factories.staff("dispatcher"), await factories.staff("admin")
    async with ctx.uow() as uow:
        created = await alerts.raise_alert_txn(ctx, uow, kind="no_doctor", specialty="neurology")
        await uow.commit()
    assert created is not None
    listed = await alerts.list_alerts(ctx, _staff(dispatcher, clock), include_acknowledged=False)
    assert [a.id for a in listed] == [created.id]
    taken = await alerts.acknowledge(ctx, _staff(dispatcher, clock), created.id)
    assert taken.acknowledged_by_id == dispatcher.id
    with pytest.raises(Conflict):
        await alerts.acknowledge(ctx, _staff(admin, clock), created.id)
    assert await alerts.list_alerts(ctx, _staff(admin, clock), include_acknowledged=False) == []


async def test_consents_given_recorded_and_withdrawn(
    ctx: ServiceContext, factories: Factories, clock: FixedClock
) -> None:
    """Checklist E1: both consents before a consultation; who, when, which version, from where; withdrawal."""
    person = await factories.insured(consented=False)
    patient = Principal("insured", person.id, "insured", "sid", clock.now() + timedelta(minutes=15))
    async with ctx.uow() as uow:
        with pytest.raises(ConsentRequired):
            await consents.require_txn(uow.session, person.id)
    for kind in ConsentKind:
        given = await consents.give(
            ctx,
            patient,
            kind=kind.value,
            version=CURRENT_TEXTS[kind].version,
            language="ru",
            address="203.0.113.7",
            user_agent="Firefox",
        )
        assert (given.given_from, given.given_at, given.language) == ("203.0.113.7", clock.now(), "ru")
    async with ctx.uow() as uow:
        await consents.require_txn(uow.session, person.id)
    withdrawn = await consents.withdraw(ctx, patient, kind="telemedicine", address="203.0.113.8")
    assert len(withdrawn) == 1
    status = await consents.status(ctx, patient)
    assert status.missing == ["telemedicine"]
    async with ctx.uow() as uow:
        with pytest.raises(ConsentRequired):
            await consents.require_txn(uow.session, person.id)
