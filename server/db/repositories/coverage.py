"""Coverage queries: persons with their policy and program, clinics of a program, dispatch points, usage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Clinic,
    DispatchPoint,
    InsuredPerson,
    Policy,
    Policyholder,
    Program,
    ProgramClinic,
    ScheduledPayment,
    ServiceUsed,
)


async def get_person(session: AsyncSession, person_id: int, *, for_update: bool = False) -> InsuredPerson | None:
    """One insured person.

    Args:
        session: The open session.
        person_id: The person's id.
        for_update: Lock the row until the transaction ends (PostgreSQL), so that two changes of one
            person's coverage are decided one after the other.

    Returns:
        The person, or ``None``.
    """
    stmt = select(InsuredPerson).where(InsuredPerson.id == person_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def person_policy_program(session: AsyncSession, person_id: int) -> tuple[InsuredPerson, Policy, Program] | None:
    """A person with their policy and program in one round trip (the approval check's hot path).

    Args:
        session: The open session.
        person_id: The person's id.

    Returns:
        ``(person, policy, program)`` or ``None`` when there is no such person.
    """
    stmt = (
        select(InsuredPerson, Policy, Program)
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .join(Program, Program.id == Policy.program_id)
        .where(InsuredPerson.id == person_id)
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1], row[2]) if row is not None else None


async def get_policy(session: AsyncSession, policy_id: int, *, for_update: bool = False) -> Policy | None:
    """One policy, optionally locked (bundling serialises on it)."""
    stmt = select(Policy).where(Policy.id == policy_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_program(session: AsyncSession, program_id: int) -> Program | None:
    """One program."""
    return await session.get(Program, program_id)


async def policyholder_name(session: AsyncSession, policyholder_id: int) -> str:
    """The policyholder's name (printed on the R4.2 application)."""
    name = (await session.execute(select(Policyholder.name).where(Policyholder.id == policyholder_id))).scalar()
    return name or ""


async def get_clinic(session: AsyncSession, clinic_id: int) -> Clinic | None:
    """One clinic."""
    return await session.get(Clinic, clinic_id)


async def clinic_on_program(session: AsyncSession, clinic_id: int, program_id: int) -> tuple[Clinic | None, bool]:
    """A clinic and whether it is on the program's list (R2.3), in one round trip.

    Args:
        session: The open session.
        clinic_id: The clinic.
        program_id: The person's program.

    Returns:
        ``(clinic, listed)``; ``(None, False)`` when the clinic does not exist.
    """
    stmt = (
        select(Clinic, ProgramClinic.program_id)
        .outerjoin(
            ProgramClinic,
            (ProgramClinic.clinic_id == Clinic.id) & (ProgramClinic.program_id == program_id),
        )
        .where(Clinic.id == clinic_id)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None, False
    return row[0], row[1] is not None


async def clinics_by_ids(session: AsyncSession, clinic_ids: Iterable[int]) -> dict[int, Clinic]:
    """Clinics by id (for letters, visits and attachment letters)."""
    ids = sorted(set(clinic_ids))
    if not ids:
        return {}
    rows = (await session.execute(select(Clinic).where(Clinic.id.in_(ids)))).scalars()
    return {clinic.id: clinic for clinic in rows}


async def program_clinics(session: AsyncSession, program_id: int) -> list[Clinic]:
    """The clinics on a program's list (R2.3), by city and name.

    Args:
        session: The open session.
        program_id: The program.

    Returns:
        The listed clinics.
    """
    stmt = (
        select(Clinic)
        .join(ProgramClinic, ProgramClinic.clinic_id == Clinic.id)
        .where(ProgramClinic.program_id == program_id)
        .order_by(Clinic.city, Clinic.name, Clinic.id)
    )
    return list((await session.execute(stmt)).scalars())


async def dispatch_points(session: AsyncSession) -> list[DispatchPoint]:
    """Every known dispatch console, branch curator and federal line (R9)."""
    return list((await session.execute(select(DispatchPoint).order_by(DispatchPoint.id))).scalars())


async def telemedicine_used_between(session: AsyncSession, person_id: int, first: date, last: date) -> int:
    """Telemedicine services used by a person with ``first <= used_on <= last`` (R11.3).

    Args:
        session: The open session.
        person_id: The person.
        first: First day counted.
        last: Last day counted.

    Returns:
        The summed quantity.
    """
    stmt = select(func.coalesce(func.sum(ServiceUsed.quantity), 0)).where(
        ServiceUsed.insured_person_id == person_id,
        ServiceUsed.component == "telemedicine",
        ServiceUsed.used_on >= first,
        ServiceUsed.used_on <= last,
    )
    return int((await session.execute(stmt)).scalar_one())


async def premium_schedule(session: AsyncSession, policy_id: int) -> list[ScheduledPayment]:
    """The policy's own premium installments (not additional premiums), by due date (R7.3)."""
    stmt = (
        select(ScheduledPayment)
        .where(ScheduledPayment.policy_id == policy_id, ScheduledPayment.purpose == "premium")
        .order_by(ScheduledPayment.due_on, ScheduledPayment.id)
    )
    return list((await session.execute(stmt)).scalars())


async def registry_persons_of_policy(session: AsyncSession, policy_id: int) -> list[InsuredPerson]:
    """Active registry persons of a policy: each gets an attachment letter when money is bundled (R7.1)."""
    stmt = (
        select(InsuredPerson)
        .where(
            InsuredPerson.policy_id == policy_id,
            InsuredPerson.service_type == "registry",
            InsuredPerson.is_active.is_(True),
            InsuredPerson.attached_clinic_id.is_not(None),
        )
        .order_by(InsuredPerson.id)
    )
    return list((await session.execute(stmt)).scalars())


async def person_names(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, InsuredPerson]:
    """Persons by id (queue rows show name, city and service type)."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    rows = (await session.execute(select(InsuredPerson).where(InsuredPerson.id.in_(ids)))).scalars()
    return {person.id: person for person in rows}


async def find_persons(
    session: AsyncSession,
    *,
    policy_number: str | None = None,
    name: str | None = None,
    birth_date: date | None = None,
    phone: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[tuple[InsuredPerson, Policy]]:
    """Insured persons by any of: policy number (exact), name (case-insensitive substring), birth date, phone.

    Args:
        session: The open session.
        policy_number: The number printed on the policy.
        name: Part of the person's full name.
        birth_date: The exact birth date.
        phone: The phone on file, in E.164.
        limit: At most this many (one page).
        offset: Skip this many (earlier pages); the order (name, id) is stable, so pages do not overlap.

    Returns:
        ``(person, policy)`` pairs by name.
    """
    stmt = select(InsuredPerson, Policy).join(Policy, Policy.id == InsuredPerson.policy_id)
    if policy_number:
        stmt = stmt.where(Policy.number == policy_number)
    if name:
        stmt = stmt.where(func.lower(InsuredPerson.full_name).contains(name.lower(), autoescape=True))
    if birth_date is not None:
        stmt = stmt.where(InsuredPerson.birth_date == birth_date)
    if phone:
        stmt = stmt.where(InsuredPerson.phone == phone)
    stmt = stmt.order_by(InsuredPerson.full_name, InsuredPerson.id).limit(limit).offset(offset)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]
