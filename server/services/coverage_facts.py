"""Converters from stored rows (ORM models) to the domain's immutable facts, shared by every coverage use case.

The domain rules (server/domain/coverage*.py, consultation.py) decide on plain facts; these
functions are the one place that knows how the tables hold them. They do no I/O of their own
except the ``load_*`` helpers, which take an open session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AttachmentLetter,
    Clinic,
    DispatchPoint,
    InsuredEvent,
    InsuredPerson,
    LetterOfGuarantee,
    Policy,
    Program,
    ProgramClinic,
    ScheduledPayment,
)
from server.domain.consultation import OpenEvent
from server.domain.coverage_types import (
    AttachmentLetterFacts,
    ClinicFacts,
    InsuredEventFacts,
    InsuredFacts,
    LetterFacts,
    PolicyFacts,
    ProgramFacts,
)
from server.domain.routing import DispatchPoint as DispatchPointFacts
from server.domain.routing import hours_from_json

INSURER_TIMEZONE: Final = ZoneInfo("Europe/Moscow")
"""Policy periods and program years are calendar days of the insurer's home time zone."""


def coverage_day(now: datetime) -> date:
    """The calendar day that coverage rules use for an instant (Moscow time, where policies are dated)."""
    return now.astimezone(INSURER_TIMEZONE).date()


def to_program_facts(program: Program, clinic_ids: Iterable[int] = ()) -> ProgramFacts:
    """A program row (and its clinic list, when loaded) as ``ProgramFacts``."""
    return ProgramFacts(
        id=program.id,
        components=frozenset(program.components or ()),  # type: ignore[arg-type]
        price_category=program.price_category,
        tariff_dispatcher=program.tariff_dispatcher,
        tariff_registry=program.tariff_registry,
        registry_offered=program.registry_offered,
        clinic_ids=frozenset(clinic_ids),
        telemedicine_allowance_per_year=program.telemedicine_allowance_per_year,
        name=program.name,
    )


def to_policy_facts(policy: Policy, schedule: Iterable[ScheduledPayment | date] = ()) -> PolicyFacts:
    """A policy row (and its premium schedule, when given) as ``PolicyFacts``.

    Only premium installments count as the schedule (R7.3); additional-premium rows of an
    additional agreement are ignored here.
    """
    dues: list[date] = []
    for item in schedule:
        if isinstance(item, ScheduledPayment):
            if item.purpose == "premium":
                dues.append(item.due_on)
        else:
            dues.append(item)
    return PolicyFacts(
        id=policy.id,
        number=policy.number,
        starts_on=policy.starts_on,
        ends_on=policy.ends_on,
        payment_mode=policy.payment_mode,  # type: ignore[arg-type]
        installment_due_dates=tuple(dues) if policy.payment_mode == "installments" else (),
        program_id=policy.program_id,
    )


def to_insured_facts(person: InsuredPerson) -> InsuredFacts:
    """An insured person row as ``InsuredFacts``."""
    return InsuredFacts(
        id=person.id,
        service_type=person.service_type,  # type: ignore[arg-type]
        attached_clinic_id=person.attached_clinic_id,
        is_active=person.is_active,
        has_pass_photo=person.has_pass_photo,
        city=person.city,
        policy_id=person.policy_id,
    )


def to_clinic_facts(clinic: Clinic) -> ClinicFacts:
    """A clinic row as ``ClinicFacts``."""
    return ClinicFacts(
        id=clinic.id,
        name=clinic.name,
        city=clinic.city,
        price_category=clinic.price_category,
        has_access_system=clinic.has_access_system,
        address=clinic.address,
        phone=clinic.phone,
    )


def to_letter_facts(letter: LetterOfGuarantee) -> LetterFacts:
    """A letter of guarantee row as ``LetterFacts``."""
    return LetterFacts(
        number=letter.number,
        clinic_id=letter.clinic_id,
        services=frozenset(letter.services or ()),
        issued_on=letter.issued_on,
        valid_until=letter.valid_until,
        status=letter.status,  # type: ignore[arg-type]
        insured_event_id=letter.insured_event_id,
    )


def to_attachment_letter_facts(letter: AttachmentLetter) -> AttachmentLetterFacts:
    """An attachment letter row as ``AttachmentLetterFacts``."""
    return AttachmentLetterFacts(
        number=letter.number,
        clinic_id=letter.clinic_id,
        generated_on=letter.generated_on,
        send_on=letter.send_on,
        valid_from=letter.valid_from,
        valid_until=letter.valid_until,
    )


def to_insured_event_facts(event: InsuredEvent) -> InsuredEventFacts:
    """An insured event row as ``InsuredEventFacts`` (its day is the insurer's calendar day)."""
    return InsuredEventFacts(
        id=event.id,
        complaints=event.complaints,
        component=event.component,  # type: ignore[arg-type]
        status=event.status,  # type: ignore[arg-type]
        opened_on=coverage_day(event.opened_at),
    )


def to_dispatch_point(point: DispatchPoint) -> DispatchPointFacts:
    """A dispatch point row (console, branch curator, federal line) as the routing rules' ``DispatchPoint`` (R9)."""
    return DispatchPointFacts(
        kind=point.kind,  # type: ignore[arg-type]
        city=point.city,
        name=point.name,
        phone=point.phone,
        timezone=point.timezone,
        hours=hours_from_json(point.hours or {}),
    )


def to_open_event(event: InsuredEvent, specialty: str | None = None) -> OpenEvent:
    """An insured event row as the consultation matcher's ``OpenEvent`` (R3.1, R11.3)."""
    return OpenEvent(id=event.id, complaints=event.complaints, opened_at=event.opened_at, specialty=specialty)


@dataclass(frozen=True, slots=True)
class CoverageRecords:
    """A person's stored coverage records, loaded together, and their facts."""

    person: InsuredPerson
    policy: Policy
    program: Program
    insured: InsuredFacts
    policy_facts: PolicyFacts
    program_facts: ProgramFacts


async def load_coverage_records(
    session: AsyncSession, person: InsuredPerson, *, with_clinics: bool = False
) -> CoverageRecords:
    """Load the person's policy, program and premium schedule and convert them to facts.

    Args:
        session: The open session.
        person: The insured person row (already loaded, possibly locked).
        with_clinics: Also load the program's clinic list into ``ProgramFacts.clinic_ids``.

    Returns:
        The rows and their facts.
    """
    policy = await session.get(Policy, person.policy_id)
    if policy is None:  # pragma: no cover - a foreign key guarantees it
        raise LookupError(f"policy {person.policy_id} of insured person {person.id} is missing")
    program = await session.get(Program, policy.program_id)
    if program is None:  # pragma: no cover - a foreign key guarantees it
        raise LookupError(f"program {policy.program_id} is missing")
    schedule = (
        await session.execute(select(ScheduledPayment).where(ScheduledPayment.policy_id == policy.id))
    ).scalars()
    clinic_ids: list[int] = []
    if with_clinics:
        clinic_ids = list(
            (
                await session.execute(select(ProgramClinic.clinic_id).where(ProgramClinic.program_id == program.id))
            ).scalars()
        )
    return CoverageRecords(
        person=person,
        policy=policy,
        program=program,
        insured=to_insured_facts(person),
        policy_facts=to_policy_facts(policy, schedule),
        program_facts=to_program_facts(program, clinic_ids),
    )
