"""Service type change use cases: choosing before the policy starts (R1.4), the in-flight guard behind the 409,
and the printable application (R4.2)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import InsuredPerson, ProgramChangeApplication
from server.domain.errors import Conflict, RuleViolation
from server.services import program_change as service
from server.services.context import ServiceContext
from tests.factories import Factories
from tests.services.test_dispatch import principal


async def test_before_the_policy_starts_the_type_is_chosen_without_an_agreement_r1_4(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(program=program, starts_on=date(2026, 7, 1), ends_on=date(2027, 6, 30))
    person = await factories.insured(policy=policy)
    me = principal("insured", person.id)
    chosen = await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=clinic.id)
    assert chosen.effective is True and chosen.application is None and "R1.4" in {r["rule"] for r in chosen.reasons}
    back = await service.request_service_type_change(ctx, me, service_type="dispatcher", clinic_id=None)
    assert back.service_type == "dispatcher" and back.attached_clinic is None
    async with session_factory() as session:
        row = await session.get(InsuredPerson, person.id)
        assert row is not None and (row.service_type, row.attached_clinic_id) == ("dispatcher", None)


async def test_after_the_policy_ends_nothing_changes_r1_4(ctx: ServiceContext, factories: Factories) -> None:
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    policy = await factories.policy(program=program, starts_on=date(2025, 1, 1), ends_on=date(2025, 12, 31))
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
    person = await factories.insured(policy=await factories.policy(program=program))
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
    person = await factories.insured(policy=await factories.policy(program=program))
    me = principal("insured", person.id)
    change = await service.request_service_type_change(ctx, me, service_type="registry", clinic_id=clinic.id)
    assert change.application is not None
    page = await service.application_html(ctx, me, change.application.id)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Clinic &quot;A&quot; &amp; &lt;i&gt;B&lt;/i&gt;" in page
    assert page.count("<th>Clinic</th>") == 1
