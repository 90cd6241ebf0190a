"""Bundling use cases: registry takes effect only with the first additional payment (R4.6), the system can
bundle (demo seed), and a lapsed attachment is renewed by the next payment without approval (R7.3, R7.4)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AttachmentLetter, CoverageDecisionRecord, InsuredPerson, ScheduledPayment
from server.services import payments as service
from server.services import program_change
from server.services.context import ServiceContext
from tests.factories import Factories
from tests.services.test_dispatch import principal

QUARTERLY = [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]


async def test_registry_takes_effect_only_with_the_first_additional_payment_r4_6(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """12000.01 over three dates: 4000.01 first (it carries the leftover kopeck), then 4000.00 twice."""
    program = await factories.program(tariff_dispatcher=Decimal("40000.00"), tariff_registry=Decimal("52000.01"))
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(program=program, payment_mode="installments", installments=QUARTERLY)
    person = await factories.insured(policy=policy)
    change = await program_change.request_service_type_change(
        ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
    )
    assert change.application is not None
    schedule = change.application.schedule
    assert [str(p.amount) for p in schedule] == ["4000.01", "4000.00", "4000.00"]
    admin = principal("admin", (await factories.staff("admin")).id)

    early = await service.bundle_payment(
        ctx, admin, policy_id=policy.id, amount=Decimal("4000.00"), scheduled_payment_id=schedule[1].id
    )
    [not_yet] = early.activations
    assert not_yet.effective is False and [r["rule"] for r in not_yet.reasons] == ["R4.6"]
    assert early.attachment_letters == []
    async with session_factory() as session:
        row = await session.get(InsuredPerson, person.id)
        assert row is not None and row.service_type == "dispatcher"

    first = await service.bundle_payment(
        ctx, admin, policy_id=policy.id, amount=Decimal("4000.01"), scheduled_payment_id=schedule[0].id
    )
    [activation] = first.activations
    assert activation.effective is True and len(first.attachment_letters) == 1
    async with session_factory() as session:
        row = await session.get(InsuredPerson, person.id)
        assert row is not None and (row.service_type, row.attached_clinic_id) == ("registry", clinic.id)
        kinds = (
            await session.execute(
                select(CoverageDecisionRecord.kind, CoverageDecisionRecord.allowed).where(
                    CoverageDecisionRecord.kind == "registry_activation"
                )
            )
        ).all()
    assert sorted(kinds) == [("registry_activation", False), ("registry_activation", True)]


async def test_the_system_can_bundle_inside_a_transaction(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """``bundle_payment_txn`` without a principal (the demo seed): decisions are recorded as the system's."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(program=program)
    await factories.insured(policy=policy, service_type="registry", attached_clinic_id=clinic.id)
    async with session_factory() as session:
        scheduled = (await session.execute(select(ScheduledPayment))).scalar_one()
        result = await service.bundle_payment_txn(
            session,
            policy_id=policy.id,
            amount=scheduled.amount,
            bundled_on=date(2026, 1, 12),
            scheduled_payment_id=None,
            principal=None,
            now=clock.now(),
        )
        await session.commit()
    [generated] = result.attachment_letters
    assert generated.letter.valid_from == date(2026, 1, 13) and generated.letter.valid_until == date(2026, 12, 31)
    async with session_factory() as session:
        record = (await session.execute(select(CoverageDecisionRecord))).scalar_one()
    assert (record.kind, record.actor_type, record.actor_id) == ("attachment_letter", "system", None)


async def test_next_installment_renews_a_lapsed_attachment_r7_4(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R7.4: unpaid, the attachment ends at the due date; the late payment attaches again from its send day."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(program=program, payment_mode="installments", installments=QUARTERLY)
    await factories.insured(policy=policy, service_type="registry", attached_clinic_id=clinic.id)
    admin = principal("admin", (await factories.staff("admin")).id)
    async with session_factory() as session:
        dues = (await session.execute(select(ScheduledPayment).order_by(ScheduledPayment.due_on))).scalars().all()
    await service.bundle_payment(
        ctx,
        admin,
        policy_id=policy.id,
        amount=dues[0].amount,
        scheduled_payment_id=dues[0].id,
        bundled_on=date(2025, 12, 25),
    )
    late = await service.bundle_payment(
        ctx,
        admin,
        policy_id=policy.id,
        amount=dues[1].amount,
        scheduled_payment_id=dues[1].id,
        bundled_on=date(2026, 6, 9),
    )
    [generated] = late.attachment_letters
    assert (generated.letter.valid_from, generated.letter.valid_until) == (date(2026, 6, 10), date(2026, 7, 1))
    assert "R6.2" in {r["rule"] for r in generated.reasons}  # not a continuation: there was a gap
    async with session_factory() as session:
        letters = (await session.execute(select(AttachmentLetter).order_by(AttachmentLetter.id))).scalars().all()
    assert [(a.valid_from, a.valid_until) for a in letters] == [
        (date(2026, 1, 1), date(2026, 4, 1)),
        (date(2026, 6, 10), date(2026, 7, 1)),
    ]
