"""What the browser app needs beyond the other areas' use cases.

- An insured person's own access log: every audited touch of their medical data by someone
  else (a doctor, a dispatcher, an admin), never filtered (checklist D1: the person may know).
- The doctor's view of the patient for one consultation: only what the consultation needs
  (name, age, where they are, their program and telemedicine left), and the read is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from sqlalchemy import select

from server.db.models import AuditEvent, Consultation, InsuredPerson, StaffAccount
from server.domain.errors import NotFound
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage import card_txn
from server.services.identity import Principal

ACCESS_LOG_LIMIT: Final = 300


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access to the person's data by someone else."""

    occurred_at: datetime
    actor_role: str
    actor_name: str
    action: str
    resource_type: str
    resource_id: str
    result: str


@dataclass(frozen=True, slots=True)
class PatientCard:
    """The patient as the consulting doctor sees them: no diagnoses, no letters, no payments."""

    consultation_id: int
    insured_person_id: int
    full_name: str
    age: int
    city: str
    service_type: str
    program: str
    components: list[str]
    policy_valid_today: bool
    telemedicine_left: int
    telemedicine_per_year: int
    attached_clinic: str | None
    answers_now: str
    answers_now_phone: str


def age_on(birth: date, today: date) -> int:
    """Full years on ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


async def access_log(ctx: ServiceContext, principal: Principal) -> list[AccessEntry]:
    """The newest accesses to my data by others, newest first (staff shown by name and role)."""
    async with ctx.uow() as uow:
        rows = (
            (
                await uow.session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.patient_id == principal.subject_id, AuditEvent.actor != principal.key)
                    .order_by(AuditEvent.id.desc())
                    .limit(ACCESS_LOG_LIMIT)
                )
            )
            .scalars()
            .all()
        )
        staff_ids = {int(r.actor.split(":", 1)[1]) for r in rows if r.actor.startswith("staff:")}
        names: dict[int, str] = {}
        if staff_ids:
            staff = await uow.session.execute(select(StaffAccount).where(StaffAccount.id.in_(staff_ids)))
            names = {s.id: s.full_name for s in staff.scalars()}
        entries = []
        for row in rows:
            kind, _, raw_id = row.actor.partition(":")
            name = names.get(int(raw_id), row.actor) if kind == "staff" and raw_id.isdigit() else row.actor
            entries.append(
                AccessEntry(
                    occurred_at=row.occurred_at,
                    actor_role=row.actor_role,
                    actor_name=name,
                    action=row.action,
                    resource_type=row.resource_type,
                    resource_id=row.resource_id,
                    result=row.result,
                )
            )
    return entries


async def patient_card(ctx: ServiceContext, principal: Principal, consultation_id: int) -> PatientCard:
    """The patient of a consultation offered to or held by this doctor; anyone else gets 404."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        consultation = await uow.session.get(Consultation, consultation_id)
        if consultation is None or principal.subject_id not in (consultation.doctor_id, consultation.offered_to_id):
            raise NotFound("no such consultation")
        person = await uow.session.get(InsuredPerson, consultation.insured_person_id)
        if person is None:
            raise NotFound("no such consultation")
        card = await card_txn(uow.session, person, now)
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="consultation.patient_card",
            resource_type="consultation",
            resource_id=consultation.id,
            patient_id=person.id,
        )
        await uow.commit()
    clinic = card.attached_clinic
    return PatientCard(
        consultation_id=consultation_id,
        insured_person_id=person.id,
        full_name=person.full_name,
        age=age_on(person.birth_date, card.today),
        city=person.city,
        service_type=card.service_type,
        program=card.program.name,
        components=list(card.program.components),
        policy_valid_today=card.policy.valid_today,
        telemedicine_left=card.telemedicine.left,
        telemedicine_per_year=card.telemedicine.allowance_per_year,
        attached_clinic=f"{clinic.name}, {clinic.address}, {clinic.phone}" if clinic else None,
        answers_now=card.answers_now.name,
        answers_now_phone=card.answers_now.phone,
    )
