"""Roster use cases: the demo roster's coverage, concurrent edits and concurrent coverage checks (R11.2)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import DutyShift, RosterAlert
from server.demo import seed_demo
from server.domain.errors import Conflict
from server.services import roster
from server.services.context import ServiceContext
from tests.factories import Factories


async def test_the_seeded_demo_roster_has_no_general_practice_gap_for_two_weeks_r11_2(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R11.2: the demo roster covers general practice at every moment of the checked window."""
    await seed_demo(session_factory, now=clock.now(), corporate_insured=5)
    report = await roster.run_coverage_check(ctx, weeks=2)
    gp = next(item for item in report.specialties if item.specialty == "general_practice")
    assert gp.gaps == [] and gp.gap_hours == 0 and not gp.alert
    assert report.ok and report.alerts == []
    assert ctx.metrics.roster_gap_hours.labels(specialty="general_practice")._value.get() == 0
    cardiology = next(item for item in report.specialties if item.specialty == "cardiology")
    assert 0 < cardiology.covered_hours < report.total_hours  # specialists keep daytime hours: reported, no alert


async def test_concurrent_coverage_checks_record_a_gap_once(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await asyncio.gather(*(roster.run_coverage_check(ctx) for _ in range(3)))
    async with session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(RosterAlert))).scalar_one() == 1


async def test_concurrent_overlapping_shifts_for_one_doctor_are_refused(
    ctx: ServiceContext, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    doctor = await factories.staff("doctor")
    start = clock.now() + timedelta(hours=1)

    async def add(offset: int) -> object:
        return await roster.create_shift(
            ctx,
            doctor_id=doctor.id,
            doctor_username=None,
            specialty="general_practice",
            starts_at=start + timedelta(hours=offset),
            ends_at=start + timedelta(hours=offset + 8),
        )

    results = await asyncio.gather(add(0), add(2), add(4), return_exceptions=True)
    assert sum(isinstance(r, roster.ShiftView) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, roster.ShiftView))
    async with session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(DutyShift))).scalar_one() == 1


def test_csv_rows_are_parsed_with_their_offsets() -> None:
    rows = roster.parse_roster_csv(
        "\ufeffdoctor_username,specialty,starts_at,ends_at\n"
        "dr.gp1,general_practice,2026-06-11T08:00:00+03:00,2026-06-11T20:00:00+03:00\n"
        "\n"
    )
    assert [(r.row, r.doctor_username, r.starts_at.hour, r.ends_at.hour) for r in rows] == [(1, "dr.gp1", 5, 17)]
