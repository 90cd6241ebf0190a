"""The telemedicine allowance counts per policy year, not per calendar year (R11.4, issue 9 item 9)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import ServiceUsed
from server.domain import red_flags
from server.domain.errors import RuleViolation
from server.services import consultations as service
from server.services.context import ServiceContext
from tests.factories import Factories
from tests.services.test_dispatch import principal


async def test_allowance_used_in_december_is_not_renewed_in_january_R11_4(
    ctx: ServiceContext, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Policy 2025-07-01..2026-06-30, 2 of 2 used in December 2025: none left on 2026-06-10 (same policy year)."""
    program = await factories.program(telemedicine_allowance_per_year=2)
    policy = await factories.policy(program=program, starts_on=date(2025, 7, 1), ends_on=date(2026, 6, 30))
    person = await factories.insured(policy=policy)
    async with session_factory() as session, session.begin():
        for day in (date(2025, 12, 10), date(2025, 12, 20)):
            session.add(
                ServiceUsed(
                    insured_person_id=person.id,
                    component="telemedicine",
                    service="telemedicine consultation",
                    used_on=day,
                    quantity=1,
                    created_at=datetime(2025, 12, 20, tzinfo=UTC),
                )
            )
    allowance = await service.telemedicine_allowance(ctx, person.id)
    assert allowance.used == 2 and allowance.left == 0
    with pytest.raises(RuleViolation) as refused:
        await service.request_consultation(
            ctx,
            principal("insured", person.id),
            complaints="sore throat",
            specialty="general_practice",
            channel="text",
            red_flags=dict.fromkeys(red_flags.CODES, False),
        )
    assert refused.value.rules[0] == "R10.2"
    facts = refused.value.reasons[0].facts
    assert facts["policy_year"] == {"starts_on": "2025-07-01", "ends_on": "2026-06-30"}
    assert facts["used"] == 2
