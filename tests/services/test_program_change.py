"""Service type change use cases: choosing before the policy starts (R1.4), the in-flight guard behind the 409,
and the printable application (R4.2)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AttachmentLetter, InsuredPerson, ProgramChangeApplication, ProgramClinic
from server.domain.errors import Conflict, RuleViolation
from server.services import payments
from server.services import program_change as service
from server.services.context import ServiceContext
from tests.factories import Factories
from tests.services.test_dispatch import principal


async def test_registry_chosen_before_the_policy_starts_is_priced_and_attaches_when_paid_R1_4_R8_1(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Item 4: chosen at conclusion, registry costs the registry tariff; a lump sum already paid is not enough:
    the letter follows the payment of the difference."""
    program = await factories.program(tariff_dispatcher=Decimal("40000.00"), tariff_registry=Decimal("52000.00"))
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        starts_on=date(2026, 7, 1),
        ends_on=date(2027, 6, 30),
    )
    person = await factories.insured(policy=policy)
    admin = principal("admin", (await factories.staff("admin")).id)
    lump = next(r for r in await payments.payments_due(ctx, policy_id=policy.id) if r.purpose == "premium")
    nothing = await payments.bundle_payment(
        ctx, admin, policy_id=policy.id, amount=lump.amount, scheduled_payment_id=lump.id
    )
    assert nothing.attachment_letters == []
    me = principal("insured", person.id)
    chosen = await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=clinic.id)
    assert chosen.application is not None and chosen.effective is False
    assert chosen.application.additional_premium == Decimal("12000.00")
    priced = next(r for r in chosen.reasons if r["rule"] == "R1.4" and "registry tariff" in r["message"])
    assert priced["facts"]["premium"] == "12000.00" and priced["facts"]["starts_on"] == "2026-07-01"
    [due] = chosen.application.schedule
    paid = await payments.bundle_payment(
        ctx, admin, policy_id=policy.id, amount=due.amount, scheduled_payment_id=due.id
    )
    [letter] = paid.attachment_letters
    assert letter.letter.valid_from == date(2026, 7, 1)  # R10.2: attachment starts with the policy
    assert letter.letter.valid_until == date(2027, 6, 30)
    async with session_factory() as session:
        row = await session.get(InsuredPerson, person.id)
        assert row is not None and (row.service_type, row.attached_clinic_id) == ("registry", clinic.id)


async def test_attached_clinic_that_left_the_program_is_replaced_with_the_paid_time_carried_over_R5_4(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Item 12: the person is not stuck: a replacement of the same category, no premium, a letter to the new clinic."""
    program = await factories.program()
    leaving = await factories.clinic(programs=[program])
    staying = await factories.clinic(programs=[program])
    policy = await factories.policy(policyholder=await factories.policyholder(kind="individual"), program=program)
    person = await factories.insured(policy=policy, service_type="registry", attached_clinic_id=leaving.id)
    admin = principal("admin", (await factories.staff("admin")).id)
    lump = next(r for r in await payments.payments_due(ctx, policy_id=policy.id) if r.purpose == "premium")
    await payments.bundle_payment(
        ctx, admin, policy_id=policy.id, amount=lump.amount, scheduled_payment_id=lump.id, bundled_on=date(2026, 1, 12)
    )
    async with session_factory() as session, session.begin():
        await session.execute(
            delete(ProgramClinic).where(ProgramClinic.program_id == program.id, ProgramClinic.clinic_id == leaving.id)
        )
    me = principal("insured", person.id)
    changed = await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=staying.id)
    assert changed.effective is True and changed.attached_clinic is not None
    assert changed.attached_clinic.id == staying.id
    assert changed.reasons[0]["rule"] == "R5.4"
    assert "R4.5" not in {r["rule"] for r in changed.reasons}
    async with session_factory() as session:
        letters = (await session.execute(select(AttachmentLetter).order_by(AttachmentLetter.id))).scalars().all()
        row = await session.get(InsuredPerson, person.id)
    assert [(a.clinic_id, a.valid_from, a.valid_until) for a in letters] == [
        (leaving.id, date(2026, 1, 13), date(2026, 12, 31)),
        (staying.id, date(2026, 6, 11), date(2026, 12, 31)),
    ]
    assert row is not None and row.attached_clinic_id == staying.id
    # the choice is final again (R5.1)
    with pytest.raises(RuleViolation) as refused:
        await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=leaving.id)
    assert refused.value.rules[0] in {"R5.1", "R2.3"}


async def test_after_the_policy_ends_nothing_changes_r1_4(ctx: ServiceContext, factories: Factories) -> None:
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(
        policyholder=await factories.policyholder(kind="individual"),
        program=program,
        starts_on=date(2025, 1, 1),
        ends_on=date(2025, 12, 31),
    )
    person = await factories.insured(policy=policy)
    with pytest.raises(RuleViolation) as refused:
        await service.request_service_type_change(
            ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
        )
    assert "R1.4" in refused.value.rules


async def test_pending_key_allows_one_application_in_flight_per_person(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The unique ``pending_key`` is what turns a concurrent double submission into a 409."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    person = await factories.insured(
        policy=await factories.policy(policyholder=await factories.policyholder(kind="individual"), program=program)
    )
    await service.request_service_type_change(
        ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
    )
    with pytest.raises(Conflict) as conflict:
        await service.request_service_type_change(
            ctx, principal("insured", person.id), service_type="registry", clinic_id=clinic.id
        )
    assert conflict.value.code == "application_in_flight"
    async with session_factory() as session:
        session.add(
            ProgramChangeApplication(
                insured_person_id=person.id,
                policy_id=person.policy_id,
                clinic_id=clinic.id,
                status="submitted",
                additional_premium=0,
                pending_key=person.id,
                created_at=clock.now(),
                reasons=[],
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_printed_application_escapes_every_value(ctx: ServiceContext, factories: Factories) -> None:
    """R4.2: the printed application names exactly one clinic; hostile names stay text."""
    program = await factories.program(name="<script>alert(1)</script>")
    clinic = await factories.clinic(programs=[program], name='Clinic "A" & <i>B</i>')
    person = await factories.insured(
        policy=await factories.policy(policyholder=await factories.policyholder(kind="individual"), program=program)
    )
    me = principal("insured", person.id)
    change = await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=clinic.id)
    assert change.application is not None
    page = await service.application_html(ctx, me, change.application.id)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Clinic &quot;A&quot; &amp; &lt;i&gt;B&lt;/i&gt;" in page
    assert page.count("<th>Clinic</th>") == 1
