"""Dispatch use cases called directly: refusals on ended policies (R10.2), letter numbering per year (R2.5),
the decision trail (who, when, why) and the approval check's policy dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AuditEvent, CoverageDecisionRecord, DispatchRequest, InsuredPerson
from server.domain.errors import RuleViolation
from server.services import dispatch as service
from server.services.context import ServiceContext
from server.services.identity import Principal
from tests.factories import Factories


def principal(role: str, subject_id: int) -> Principal:
    """A principal as the API would authenticate it."""
    subject_type = "insured" if role == "insured" else "staff"
    return Principal(subject_type, subject_id, role, "test-session", datetime(2030, 1, 1, tzinfo=UTC))


async def _person(factories: Factories, **policy: object) -> tuple[InsuredPerson, int]:
    program = await factories.program()
    clinic = await factories.clinic(programs=[program])
    person = await factories.insured(policy=await factories.policy(program=program, **policy))  # type: ignore[arg-type]
    return person, clinic.id


async def test_request_on_an_ended_policy_is_refused_r10_2_and_recorded(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    person, _ = await _person(factories, starts_on=date(2025, 1, 1), ends_on=date(2025, 12, 31))
    with pytest.raises(RuleViolation) as refused:
        await service.submit_insured_request(
            ctx, principal("insured", person.id), component="outpatient", complaints="cough"
        )
    assert refused.value.code == "not_covered" and {"R2.2", "R10.2"} <= set(refused.value.rules)
    async with session_factory() as session:
        assert (await session.execute(select(DispatchRequest))).first() is None
        record = (await session.execute(select(CoverageDecisionRecord))).scalar_one()
    assert (record.kind, record.allowed, record.actor_type, record.actor_id) == (
        "insured_request",
        False,
        "insured",
        person.id,
    )


async def test_letter_numbers_run_per_year_of_issue(ctx: ServiceContext, factories: Factories) -> None:
    """R2.5: LG-YYYY-NNNNNN, a sequence per year (a policy spanning the new year)."""
    person, clinic_id = await _person(factories, starts_on=date(2026, 6, 1), ends_on=date(2027, 5, 31))
    dispatcher = principal("dispatcher", (await factories.staff("dispatcher")).id)
    event = await service.open_event(ctx, dispatcher, person_id=person.id, component="outpatient", complaints="knee")
    numbers = []
    for issued_on in (date(2026, 6, 10), date(2027, 1, 11), date(2026, 6, 11), date(2027, 1, 12)):
        issued = await service.issue_letter(
            ctx, dispatcher, event.id, clinic_id=clinic_id, services=["MRI"], issued_on=issued_on
        )
        numbers.append(issued.letter.number)
    assert numbers == ["LG-2026-000001", "LG-2027-000001", "LG-2026-000002", "LG-2027-000002"]


async def test_every_coverage_decision_records_who_when_and_why(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    person, clinic_id = await _person(factories)
    account = await factories.staff("dispatcher")
    dispatcher = principal("dispatcher", account.id)
    event = await service.open_event(
        ctx, dispatcher, person_id=person.id, component="outpatient", complaints="Knee  pain"
    )
    assert event.complaints == "Knee pain"  # R2.1: recorded, whitespace normalised
    issued = await service.issue_letter(ctx, dispatcher, event.id, clinic_id=clinic_id, services=["MRI"])
    await service.change_letter(ctx, dispatcher, issued.letter.id, "cancel")
    async with session_factory() as session:
        records = (
            (await session.execute(select(CoverageDecisionRecord).order_by(CoverageDecisionRecord.id))).scalars().all()
        )
        audited = (await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars().all()
    assert [(r.kind, r.allowed) for r in records] == [
        ("insured_event", True),
        ("letter_issue", True),
        ("letter_cancel", True),
    ]
    for record in records:
        assert (record.actor_type, record.actor_id, record.created_at) == ("staff", account.id, clock.now())
        assert record.insured_person_id == person.id and record.reasons
    assert "R2.5" in {reason["rule"] for reason in records[1].reasons}
    assert records[1].subject["letter_number"] == issued.letter.number
    assert audited == ["insured_event.create", "letter.issue", "letter.cancel"]


async def test_approval_check_for_a_person_no_longer_insured_cites_r10_2(
    ctx: ServiceContext, factories: Factories
) -> None:
    person, clinic_id = await _person(factories)
    async with ctx.session_factory() as session:
        row = await session.get(InsuredPerson, person.id)
        assert row is not None
        row.is_active = False
        await session.commit()
    with pytest.raises(RuleViolation) as refused:
        await service.approval_check(
            ctx, principal("dispatcher", 1), person_id=person.id, clinic_id=clinic_id, services=["MRI"]
        )
    assert refused.value.rules == ("R10.2",)


async def test_extension_of_a_finished_treatment_is_refused_r3_3(ctx: ServiceContext, factories: Factories) -> None:
    person, clinic_id = await _person(factories)
    dispatcher = principal("dispatcher", (await factories.staff("dispatcher")).id)
    event = await service.open_event(ctx, dispatcher, person_id=person.id, component="outpatient", complaints="knee")
    issued = await service.issue_letter(ctx, dispatcher, event.id, clinic_id=clinic_id, services=["MRI"])
    await service.close_event(ctx, dispatcher, event.id)
    with pytest.raises(RuleViolation) as refused:
        await service.change_letter(ctx, dispatcher, issued.letter.id, "extend")
    assert "R3.3" in refused.value.rules
