"""Reading consultations: what the patient, the doctor or an admin sees (queue position, estimated wait,
the completion summary), object-level access (checklist C1) and the doctor's live queue."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Consultation,
)
from server.db.repositories import consultations as repo
from server.db.repositories import roster as roster_repo
from server.domain import consultation as rules
from server.domain import escalation as escalation_rules
from server.domain import roster as roster_rules
from server.domain import wait as wait_rules
from server.domain.errors import NotFound
from server.domain.icd10 import describe_icd10
from server.services import audit
from server.services import consultation_safety as safety
from server.services.consultations.common import DEFAULT_MAX_ACTIVE, EMERGENCY_PHONES, RECENT_COMPLETED, RESOURCE
from server.services.context import ServiceContext
from server.services.identity import ROLE_ADMIN, ROLE_DOCTOR, ROLE_INSURED, Principal
from server.services.roster import to_domain_shift

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClinicRef:
    """Where a registry person books (R6.2)."""

    id: int
    name: str
    address: str
    phone: str


@dataclass(frozen=True, slots=True)
class SummaryView:
    """What the patient is told after completion."""

    outcome: str
    icd10_code: str
    icd10_description: str
    notes: str
    referral_specialty: str | None
    referral_services: list[str]
    referral_route: str | None
    dispatch_request_id: int | None
    clinic: ClinicRef | None
    emergency_phones: list[str]
    instructions: str


@dataclass(frozen=True, slots=True)
class ConsultationView:
    """A consultation as its patient, its doctor or an admin sees it."""

    id: int
    status: str
    channel: str
    specialty: str
    complaints: str
    requested_at: datetime
    patient_id: int
    patient_name: str | None
    doctor_id: int | None
    doctor_name: str | None
    offered_to_id: int | None
    offer_expires_at: datetime | None
    accepted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    insured_event_id: int | None
    queue_position: int | None = None
    estimated_wait_minutes: int | None = None
    doctors_on_duty: int | None = None
    doctor_on_duty: bool | None = None
    notice: str | None = None
    summary: SummaryView | None = None
    urgent: bool = False
    wait_basis: str | None = None
    escalated: bool = False
    addenda: list[safety.AddendumView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AllowanceView:
    """The person's telemedicine allowance for the program year (R11.3)."""

    year: int
    allowance_per_year: int
    used: int
    open: int
    left: int


@dataclass(frozen=True, slots=True)
class DoctorQueueView:
    """A doctor's live queue: offers with deadlines, active consultations, waiting counts."""

    on_duty_specialties: list[str]
    duty_ends_at: datetime | None
    max_active: int
    offers: list[ConsultationView]
    active: list[ConsultationView]
    waiting: dict[str, int] = field(default_factory=dict)


def _visible_to(consultation: Consultation, principal: Principal) -> bool:
    """Object-level access: the patient, the doctor it is offered to or held by, or an admin (checklist C1)."""
    if principal.role == ROLE_ADMIN:
        return True
    if principal.role == ROLE_INSURED:
        return consultation.insured_person_id == principal.subject_id
    if principal.role == ROLE_DOCTOR:
        return principal.subject_id in (consultation.doctor_id, consultation.offered_to_id)
    return False


async def get_consultation(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationView:
    """One consultation for someone allowed to see it; anyone else gets 404 (it is not revealed).

    Raises:
        NotFound: no such consultation, or the caller may not see it.
    """
    view = await view_for(ctx, consultation_id, principal, check=True)
    await audit.record(
        ctx,
        principal,
        action="consultation.read",
        resource_type=RESOURCE,
        resource_id=consultation_id,
        patient_id=view.patient_id,
    )
    return view


async def list_consultations(ctx: ServiceContext, principal: Principal) -> list[ConsultationView]:
    """The caller's consultations: a patient's own, or a doctor's offers, active and recently completed ones."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        if principal.role == ROLE_INSURED:
            rows = await repo.consultations_of_person(session, principal.subject_id)
        elif principal.role == ROLE_DOCTOR:
            rows = await repo.consultations_of_doctor(
                session, principal.subject_id, completed_since=now - RECENT_COMPLETED
            )
        else:
            rows = []
        views = await views_of(ctx, session, rows, principal, now)
    if views:
        async with ctx.uow() as uow:
            for view in views:
                await audit.record_txn(
                    ctx,
                    uow.session,
                    principal,
                    action="consultation.list",
                    resource_type=RESOURCE,
                    resource_id=view.id,
                    patient_id=view.patient_id,
                )
            await uow.commit()
    return views


async def view_for(
    ctx: ServiceContext, consultation_id: int, principal: Principal, *, check: bool = False
) -> ConsultationView:
    now = ctx.clock.now()
    denied_patient: int | None = None
    async with ctx.uow() as uow:
        consultation = await repo.get_consultation(uow.session, consultation_id)
        if consultation is not None and (not check or _visible_to(consultation, principal)):
            return (await views_of(ctx, uow.session, [consultation], principal, now))[0]
        if consultation is not None:
            denied_patient = consultation.insured_person_id
    if denied_patient is not None:
        # Recorded after the read transaction ended (SQLite allows one writer at a time).
        with contextlib.suppress(Exception):
            await audit.record(
                ctx,
                principal,
                action="consultation.read",
                resource_type=RESOURCE,
                resource_id=consultation_id,
                patient_id=denied_patient,
                result=audit.RESULT_DENIED,
            )
    raise NotFound("no such consultation")


async def views_of(
    ctx: ServiceContext,
    session: AsyncSession,
    rows: Sequence[Consultation],
    principal: Principal,
    now: datetime,
) -> list[ConsultationView]:
    if not rows:
        return []
    doctor_names = await repo.staff_names(session, [i for c in rows for i in (c.doctor_id, c.offered_to_id) if i])
    patient_names = (
        await repo.person_names(session, [c.insured_person_id for c in rows])
        if principal.role in (ROLE_DOCTOR, ROLE_ADMIN)
        else {}
    )
    shifts: list[roster_rules.Shift] | None = None
    views: list[ConsultationView] = []
    for c in rows:
        position = wait = duty = None
        basis: str | None = None
        notice = None
        if c.status in (rules.Status.QUEUED, rules.Status.OFFERED):
            if shifts is None:
                shifts = [
                    to_domain_shift(s)
                    for s in await roster_repo.shifts_overlapping(session, now, now + wait_rules.DEFAULT_HORIZON)
                ]
            duty = len(roster_rules.on_duty(shifts, now, c.specialty))
            average = await repo.recent_average_minutes(session, c.specialty)
            estimate = await safety.honest_wait(
                ctx, session, c, shifts, now, average or float(ctx.settings.consultation_avg_minutes)
            )
            position, wait, basis = estimate.position, estimate.minutes, estimate.basis.value
            if duty == 0:
                notice = await _nobody_on_duty_notice(session, c.specialty, now)
                if c.escalated_at is not None:  # the alert row exists: only then is this said (R11.2, R11.7)
                    notice += " The duty team has been alerted (R11.2, R11.7) and can call you back."
            elif c.escalated_at is not None and c.escalation_reason:
                notice = escalation_rules.PATIENT_MESSAGES[escalation_rules.EscalationReason(c.escalation_reason)]
            elif wait is None:
                notice = "We cannot say how long the wait is: no doctor of this specialty can take a new request now."
        summary = await _summary(session, c) if c.status == rules.Status.COMPLETED else None
        addenda = (await safety.addenda_for(session, [c.id]))[c.id] if c.status == rules.Status.COMPLETED else []
        views.append(
            ConsultationView(
                id=c.id,
                status=c.status,
                channel=c.channel,
                specialty=c.specialty,
                complaints=c.complaints,
                requested_at=c.requested_at,
                patient_id=c.insured_person_id,
                patient_name=patient_names.get(c.insured_person_id),
                doctor_id=c.doctor_id,
                doctor_name=doctor_names.get(c.doctor_id) if c.doctor_id else None,
                offered_to_id=c.offered_to_id if principal.role != ROLE_INSURED else None,
                offer_expires_at=c.offer_expires_at if principal.role != ROLE_INSURED else None,
                accepted_at=c.accepted_at,
                completed_at=c.completed_at,
                cancelled_at=c.cancelled_at,
                cancel_reason=c.cancel_reason,
                insured_event_id=c.insured_event_id,
                queue_position=position,
                estimated_wait_minutes=wait,
                doctors_on_duty=duty,
                doctor_on_duty=None if duty is None else duty > 0,
                notice=notice,
                summary=summary,
                urgent=bool(c.urgent),
                wait_basis=basis,
                escalated=c.escalated_at is not None,
                addenda=addenda,
            )
        )
    return views


async def _nobody_on_duty_notice(session: AsyncSession, specialty: str, now: datetime) -> str:
    practitioner = roster_rules.get_specialty(specialty).practitioner
    upcoming = await roster_repo.next_shift_start(session, specialty, now)
    when = f"; the next shift starts at {upcoming.isoformat()}" if upcoming else "; no shift is scheduled yet"
    options = "" if specialty == roster_rules.GENERAL_PRACTICE else " You can ask a general practitioner instead."
    return f"No {practitioner} is on duty right now: your request stays in the queue{when}.{options}"


async def _summary(session: AsyncSession, c: Consultation) -> SummaryView:
    """The patient summary of a completed consultation: diagnosis, notes and where to go next."""
    description = ""
    if c.icd10_code:
        description = describe_icd10(c.icd10_code)
    clinic = None
    if c.referral_route == rules.RouteKind.ATTACHED_CLINIC:
        person = await repo.get_person(session, c.insured_person_id)
        found = (
            await repo.get_clinic(session, person.attached_clinic_id) if person and person.attached_clinic_id else None
        )
        if found is not None:
            clinic = ClinicRef(found.id, found.name, found.address, found.phone)
    outcome = c.outcome or rules.Outcome.ADVICE.value
    return SummaryView(
        outcome=outcome,
        icd10_code=c.icd10_code or "",
        icd10_description=description,
        notes=c.notes or "",
        referral_specialty=c.referral_specialty,
        referral_services=list(c.referral_services or []),
        referral_route=c.referral_route,
        dispatch_request_id=c.dispatch_request_id,
        clinic=clinic,
        emergency_phones=list(EMERGENCY_PHONES) if outcome == rules.Outcome.EMERGENCY else [],
        instructions=_instructions(c, clinic),
    )


def _instructions(c: Consultation, clinic: ClinicRef | None) -> str:
    if c.outcome == rules.Outcome.EMERGENCY:
        return (
            "Call an ambulance now: 103 (or 112 from any phone). Your program's ambulance care covers it; "
            "tell them your policy number."
        )
    if c.outcome == rules.Outcome.REFERRAL:
        target = (c.referral_specialty or "a specialist").replace("_", " ")
        if c.referral_route == rules.RouteKind.ATTACHED_CLINIC and clinic is not None:
            return (
                f"You are referred to {target}. Book directly with your clinic {clinic.name}, {clinic.address}, "
                f"phone {clinic.phone}; no approval from the insurer is needed there (R6.2)."
            )
        return (
            f"You are referred to {target}. Your request no. {c.dispatch_request_id} is with the insurer's dispatch "
            "console: a dispatcher will agree a clinic with you and send it a letter of guarantee (R2)."
        )
    return "Follow the doctor's advice above. If you feel worse, request a new consultation; in an emergency call 103."


async def doctor_queue(ctx: ServiceContext, principal: Principal) -> DoctorQueueView:
    """A doctor's live queue: their offers (with deadlines), active consultations and waiting counts."""
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        doctor = (await repo.doctors(session, [doctor_id])).get(doctor_id)
        specialties = list(doctor.specialties or []) if doctor else []
        shifts = [
            to_domain_shift(s)
            for s in await roster_repo.shifts_overlapping(
                session, now - timedelta(hours=1), now + timedelta(days=2), doctor_id=doctor_id
            )
        ]
        on_duty_for = sorted({s.specialty for s in shifts if s.covers(now)})
        rows = await repo.consultations_of_doctor(session, doctor_id, completed_since=now)
        views = await views_of(ctx, session, rows, principal, now)
        waiting = await repo.waiting_counts(session, specialties)
        max_active = doctor.max_active_consultations if doctor else DEFAULT_MAX_ACTIVE
        # The queue shows names and complaints: one audit row per patient shown (checklist D1).
        for patient_id in sorted({v.patient_id for v in views}):
            await audit.record_txn(
                ctx,
                session,
                principal,
                action="doctor.queue.read",
                resource_type="doctor_queue",
                resource_id=doctor_id,
                patient_id=patient_id,
            )
        await uow.commit()
    return DoctorQueueView(
        on_duty_specialties=on_duty_for,
        duty_ends_at=roster_rules.duty_ends_at(shifts, doctor_id, now),
        max_active=max_active,
        offers=[v for v in views if v.status == rules.Status.OFFERED],
        active=[v for v in views if v.status == rules.Status.ACTIVE],
        waiting={s: waiting.get(s, 0) for s in specialties},
    )
