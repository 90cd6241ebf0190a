"""Small shared steps of the dispatch use cases: the insurer's day, dispatch points, clinic time zones and
the lookups that 404 or refuse by rule (R2.3, R9)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Clinic,
    InsuredPerson,
    Policy,
)
from server.db.repositories import coverage as coverage_repo
from server.domain.coverage_types import PolicyFacts
from server.domain.errors import NotFound
from server.domain.routing import DEFAULT_DISPATCH_POINTS, DispatchPoint, city_key, local_date, person_timezone
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    coverage_day,
    to_dispatch_point,
    to_policy_facts,
)
from server.services.decisions import rule_violation

log = logging.getLogger(__name__)

DEFAULT_CLINIC_TIMEZONE: Final = ZoneInfo("Europe/Moscow")


# ----------------------------------------------------------------------------- shared helpers


def today_of(ctx: ServiceContext) -> date:
    """The insurer's calendar day now (policies are dated in Moscow time)."""
    return coverage_day(ctx.clock.now())


async def person_day_txn(session: AsyncSession, person: InsuredPerson, now: datetime) -> date:
    """"That day" for the person: the calendar date in their city's time zone, as routing uses it (R10.3).

    A person in Kamchatka asking at 2027-01-01 08:00 local time (still 2026-12-31 in Moscow) is
    served on 2027-01-01: that day's policy, letters and allowance.
    """
    return local_date(now, person_timezone(person.city, await points_txn(session)))


async def points_txn(session: AsyncSession) -> tuple[DispatchPoint, ...]:
    """Known dispatch points; the built-in network when the table is empty (R9)."""
    rows = await coverage_repo.dispatch_points(session)
    return tuple(to_dispatch_point(row) for row in rows) or DEFAULT_DISPATCH_POINTS


def clinic_timezone(city: str, points: Iterable[DispatchPoint]) -> ZoneInfo:
    """The local time zone of a clinic's city (from the city's dispatch points; Moscow otherwise)."""
    key = city_key(city)
    for point in points:
        if city_key(point.city) == key:
            return ZoneInfo(point.timezone)
    return DEFAULT_CLINIC_TIMEZONE


async def require_person_txn(session: AsyncSession, person_id: int, *, for_update: bool = False) -> InsuredPerson:
    """The person, or a 404 that does not reveal anything else."""
    person = await coverage_repo.get_person(session, person_id, for_update=for_update)
    if person is None:
        raise NotFound("no such insured person")
    return person


async def require_clinic_on_program_txn(session: AsyncSession, clinic_id: int, program_id: int) -> Clinic:
    """The clinic when it exists and is on the program's list; a 422 citing R2.3 otherwise."""
    clinic, listed = await coverage_repo.clinic_on_program(session, clinic_id, program_id)
    if clinic is None:
        raise rule_violation(
            "R2.3",
            f"clinic {clinic_id} is not known: choose a clinic from the program's list",
            {"clinic_id": clinic_id},
            code="unknown_clinic",
        )
    if not listed:
        raise rule_violation(
            "R2.3",
            f"{clinic.name} is not on the program's list",
            {"clinic_id": clinic_id, "program_id": program_id},
            code="clinic_not_on_program",
        )
    return clinic


async def policy_facts_txn(session: AsyncSession, policy: Policy) -> PolicyFacts:
    """The policy's facts with its premium schedule (R7.3)."""
    return to_policy_facts(policy, await coverage_repo.premium_schedule(session, policy.id))
