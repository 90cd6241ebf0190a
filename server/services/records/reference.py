"""Reference data the admin maintains: policyholders and departments, programs and their clinic lists,
clinics, dispatch consoles and branches (R9), policies with their payment schedule (R7.3).

Each use case is one transaction that also writes its change history and one audit row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Clinic,
    DispatchPoint,
    Policy,
    Policyholder,
    PolicyholderDepartment,
    Program,
    ProgramClinic,
    ScheduledPayment,
)
from server.domain.errors import Conflict, InvalidInput, NotFound
from server.domain.records import (
    POLICYHOLDER_KINDS,
    Installment,
    Problem,
    ProgramTerms,
    check_policy,
    check_program,
)
from server.domain.routing import hours_from_json
from server.services.context import ServiceContext
from server.services.records.changes import Actor, audit_txn, diff_json, record_txn, snapshot

POINT_KINDS = ("console", "branch_curator", "federal_line")


def _refuse(problems: Sequence[Problem], what: str) -> None:
    if problems:
        raise InvalidInput(
            f"the {what} is not valid: " + "; ".join(f"{f}: {p}" for f, p in problems),
            code="invalid_record",
            details={"problems": [{"field": f, "problem": p} for f, p in problems]},
        )


# ----------------------------------------------------------------------------- policyholders


@dataclass(frozen=True, slots=True)
class PolicyholderView:
    """A policyholder with its departments."""

    id: int
    kind: str
    name: str
    tax_id: str | None
    departments: list[str]


async def _policyholder_view(session: AsyncSession, holder: Policyholder) -> PolicyholderView:
    names = (
        await session.scalars(
            select(PolicyholderDepartment.name)
            .where(PolicyholderDepartment.policyholder_id == holder.id)
            .order_by(PolicyholderDepartment.name)
        )
    ).all()
    return PolicyholderView(holder.id, holder.kind, holder.name, holder.tax_id, list(names))


async def create_policyholder(
    ctx: ServiceContext, actor: Actor, *, kind: str, name: str, tax_id: str | None, departments: Sequence[str]
) -> PolicyholderView:
    """A company (with departments) or a person who buys policies."""
    problems: list[Problem] = []
    if kind not in POLICYHOLDER_KINDS:
        problems.append(("kind", "corporate or individual"))
    if kind == "individual" and departments:
        problems.append(("departments", "an individual policyholder has no departments"))
    if not name.strip():
        problems.append(("name", "required"))
    _refuse(problems, "policyholder")
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        holder = Policyholder(kind=kind, name=name.strip(), tax_id=tax_id, created_at=now)
        uow.session.add(holder)
        await uow.session.flush()
        await _add_departments_txn(uow.session, holder.id, departments)
        await record_txn(
            uow.session,
            actor,
            now,
            entity_type="policyholder",
            entity_id=holder.id,
            action="created",
            changes={**snapshot(holder, ("kind", "name", "tax_id")), "departments": [None, sorted(set(departments))]},
        )
        await audit_txn(
            uow.session, actor, now, action="policyholder.create", resource_type="policyholder", resource_id=holder.id
        )
        view = await _policyholder_view(uow.session, holder)
        await uow.commit()
    return view


async def _add_departments_txn(session: AsyncSession, holder_id: int, names: Sequence[str]) -> list[str]:
    existing = set(
        (
            await session.scalars(
                select(PolicyholderDepartment.name).where(PolicyholderDepartment.policyholder_id == holder_id)
            )
        ).all()
    )
    added = []
    for raw in names:
        name = " ".join(raw.split())
        if not name or len(name) > 200:
            raise InvalidInput("a department name has 1-200 characters", code="invalid_record")
        if name not in existing:
            session.add(PolicyholderDepartment(policyholder_id=holder_id, name=name))
            existing.add(name)
            added.append(name)
    await session.flush()
    return added


async def add_departments(
    ctx: ServiceContext, actor: Actor, policyholder_id: int, names: Sequence[str]
) -> PolicyholderView:
    """Add departments to a corporate policyholder (known ones are kept)."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        holder = await uow.session.get(Policyholder, policyholder_id)
        if holder is None:
            raise NotFound("no such policyholder")
        if holder.kind != "corporate":
            raise InvalidInput("only a corporate policyholder has departments", code="invalid_record")
        added = await _add_departments_txn(uow.session, holder.id, names)
        if added:
            await record_txn(
                uow.session,
                actor,
                now,
                entity_type="policyholder",
                entity_id=holder.id,
                action="departments_added",
                changes={"departments": [None, added]},
            )
            await audit_txn(
                uow.session,
                actor,
                now,
                action="policyholder.update",
                resource_type="policyholder",
                resource_id=holder.id,
            )
        view = await _policyholder_view(uow.session, holder)
        await uow.commit()
    return view


async def list_policyholders(ctx: ServiceContext) -> list[PolicyholderView]:
    """Every policyholder, by name."""
    async with ctx.uow() as uow:
        holders = (await uow.session.scalars(select(Policyholder).order_by(Policyholder.name))).all()
        return [await _policyholder_view(uow.session, h) for h in holders]


async def get_policyholder(ctx: ServiceContext, policyholder_id: int) -> PolicyholderView:
    """One policyholder."""
    async with ctx.uow() as uow:
        holder = await uow.session.get(Policyholder, policyholder_id)
        if holder is None:
            raise NotFound("no such policyholder")
        return await _policyholder_view(uow.session, holder)


# ----------------------------------------------------------------------------- clinics


CLINIC_FIELDS = ("name", "city", "address", "phone", "price_category", "has_access_system")


@dataclass(frozen=True, slots=True)
class ClinicView:
    """A clinic; ``has_access_system`` marks clinics that need a pass photo (R6.4)."""

    id: int
    name: str
    city: str
    address: str
    phone: str
    price_category: int
    has_access_system: bool


def _clinic_view(clinic: Clinic) -> ClinicView:
    return ClinicView(
        clinic.id,
        clinic.name,
        clinic.city,
        clinic.address,
        clinic.phone,
        clinic.price_category,
        clinic.has_access_system,
    )


def _check_clinic(values: dict[str, Any]) -> None:
    problems: list[Problem] = []
    if "price_category" in values and values["price_category"] not in (1, 2, 3):
        problems.append(("price_category", "the price category is 1, 2 or 3"))
    for name in ("name", "city", "address", "phone"):
        if name in values and not str(values[name]).strip():
            problems.append((name, "required"))
    _refuse(problems, "clinic")


async def create_clinic(ctx: ServiceContext, actor: Actor, **values: Any) -> ClinicView:
    """A clinic with its city, address, phone, price category and access-system flag (R6.4)."""
    _check_clinic(values)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        clinic = Clinic(**{k: values[k] for k in CLINIC_FIELDS})
        uow.session.add(clinic)
        await uow.session.flush()
        await record_txn(
            uow.session,
            actor,
            now,
            entity_type="clinic",
            entity_id=clinic.id,
            action="created",
            changes=snapshot(clinic, CLINIC_FIELDS),
        )
        await audit_txn(uow.session, actor, now, action="clinic.create", resource_type="clinic", resource_id=clinic.id)
        await uow.commit()
    return _clinic_view(clinic)


async def update_clinic(ctx: ServiceContext, actor: Actor, clinic_id: int, **values: Any) -> ClinicView:
    """Change some of a clinic's fields."""
    _check_clinic(values)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        clinic = await uow.session.get(Clinic, clinic_id, with_for_update=True)
        if clinic is None:
            raise NotFound("no such clinic")
        changes = _apply(clinic, values, CLINIC_FIELDS)
        if changes:
            await record_txn(
                uow.session,
                actor,
                now,
                entity_type="clinic",
                entity_id=clinic.id,
                action="updated",
                changes=diff_json(changes),
            )
            await audit_txn(
                uow.session, actor, now, action="clinic.update", resource_type="clinic", resource_id=clinic.id
            )
        await uow.commit()
    return _clinic_view(clinic)


async def list_clinics(ctx: ServiceContext, city: str | None = None) -> list[ClinicView]:
    """Clinics, optionally of one city."""
    async with ctx.uow() as uow:
        stmt = select(Clinic).order_by(Clinic.city, Clinic.name)
        if city:
            stmt = stmt.where(func.lower(Clinic.city) == city.lower())
        return [_clinic_view(c) for c in (await uow.session.scalars(stmt)).all()]


def _apply(obj: Any, values: dict[str, Any], fields: Sequence[str]) -> dict[str, tuple[object, object]]:
    changes: dict[str, tuple[object, object]] = {}
    for name in fields:
        if name in values and values[name] is not None and getattr(obj, name) != values[name]:
            changes[name] = (getattr(obj, name), values[name])
            setattr(obj, name, values[name])
    return changes


# ----------------------------------------------------------------------------- programs


@dataclass(frozen=True, slots=True)
class ProgramView:
    """A program: components (R10.1), price category, tariffs per service type (R4.5), clinic list (R2.3)."""

    id: int
    code: str
    name: str
    components: list[str]
    price_category: int
    tariffs: dict[str, Decimal]
    registry_offered: bool
    telemedicine_allowance_per_year: int
    clinic_ids: list[int]


async def _program_view(session: AsyncSession, program: Program) -> ProgramView:
    clinic_ids = (
        await session.scalars(
            select(ProgramClinic.clinic_id)
            .where(ProgramClinic.program_id == program.id)
            .order_by(ProgramClinic.clinic_id)
        )
    ).all()
    tariffs = {"dispatcher": program.tariff_dispatcher}
    if program.tariff_registry is not None:
        tariffs["registry"] = program.tariff_registry
    return ProgramView(
        program.id,
        program.code,
        program.name,
        list(program.components),
        program.price_category,
        tariffs,
        program.registry_offered,
        program.telemedicine_allowance_per_year,
        list(clinic_ids),
    )


async def _set_clinics_txn(session: AsyncSession, program: Program, clinic_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(clinic_ids))
    found = (await session.scalars(select(Clinic.id).where(Clinic.id.in_(wanted)))).all() if wanted else []
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise NotFound(f"no such clinic: {', '.join(map(str, missing))}", details={"clinic_ids": missing})
    await session.execute(delete(ProgramClinic).where(ProgramClinic.program_id == program.id))
    session.add_all([ProgramClinic(program_id=program.id, clinic_id=cid) for cid in wanted])
    await session.flush()
    return wanted


async def create_program(
    ctx: ServiceContext, actor: Actor, *, code: str, name: str, terms: ProgramTerms, clinic_ids: Sequence[int] = ()
) -> ProgramView:
    """A program with its clinic list; a negative tariff or an unknown component is a 400."""
    _refuse(check_program(terms), "program")
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        program = Program(
            code=code,
            name=name,
            components=list(terms.components),
            price_category=terms.price_category,
            tariff_dispatcher=terms.tariffs["dispatcher"],
            tariff_registry=terms.tariffs.get("registry"),
            registry_offered=terms.registry_offered,
            telemedicine_allowance_per_year=terms.telemedicine_allowance_per_year,
        )
        uow.session.add(program)
        try:
            await uow.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"a program with code {code} exists", code="duplicate_code") from exc
        listed = await _set_clinics_txn(uow.session, program, clinic_ids)
        await record_txn(
            uow.session,
            actor,
            now,
            entity_type="program",
            entity_id=program.id,
            action="created",
            changes={**snapshot(program, PROGRAM_FIELDS), "clinic_ids": [None, listed]},
        )
        await audit_txn(
            uow.session, actor, now, action="program.create", resource_type="program", resource_id=program.id
        )
        view = await _program_view(uow.session, program)
        await uow.commit()
    return view


PROGRAM_FIELDS = (
    "code",
    "name",
    "components",
    "price_category",
    "tariff_dispatcher",
    "tariff_registry",
    "registry_offered",
    "telemedicine_allowance_per_year",
)


async def update_program(
    ctx: ServiceContext,
    actor: Actor,
    program_id: int,
    *,
    name: str | None = None,
    terms: ProgramTerms | None = None,
    clinic_ids: Sequence[int] | None = None,
) -> ProgramView:
    """Change a program's terms and/or replace its clinic list."""
    if terms is not None:
        _refuse(check_program(terms), "program")
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        program = await uow.session.get(Program, program_id, with_for_update=True)
        if program is None:
            raise NotFound("no such program")
        values: dict[str, Any] = {"name": name}
        if terms is not None:
            values.update(
                components=list(terms.components),
                price_category=terms.price_category,
                tariff_dispatcher=terms.tariffs["dispatcher"],
                tariff_registry=terms.tariffs.get("registry"),
                registry_offered=terms.registry_offered,
                telemedicine_allowance_per_year=terms.telemedicine_allowance_per_year,
            )
        changes = diff_json(_apply(program, values, PROGRAM_FIELDS))
        if clinic_ids is not None:
            before = (await _program_view(uow.session, program)).clinic_ids
            after = await _set_clinics_txn(uow.session, program, clinic_ids)
            if before != after:
                changes["clinic_ids"] = [before, after]
        if changes:
            await record_txn(
                uow.session, actor, now, entity_type="program", entity_id=program.id, action="updated", changes=changes
            )
            await audit_txn(
                uow.session, actor, now, action="program.update", resource_type="program", resource_id=program.id
            )
        view = await _program_view(uow.session, program)
        await uow.commit()
    return view


async def list_programs(ctx: ServiceContext) -> list[ProgramView]:
    """Every program, by code."""
    async with ctx.uow() as uow:
        programs = (await uow.session.scalars(select(Program).order_by(Program.code))).all()
        return [await _program_view(uow.session, p) for p in programs]


# ----------------------------------------------------------------------------- dispatch points (R9)


@dataclass(frozen=True, slots=True)
class DispatchPointView:
    """A console, branch curator or federal line with its time zone and local hours (R9)."""

    id: int
    kind: str
    city: str
    name: str
    phone: str
    timezone: str
    hours: dict[str, Any]
    notes: str | None


def _point_view(point: DispatchPoint) -> DispatchPointView:
    return DispatchPointView(
        point.id, point.kind, point.city, point.name, point.phone, point.timezone, dict(point.hours), point.notes
    )


def _check_point(kind: str, timezone: str, hours: dict[str, Any]) -> None:
    problems: list[Problem] = []
    if kind not in POINT_KINDS:
        problems.append(("kind", f"one of {', '.join(POINT_KINDS)}"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("timezone", f"{timezone!r} is not an IANA time zone (e.g. Asia/Yekaterinburg)"))
    try:
        hours_from_json(hours)
    except InvalidInput as exc:
        problems.append(("hours", f"{exc.message} {exc.details or ''}".strip()))
    except (ValueError, TypeError):
        problems.append(("hours", 'hours are {"0": ["08:00", "20:00"], ..., "6": null} or {"always": true}'))
    _refuse(problems, "dispatch point")


async def create_dispatch_point(
    ctx: ServiceContext,
    actor: Actor,
    *,
    kind: str,
    city: str,
    name: str,
    phone: str,
    timezone: str,
    hours: dict[str, Any],
    notes: str | None = None,
) -> DispatchPointView:
    """A console or branch with its local hours; a branch's night may cross midnight (R9.5)."""
    _check_point(kind, timezone, hours)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        point = DispatchPoint(kind=kind, city=city, name=name, phone=phone, timezone=timezone, hours=hours, notes=notes)
        uow.session.add(point)
        await uow.session.flush()
        await record_txn(
            uow.session,
            actor,
            now,
            entity_type="dispatch_point",
            entity_id=point.id,
            action="created",
            changes=snapshot(point, ("kind", "city", "name", "phone", "timezone", "hours")),
        )
        await audit_txn(
            uow.session,
            actor,
            now,
            action="dispatch_point.create",
            resource_type="dispatch_point",
            resource_id=point.id,
        )
        await uow.commit()
    return _point_view(point)


async def list_dispatch_points(ctx: ServiceContext) -> list[DispatchPointView]:
    """Every dispatch point."""
    async with ctx.uow() as uow:
        points = await uow.session.scalars(select(DispatchPoint).order_by(DispatchPoint.city, DispatchPoint.id))
        return [_point_view(p) for p in points.all()]


# ----------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class InstallmentView:
    """One scheduled premium payment."""

    id: int
    due_on: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A policy with its period, payment mode and schedule (R7.3)."""

    id: int
    number: str
    policyholder_id: int
    program_id: int
    starts_on: date
    ends_on: date
    payment_mode: str
    premium: Decimal
    installments: list[InstallmentView]


async def _policy_view(session: AsyncSession, policy: Policy) -> PolicyView:
    schedule = (
        await session.scalars(
            select(ScheduledPayment)
            .where(ScheduledPayment.policy_id == policy.id, ScheduledPayment.purpose == "premium")
            .order_by(ScheduledPayment.due_on)
        )
    ).all()
    return PolicyView(
        policy.id,
        policy.number,
        policy.policyholder_id,
        policy.program_id,
        policy.starts_on,
        policy.ends_on,
        policy.payment_mode,
        policy.premium,
        [InstallmentView(s.id, s.due_on, s.amount) for s in schedule],
    )


async def create_policy(
    ctx: ServiceContext,
    actor: Actor,
    *,
    number: str,
    policyholder_id: int,
    program_id: int,
    starts_on: date,
    ends_on: date,
    payment_mode: str,
    premium: Decimal,
    installments: Sequence[Installment],
) -> PolicyView:
    """A policy of a policyholder on a program, with its premium schedule (the installments add up to the premium)."""
    _refuse(
        check_policy(
            starts_on=starts_on, ends_on=ends_on, payment_mode=payment_mode, premium=premium, installments=installments
        ),
        "policy",
    )
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        if await session.get(Policyholder, policyholder_id) is None:
            raise NotFound("no such policyholder")
        if await session.get(Program, program_id) is None:
            raise NotFound("no such program")
        policy = Policy(
            number=number,
            policyholder_id=policyholder_id,
            program_id=program_id,
            starts_on=starts_on,
            ends_on=ends_on,
            payment_mode=payment_mode,
            premium=premium,
            created_at=now,
        )
        session.add(policy)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"policy {number} exists", code="duplicate_number") from exc
        session.add_all(
            [
                ScheduledPayment(policy_id=policy.id, due_on=i.due_on, amount=i.amount, purpose="premium")
                for i in installments
            ]
        )
        await session.flush()
        await record_txn(
            session,
            actor,
            now,
            entity_type="policy",
            entity_id=policy.id,
            action="created",
            changes={
                **snapshot(
                    policy,
                    ("number", "policyholder_id", "program_id", "starts_on", "ends_on", "payment_mode", "premium"),
                ),
                "installments": [None, [[i.due_on.isoformat(), str(i.amount)] for i in installments]],
            },
        )
        await audit_txn(session, actor, now, action="policy.create", resource_type="policy", resource_id=policy.id)
        view = await _policy_view(session, policy)
        await uow.commit()
    return view


async def list_policies(ctx: ServiceContext, policyholder_id: int | None = None) -> list[PolicyView]:
    """Policies, optionally of one policyholder."""
    async with ctx.uow() as uow:
        stmt = select(Policy).order_by(Policy.number)
        if policyholder_id is not None:
            stmt = stmt.where(Policy.policyholder_id == policyholder_id)
        return [await _policy_view(uow.session, p) for p in (await uow.session.scalars(stmt)).all()]
