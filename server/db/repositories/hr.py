"""The aggregate queries behind corporate HR figures: GROUP BY in the database, never rows in Python.

Each table of a month (server/domain/hr_reports.py) is one GROUP BY over the month's consultations
(or the company's staff list) with ``count(*)`` and ``count(DISTINCT person)``; bands, ISO weeks and
ICD-10 chapters are CASE expressions over indexed columns, so the same SQL runs on SQLite and
PostgreSQL. Percentiles of the wait are read by OFFSET into the ordered waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Consultation,
    HrMonthSnapshot,
    InsuredPerson,
    LetterOfGuarantee,
    Payment,
    Policy,
    Policyholder,
    Program,
    StaffAccount,
    Visit,
)
from server.domain.disclosure import CellCount
from server.domain.hr_reports import (
    AGE_BANDS,
    CHANNELS,
    NO_DEPARTMENT,
    SERVICE_TYPES,
    TABLES,
    Month,
    MonthCounts,
    age_band_birth_ranges,
)
from server.domain.icd10_chapters import chapters
from server.domain.roster import SPECIALTIES

# HR months are Moscow calendar months: the insurer's reporting day (README, "Corporate HR").
REPORTING_ZONE = ZoneInfo("Europe/Moscow")
STARTED_STATUSES = ("active", "completed")


def month_bounds(month: Month) -> tuple[datetime, datetime]:
    """The month as a UTC half-open interval [start, end) of Moscow midnights."""
    start = datetime.combine(month.first_day, time(0), REPORTING_ZONE)
    end = datetime.combine(month.next().first_day, time(0), REPORTING_ZONE)
    return start, end


def _age_band_expr(on: date) -> ColumnElement[str]:
    whens = []
    for name, born_after, born_by in age_band_birth_ranges(on):
        conditions = []
        if born_after is not None:
            conditions.append(InsuredPerson.birth_date > born_after)
        if born_by is not None:
            conditions.append(InsuredPerson.birth_date <= born_by)
        whens.append((and_(*conditions), literal(name)))
    return case(*whens, else_=literal(AGE_BANDS[0]))


def _week_expr(month: Month) -> ColumnElement[str]:
    weeks = month.weeks()
    whens = []
    for label in weeks[:-1]:
        year, week = int(label[:4]), int(label[6:])
        next_monday = date.fromisocalendar(year, week, 1) + timedelta(days=7)
        boundary = datetime.combine(next_monday, time(0), REPORTING_ZONE)
        whens.append((Consultation.accepted_at < boundary, literal(label)))
    return case(*whens, else_=literal(weeks[-1])) if whens else literal(weeks[-1])


def _chapter_expr() -> ColumnElement[str]:
    category = func.substr(Consultation.icd10_code, 1, 3)
    return case(
        *((category.between(ch.first, ch.last), literal(ch.number)) for ch in chapters()),
        else_=literal("?"),
    )


def _department_expr(column: Any) -> ColumnElement[str]:
    return func.coalesce(column, literal(NO_DEPARTMENT))


def _on_staff(policyholder_id: int, month: Month) -> ColumnElement[bool]:
    """Insured on the company's policy at some time in the month, by the dates on the employer's list.

    Dates, not the current ``is_active`` flag: a person removed in June was staff in May, and the
    months already published must keep adding up.
    """
    return and_(
        Policy.policyholder_id == policyholder_id,
        Policy.starts_on <= month.last_day,
        Policy.ends_on >= month.first_day,
        or_(InsuredPerson.starts_on.is_(None), InsuredPerson.starts_on <= month.last_day),
        or_(InsuredPerson.removed_on.is_(None), InsuredPerson.removed_on > month.first_day),
    )


async def departments(session: AsyncSession, policyholder_id: int) -> tuple[str, ...]:
    """Every department on the company's staff list, and on its consultations, sorted."""
    staff = (
        select(_department_expr(InsuredPerson.department))
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .where(Policy.policyholder_id == policyholder_id)
        .distinct()
    )
    consulted = (
        select(_department_expr(Consultation.department))
        .where(Consultation.policyholder_id == policyholder_id)
        .distinct()
    )
    names = set((await session.scalars(staff)).all()) | set((await session.scalars(consulted)).all())
    return tuple(sorted(names))


async def month_counts(session: AsyncSession, policyholder_id: int, month: Month) -> MonthCounts:
    """The true counts of every HR table of one month (never shown as they are)."""
    start, end = month_bounds(month)
    dims: Mapping[str, Any] = {
        "channel": Consultation.channel,
        "specialty": Consultation.specialty,
        "department": _department_expr(Consultation.department),
        "age_band": _age_band_expr(month.first_day),
        "week": _week_expr(month),
        "chapter": _chapter_expr(),
    }
    started = and_(
        Consultation.policyholder_id == policyholder_id,
        Consultation.accepted_at >= start,
        Consultation.accepted_at < end,
        Consultation.status.in_(STARTED_STATUSES),
    )
    staff_dims: Mapping[str, Any] = {
        "service_type": InsuredPerson.service_type,
        "department": _department_expr(InsuredPerson.department),
        "age_band": _age_band_expr(month.first_day),
    }
    on_staff = _on_staff(policyholder_id, month)
    cubes: dict[str, dict[tuple[str, ...], CellCount]] = {}
    for spec in TABLES:
        if spec.population == "staff":
            columns = [staff_dims[d] for d in spec.dims]
            statement = (
                select(*columns, func.count(), func.count(distinct(InsuredPerson.id)))
                .join(Policy, Policy.id == InsuredPerson.policy_id)
                .where(on_staff)
            )
        else:
            columns = [dims[d] for d in spec.dims]
            statement = (
                select(*columns, func.count(), func.count(distinct(Consultation.insured_person_id)))
                .select_from(Consultation)
                .join(InsuredPerson, InsuredPerson.id == Consultation.insured_person_id)
                .where(started)
            )
            if spec.population == "diagnoses":
                statement = statement.where(Consultation.icd10_code.is_not(None))
        if columns:
            statement = statement.group_by(*columns)
        cube: dict[tuple[str, ...], CellCount] = {}
        for row in (await session.execute(statement)).all():
            *values, count, persons = row
            if count:
                cube[tuple(str(v) for v in values)] = CellCount(int(count), int(persons))
        cubes[spec.name] = cube

    person = Consultation.insured_person_id
    consulting = (await session.execute(select(func.count(), func.count(distinct(person))).where(started))).one()
    referrals = (
        await session.execute(
            select(func.count(), func.count(distinct(person))).where(started, Consultation.outcome == "referral")
        )
    ).one()
    letters = (
        await session.execute(
            select(
                func.count(distinct(LetterOfGuarantee.id)),
                func.count(distinct(LetterOfGuarantee.insured_person_id)),
            )
            .select_from(LetterOfGuarantee)
            .join(Consultation, Consultation.insured_event_id == LetterOfGuarantee.insured_event_id)
            .where(started, LetterOfGuarantee.created_at >= Consultation.accepted_at)
        )
    ).one()
    domains = {
        "channel": CHANNELS,
        "specialty": tuple(s.code for s in SPECIALTIES),
        "department": await departments(session, policyholder_id),
        "age_band": AGE_BANDS,
        "week": month.weeks(),
        "chapter": tuple(ch.number for ch in chapters()),
        "service_type": SERVICE_TYPES,
    }
    scalars = {
        "persons_consulting": CellCount(int(consulting[1]), int(consulting[1])),
        "referrals": CellCount(int(referrals[0]), int(referrals[1])),
        "letters_of_guarantee": CellCount(int(letters[0]), int(letters[1])),
    }
    return MonthCounts(month, domains, cubes, scalars)


def _wait_seconds(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", Consultation.accepted_at - Consultation.requested_at)
    return (func.julianday(Consultation.accepted_at) - func.julianday(Consultation.requested_at)) * 86400.0


async def wait_percentiles(
    session: AsyncSession, policyholder_id: int, month: Month, quantiles: tuple[float, ...]
) -> dict[float, float | None]:
    """Time from request to a doctor, at the given quantiles (nearest rank), in seconds."""
    start, end = month_bounds(month)
    started = and_(
        Consultation.policyholder_id == policyholder_id,
        Consultation.accepted_at >= start,
        Consultation.accepted_at < end,
        Consultation.status.in_(STARTED_STATUSES),
    )
    total = int((await session.scalar(select(func.count()).select_from(Consultation).where(started))) or 0)
    result: dict[float, float | None] = {}
    wait = _wait_seconds(session)
    for q in quantiles:
        if total == 0:
            result[q] = None
            continue
        offset = max(0, min(total - 1, round(q * (total - 1))))
        value = await session.scalar(select(wait).where(started).order_by(wait).limit(1).offset(offset))
        result[q] = float(value) if value is not None else None
    return result


async def money_and_allowance(session: AsyncSession, policyholder_id: int, month: Month) -> dict[str, Any]:
    """Premium bundled in the month, the staff's yearly telemedicine pool, and visits under letters."""
    start, end = month_bounds(month)
    premium = await session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0))
        .join(Policy, Policy.id == Payment.policy_id)
        .where(
            Policy.policyholder_id == policyholder_id,
            Payment.scheduled_payment_id.is_not(None),  # a payment waiting to be matched (R7.6) is not bundled
            Payment.bundled_on >= month.first_day,
            Payment.bundled_on <= month.last_day,
        )
    )
    pool = await session.scalar(
        select(func.coalesce(func.sum(Program.telemedicine_allowance_per_year), 0))
        .select_from(InsuredPerson)
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .join(Program, Program.id == Policy.program_id)
        .where(_on_staff(policyholder_id, month))
    )
    visits = (
        await session.execute(
            select(func.count(distinct(Visit.id)), func.count(distinct(InsuredPerson.id)))
            .select_from(Visit)
            .join(LetterOfGuarantee, LetterOfGuarantee.id == Visit.letter_id)
            .join(InsuredPerson, InsuredPerson.id == LetterOfGuarantee.insured_person_id)
            .join(Policy, Policy.id == InsuredPerson.policy_id)
            .where(Policy.policyholder_id == policyholder_id, Visit.scheduled_at >= start, Visit.scheduled_at < end)
        )
    ).one()
    return {
        "premium_paid": Decimal(premium or 0),
        "allowance_pool": int(pool or 0),
        "visits": CellCount(int(visits[0]), int(visits[1])),
    }


async def hr_policyholder_of(session: AsyncSession, staff_id: int) -> Policyholder | None:
    """The company an HR account is bound to (checklist C3)."""
    account = await session.get(StaffAccount, staff_id)
    if account is None or account.role != "hr" or account.hr_policyholder_id is None or not account.is_active:
        return None
    return await session.get(Policyholder, account.hr_policyholder_id)


async def earliest_policy_start(session: AsyncSession, policyholder_id: int) -> date | None:
    """When the company's first policy began (nothing before it is published)."""
    value = await session.scalar(select(func.min(Policy.starts_on)).where(Policy.policyholder_id == policyholder_id))
    return value


async def corporate_clients_since(session: AsyncSession) -> list[tuple[int, date]]:
    """Every corporate policyholder with the day its first policy began."""
    rows = await session.execute(
        select(Policyholder.id, func.min(Policy.starts_on))
        .join(Policy, Policy.policyholder_id == Policyholder.id)
        .where(Policyholder.kind == "corporate")
        .group_by(Policyholder.id)
        .order_by(Policyholder.id)
    )
    return [(int(pid), since) for pid, since in rows.all()]


async def get_snapshot(session: AsyncSession, policyholder_id: int, month: str) -> HrMonthSnapshot | None:
    """A frozen month, if it was published already."""
    return await session.scalar(
        select(HrMonthSnapshot).where(
            HrMonthSnapshot.policyholder_id == policyholder_id, HrMonthSnapshot.month == month
        )
    )


async def store_snapshot(session: AsyncSession, snapshot: HrMonthSnapshot) -> HrMonthSnapshot:
    """Freeze a month; when another process froze it first, theirs is the one (and is returned)."""
    session.add(snapshot)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await get_snapshot(session, snapshot.policyholder_id, snapshot.month)
        assert existing is not None
        return existing
    return snapshot


__all__ = [
    "departments",
    "earliest_policy_start",
    "get_snapshot",
    "hr_policyholder_of",
    "money_and_allowance",
    "month_bounds",
    "month_counts",
    "store_snapshot",
    "wait_percentiles",
]
