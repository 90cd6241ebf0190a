"""Bundling use cases: registry takes effect only with the first additional payment (R4.6), the system can
bundle (demo seed), and a lapsed attachment is renewed by the next payment without approval (R7.3, R7.4)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AttachmentLetter, CoverageDecisionRecord, InsuredPerson, ScheduledPayment
from server.domain.errors import RuleViolation
from server.services import payments as service
from server.services import program_change
from server.services.context import ServiceContext
from server.services.identity import Principal
from tests.factories import Factories
from tests.services.test_dispatch import principal

QUARTERLY = [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]


async def pay_premiums_due(ctx: ServiceContext, admin: Principal, policy_id: int, by: date) -> None:
    """Bundle the policy's own premium installments due by ``by``, each on its due date (on time)."""
    for row in await service.payments_due(ctx, policy_id=policy_id, due_by=by):
        if row.purpose == "premium":
            await service.bundle_payment(
                ctx,
                admin,
                policy_id=policy_id,
                amount=row.amount,
                scheduled_payment_id=row.id,
                bundled_on=min(row.due_on, by),
            )


async def test_registry_takes_effect_only_with_the_first_additional_payment_r4_6(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """12000.01 over three dates: 4000.01 first (it carries the leftover kopeck), then 4000.00 twice."""
    program = await factories.program(tariff_dispatcher=Decimal("40000.00"), tariff_registry=Decimal("52000.01"))
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        payment_mode="installments",
        installments=QUARTERLY,
    )
    person = await factories.insured(policy=policy)
    change = await program_change.request_service_type_change(
        ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
    )
    assert change.application is not None
    schedule = change.application.schedule
    assert [str(p.amount) for p in schedule] == ["4000.01", "4000.00", "4000.00"]
    admin = principal("admin", (await factories.staff("admin")).id)
    await pay_premiums_due(ctx, admin, policy.id, date(2026, 6, 10))  # R7.4: the employer's schedule is up to date

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
    policy = await factories.policy(policyholder=await factories.policyholder(kind="individual"), program=program)
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
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        payment_mode="installments",
        installments=QUARTERLY,
    )
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


async def test_late_earlier_installment_does_not_attach_while_a_later_one_is_unpaid_R7_4(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Item 2: Q2 paid on 07-05 while Q3 (due 07-01) is unpaid: no letter, and the refusal names Q3."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        payment_mode="installments",
        installments=QUARTERLY,
    )
    person = await factories.insured(policy=policy, service_type="registry", attached_clinic_id=clinic.id)
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
    ctx.clock.set(datetime(2026, 7, 5, 9, 0, tzinfo=UTC))  # type: ignore[attr-defined]
    late = await service.bundle_payment(
        ctx,
        admin,
        policy_id=policy.id,
        amount=dues[1].amount,
        scheduled_payment_id=dues[1].id,
        bundled_on=date(2026, 7, 5),
    )
    assert late.attachment_letters == []
    async with session_factory() as session:
        refusal = (
            await session.execute(
                select(CoverageDecisionRecord).where(
                    CoverageDecisionRecord.insured_person_id == person.id, CoverageDecisionRecord.allowed.is_(False)
                )
            )
        ).scalar_one()
    assert refusal.kind == "attachment_letter"
    assert refusal.reasons[0]["rule"] == "R7.4"
    assert refusal.reasons[0]["facts"]["unpaid"][0]["due_on"] == "2026-07-01"
    paid_q3 = await service.bundle_payment(
        ctx,
        admin,
        policy_id=policy.id,
        amount=dues[2].amount,
        scheduled_payment_id=dues[2].id,
        bundled_on=date(2026, 7, 5),
    )
    [letter] = paid_q3.attachment_letters
    assert letter.letter.valid_until == date(2026, 10, 1)


async def test_two_payments_on_one_day_give_one_attachment_letter_R7_6(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Item 14: the Q3 premium and the additional premium bundled the same day make one letter, not two."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        payment_mode="installments",
        installments=QUARTERLY,
    )
    person = await factories.insured(policy=policy)
    admin = principal("admin", (await factories.staff("admin")).id)
    await pay_premiums_due(ctx, admin, policy.id, date(2026, 6, 10))
    change = await program_change.request_service_type_change(
        ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
    )
    assert change.application is not None
    first = await service.bundle_payment(
        ctx,
        admin,
        policy_id=policy.id,
        amount=change.application.schedule[0].amount,
        scheduled_payment_id=change.application.schedule[0].id,
    )
    [made] = first.attachment_letters
    assert made.letter.valid_until == date(2026, 7, 1)
    q3 = next(r for r in await service.payments_due(ctx, policy_id=policy.id) if r.purpose == "premium")
    second = await service.bundle_payment(ctx, admin, policy_id=policy.id, amount=q3.amount, scheduled_payment_id=q3.id)
    [updated] = second.attachment_letters
    assert updated.letter.number == made.letter.number
    assert "R7.6" in {r["rule"] for r in updated.reasons}
    async with session_factory() as session:
        letters = (await session.execute(select(AttachmentLetter))).scalars().all()
    assert len(letters) == 1
    # R7.4: the additional premium's next installment (07-01) still ends it
    assert letters[0].valid_until == date(2026, 7, 1)


async def test_payment_matched_by_its_reference_not_by_its_amount_R7_6(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Item 11: two persons owe the same additional premium; a bare amount is refused, a reference decides."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(policyholder=await factories.policyholder(kind="individual"), program=program)
    first_person = await factories.insured(policy=policy)
    second_person = await factories.insured(policy=policy)
    admin = principal("admin", (await factories.staff("admin")).id)
    await pay_premiums_due(ctx, admin, policy.id, date(2026, 6, 10))
    changes = [
        await program_change.request_service_type_change(
            ctx, principal("insured", p.id), service_type="registry", clinic_id=clinic.id
        )
        for p in (first_person, second_person)
    ]
    assert changes[0].application is not None and changes[1].application is not None
    amount = changes[0].application.schedule[0].amount
    assert changes[1].application.schedule[0].amount == amount
    with pytest.raises(RuleViolation) as err:
        await service.bundle_payment(ctx, admin, policy_id=policy.id, amount=amount)
    assert err.value.code == "payment_unmatched" and err.value.rules == ("R7.6",)
    agreement_number = changes[1].application.agreement_number
    assert agreement_number is not None
    paid = await service.bundle_payment(ctx, admin, policy_id=policy.id, amount=amount, reference=agreement_number)
    [activation] = paid.activations
    assert activation.insured_person_id == second_person.id
    async with session_factory() as session:
        rows = {p.id: p.service_type for p in (await session.execute(select(InsuredPerson))).scalars()}
    assert rows == {first_person.id: "dispatcher", second_person.id: "registry"}
