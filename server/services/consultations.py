"""Telemedicine consultations: request, queue and assignment, accept/decline, cancel, completion with write-back (R11).

Every state change is a conditional UPDATE in the repository (``WHERE status = ... AND
offered_to_id = ...``): a doctor, a patient and any number of server processes running the
assignment cycle can race on one consultation and exactly one of them wins. Offers to one
doctor are additionally serialised by locking the doctor's account row, so the per-doctor
limit of simultaneous consultations holds across processes.

Assignment rules implemented by ``run_assignment_cycle`` (each cycle, oldest request first):

1. An offer not accepted by its deadline goes back to the queue; the silent doctor is skipped
   for that consultation (never offered it again in this round).
2. An offer to a doctor who is no longer on duty for the specialty, or whose duty ends within
   ``offer_min_remaining_shift_minutes``, goes back to the queue (the doctor is not skipped).
3. Shift-end handover: an active consultation whose doctor is off duty for its specialty, and
   whose last shift of that specialty ended at least ``handover_grace_minutes`` ago (or who has
   no such shift at all), goes back to the queue with that doctor skipped; its chat stays with it.
   It keeps its request time, so it is first in line for the next doctor.
4. Each queued consultation is offered to ``assignment.choose_doctor``'s pick among the doctors
   on duty for its specialty now: least loaded (active + pending offers) under their own
   ``max_active_consultations``, not skipped, with more than the minimum of duty left.
5. When every doctor who could take a consultation has already been skipped, a new round starts
   (the skipped list is cleared, the most recently skipped doctor being last choice), so nobody
   waits forever while a doctor is on duty.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Consultation,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    ServiceUsed,
)
from server.db.repositories import consultations as repo
from server.db.repositories import roster as roster_repo
from server.db.uow import UnitOfWork
from server.domain import assignment
from server.domain import consultation as rules
from server.domain import roster as roster_rules
from server.domain.attachment import attachment_effective
from server.domain.coverage import evaluate_coverage
from server.domain.decisions import Reason
from server.domain.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.domain.icd10 import ERR_INVALID_ICD10, validate_icd10
from server.realtime.channels import (
    EVENT_CONSULTATION_OFFERED,
    EVENT_CONSULTATION_UPDATED,
    EVENT_DISPATCH_QUEUE_CHANGED,
    EVENT_QUEUE_CHANGED,
    consultation_channel,
    dispatch_queue_channel,
    doctors_queue_channel,
    user_channel,
)
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    coverage_day,
    load_coverage_records,
    to_attachment_letter_facts,
    to_open_event,
)
from server.services.identity import ROLE_ADMIN, ROLE_DOCTOR, ROLE_INSURED, Principal
from server.services.roster import ensure_gap_alert_now, to_domain_shift

log = logging.getLogger(__name__)

COMPONENT: Final = "telemedicine"
SERVICE_NAME: Final = "telemedicine_consultation"
EMERGENCY_PHONES: Final = ("103", "112")
RECENT_COMPLETED: Final = timedelta(days=7)
MAX_QUEUE_PER_CYCLE: Final = 500
DEFAULT_MAX_ACTIVE: Final = 3
RESOURCE: Final = "consultation"


# ----------------------------------------------------------------------------- views


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
    notice: str | None = None
    summary: SummaryView | None = None


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


# ----------------------------------------------------------------------------- events


def _publish(ctx: ServiceContext, uow: UnitOfWork, channel: str, message: dict[str, Any]) -> None:
    """Publish after commit; a bus failure is logged, never turned into an error (the DB is the truth)."""

    async def hook() -> None:
        try:
            await ctx.bus.publish(channel, message)
        except Exception:
            log.warning("could not publish %s on %s; clients will catch up from the database", message, channel)

    uow.after_commit(hook)


def _announce(
    ctx: ServiceContext,
    uow: UnitOfWork,
    consultation: Consultation,
    status: str,
    *,
    doctors: Sequence[int | None] = (),
    reason: str | None = None,
    queue_changed: bool = True,
) -> None:
    """Tell the consultation's room, its patient, the doctors involved and the doctors' queue."""
    message: dict[str, Any] = {
        "type": EVENT_CONSULTATION_UPDATED,
        "consultation_id": consultation.id,
        "status": status,
    }
    if reason:
        message["reason"] = reason
    _publish(ctx, uow, consultation_channel(consultation.id), message)
    _publish(ctx, uow, user_channel(f"insured:{consultation.insured_person_id}"), message)
    for doctor_id in sorted({d for d in doctors if d is not None}):
        _publish(ctx, uow, user_channel(f"staff:{doctor_id}"), message)
    if queue_changed:
        _publish(ctx, uow, doctors_queue_channel(), {"type": EVENT_QUEUE_CHANGED, "specialty": consultation.specialty})
    uow.after_commit(ctx.metrics.consultations.labels(status=status).inc)


def _state(consultation: Consultation) -> rules.ConsultationState:
    """The stored row as the domain's state machine sees it."""
    offered = consultation.status == rules.Status.OFFERED
    return rules.ConsultationState(
        id=consultation.id,
        status=rules.Status(consultation.status),
        doctor_id=consultation.doctor_id,
        offered_to_id=consultation.offered_to_id if offered else None,
        offer_expires_at=consultation.offer_expires_at if offered else None,
        skipped_doctor_ids=frozenset(consultation.skipped_doctor_ids or ()),
    )


# ----------------------------------------------------------------------------- request


async def request_consultation(
    ctx: ServiceContext, principal: Principal, *, channel: str, specialty: str, complaints: str
) -> ConsultationView:
    """An insured person asks for a consultation; it is checked, queued and offered (R10.2, R11).

    Args:
        ctx: Service context.
        principal: The insured person.
        channel: ``text``, ``audio`` or ``video``.
        specialty: ``general_practice`` or another telemedicine specialty.
        complaints: What the person complains of (1-2000 characters).

    Returns:
        The queued (or already offered) consultation with its queue position and estimated wait.
        If nobody of the specialty is on duty it is still queued, the view says so, and for
        general practice the roster gap is raised as an alert (R11.2).

    Raises:
        InvalidInput: unknown specialty or channel, empty or too long complaints.
        RuleViolation: no telemedicine in the program or policy not valid today (R10.1, R10.2,
            R2.2), or the yearly allowance is used up (R11.3).
        Conflict: ``consultation_open`` when the person already has an open consultation.
    """
    request = rules.validate_request(complaints, specialty, channel)
    now = ctx.clock.now()
    today = coverage_day(now)
    async with ctx.uow() as uow:
        session = uow.session
        person = await repo.lock_insured_person(session, principal.subject_id)
        if person is None:
            raise NotFound("no such insured person")
        records = await load_coverage_records(session, person)
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, COMPONENT, today)
        if not coverage.allowed:
            raise RuleViolation(
                "telemedicine is not covered for you today: " + "; ".join(r.message for r in coverage.reasons[1:]),
                reasons=coverage.reasons,
                details={"refusal": "not_covered"},
            )
        existing = await repo.open_consultation_of(session, person.id)
        if existing is not None:
            raise Conflict(
                "you already have an open consultation; finish or cancel it first",
                code="consultation_open",
                details={"consultation_id": existing.id, "status": existing.status},
            )
        used, pending = await _allowance_counts(session, person.id, today)
        allowance = rules.check_allowance(
            used, records.program.telemedicine_allowance_per_year, year=today.year, pending=pending
        )
        if not allowance.allowed:
            raise RuleViolation(
                allowance.reasons[0].message,
                reasons=allowance.reasons,
                details={"refusal": "allowance_used_up"},
            )
        consultation = Consultation(
            insured_person_id=person.id,
            policyholder_id=records.policy.policyholder_id,
            department=person.department,
            channel=request.channel.value,
            specialty=request.specialty,
            complaints=request.complaints,
            status=rules.Status.QUEUED.value,
            skipped_doctor_ids=[],
            referral_services=[],
            last_seq=0,
            requested_at=now,
        )
        session.add(consultation)
        await session.flush()
        consultation_id = consultation.id
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.request",
            resource_type=RESOURCE,
            resource_id=consultation.id,
            patient_id=person.id,
        )
        _announce(ctx, uow, consultation, rules.Status.QUEUED.value)
        await uow.commit()
    log.info("consultation %s queued (%s, %s)", consultation_id, request.specialty, request.channel.value)
    await _assign_soon(ctx)
    view = await _view_for(ctx, consultation_id, principal)
    if view.doctors_on_duty == 0:
        log.warning(
            "consultation %s queued with no %s doctor on duty%s",
            consultation_id,
            request.specialty,
            " (R11.2 roster gap)" if request.specialty in roster_rules.ALWAYS_COVERED else "",
        )
        await ensure_gap_alert_now(ctx, request.specialty)
    return view


async def _allowance_counts(session: AsyncSession, person_id: int, today: date) -> tuple[int, int]:
    used = await repo.telemedicine_used_between(session, person_id, date(today.year, 1, 1), date(today.year, 12, 31))
    pending = await repo.count_open_consultations(session, person_id)
    return used, pending


async def telemedicine_allowance(ctx: ServiceContext, person_id: int) -> AllowanceView:
    """How many consultations the person has left this year (R11.3): allowance - used - open.

    Raises:
        NotFound: no such person.
    """
    today = coverage_day(ctx.clock.now())
    async with ctx.uow() as uow:
        person = await repo.get_person(uow.session, person_id)
        if person is None:
            raise NotFound("no such insured person")
        records = await load_coverage_records(uow.session, person)
        used, pending = await _allowance_counts(uow.session, person_id, today)
        allowance = records.program.telemedicine_allowance_per_year
    return AllowanceView(
        year=today.year, allowance_per_year=allowance, used=used, open=pending, left=max(0, allowance - used - pending)
    )


# ----------------------------------------------------------------------------- reading


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
    view = await _view_for(ctx, consultation_id, principal, check=True)
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
        views = await _views(ctx, session, rows, principal, now)
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


async def _view_for(
    ctx: ServiceContext, consultation_id: int, principal: Principal, *, check: bool = False
) -> ConsultationView:
    now = ctx.clock.now()
    denied_patient: int | None = None
    async with ctx.uow() as uow:
        consultation = await repo.get_consultation(uow.session, consultation_id)
        if consultation is not None and (not check or _visible_to(consultation, principal)):
            return (await _views(ctx, uow.session, [consultation], principal, now))[0]
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


async def _views(
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
        notice = None
        if c.status in (rules.Status.QUEUED, rules.Status.OFFERED):
            if shifts is None:
                shifts = [
                    to_domain_shift(s)
                    for s in await roster_repo.shifts_overlapping(session, now, now + timedelta(seconds=1))
                ]
            position = await repo.waiting_ahead(session, c) + 1
            duty = len(roster_rules.on_duty(shifts, now, c.specialty))
            average = await repo.recent_average_minutes(session, c.specialty)
            estimate = rules.estimate_wait(position, duty, average or float(ctx.settings.consultation_avg_minutes))
            wait = estimate.minutes
            if duty == 0:
                notice = await _nobody_on_duty_notice(session, c.specialty, now)
        summary = await _summary(session, c) if c.status == rules.Status.COMPLETED else None
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
                notice=notice,
                summary=summary,
            )
        )
    return views


async def _nobody_on_duty_notice(session: AsyncSession, specialty: str, now: datetime) -> str:
    practitioner = roster_rules.get_specialty(specialty).practitioner
    upcoming = await roster_repo.next_shift_start(session, specialty, now)
    when = f"; the next shift starts at {upcoming.isoformat()}" if upcoming else "; no shift is scheduled yet"
    alarm = " The duty team has been alerted (R11.2)." if specialty in roster_rules.ALWAYS_COVERED else ""
    return f"No {practitioner} is on duty right now: your request stays in the queue{when}.{alarm}"


async def _summary(session: AsyncSession, c: Consultation) -> SummaryView:
    """The patient summary of a completed consultation: diagnosis, notes and where to go next."""
    description = ""
    if c.icd10_code:
        with contextlib.suppress(InvalidInput):
            description = validate_icd10(c.icd10_code).description
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


# ----------------------------------------------------------------------------- doctor actions


async def _locked_for_doctor(session: AsyncSession, consultation_id: int, doctor_id: int) -> Consultation:
    consultation = await repo.get_consultation(session, consultation_id, for_update=True)
    if consultation is None or doctor_id not in (
        consultation.doctor_id,
        consultation.offered_to_id,
        *(consultation.skipped_doctor_ids or ()),
    ):
        raise NotFound("no such consultation")
    return consultation


async def accept_offer(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationView:
    """The doctor takes a consultation offered to them: offered -> active.

    Accepting again what one already holds returns it unchanged.

    Raises:
        NotFound: never offered to this doctor.
        Conflict: ``offer_expired`` (the deadline passed, or it went on to another doctor), or
            ``invalid_transition`` (cancelled, completed).
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    expired = False
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await _locked_for_doctor(session, consultation_id, doctor_id)
        if consultation.status == rules.Status.ACTIVE and consultation.doctor_id == doctor_id:
            return (await _views(ctx, session, [consultation], principal, now))[0]
        state = _state(consultation)
        if (
            state.status is rules.Status.OFFERED
            and state.offered_to_id == doctor_id
            and rules.offer_expired(state, now)
        ):
            # Too late: pass it on right away instead of waiting for the next cycle.
            await _return_offer_txn(ctx, uow, consultation, doctor_id, skip=True, reason="offer_expired")
            await uow.commit()
            expired = True
        elif state.status is not rules.Status.OFFERED or state.offered_to_id != doctor_id:
            if state.status in (rules.Status.QUEUED, rules.Status.OFFERED, rules.Status.ACTIVE):
                raise Conflict(
                    f"the offer of consultation {consultation_id} has expired and went to another doctor",
                    code=rules.ERR_OFFER_EXPIRED,
                    details={"consultation_id": consultation_id},
                )
            rules.accept(state, doctor_id, now)  # raises the state machine's Conflict
        else:
            rules.accept(state, doctor_id, now)
            if not await repo.mark_accepted(session, consultation_id, doctor_id, now):
                raise Conflict("the offer changed meanwhile; reload", code="offer_changed")
            await audit.record_txn(
                ctx,
                session,
                principal,
                action="consultation.accept",
                resource_type=RESOURCE,
                resource_id=consultation_id,
                patient_id=consultation.insured_person_id,
            )
            fresh = await repo.refresh_consultation(session, consultation_id)
            assert fresh is not None
            _announce(ctx, uow, fresh, rules.Status.ACTIVE.value, doctors=[doctor_id])
            await uow.commit()
            log.info("consultation %s accepted by doctor %s", consultation_id, doctor_id)
            return (await _views(ctx, session, [fresh], principal, now))[0]
    if expired:
        await _assign_soon(ctx)
        raise Conflict(
            f"the offer of consultation {consultation_id} has expired; it goes to the next doctor",
            code=rules.ERR_OFFER_EXPIRED,
            details={"consultation_id": consultation_id},
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def decline_offer(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationView:
    """The doctor passes on an offer: it goes back to the queue and to the next doctor; they are skipped.

    Raises:
        NotFound: never offered to this doctor.
        Conflict: not (or no longer) offered to this doctor.
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await _locked_for_doctor(session, consultation_id, doctor_id)
        state = _state(consultation)
        if state.status is rules.Status.OFFERED and state.offered_to_id != doctor_id:
            raise Conflict(
                f"consultation {consultation_id} is no longer offered to you",
                code=rules.ERR_NOT_OFFERED_TO_YOU,
                details={"consultation_id": consultation_id},
            )
        rules.decline(state, doctor_id)  # raises Conflict unless offered to this doctor
        await _return_offer_txn(ctx, uow, consultation, doctor_id, skip=True, reason="declined")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.decline",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=consultation.insured_person_id,
        )
        await uow.commit()
    log.info("consultation %s declined by doctor %s", consultation_id, doctor_id)
    await _assign_soon(ctx)
    async with ctx.uow() as uow:
        fresh = await repo.get_consultation(uow.session, consultation_id)
        assert fresh is not None
        return (await _views(ctx, uow.session, [fresh], principal, now))[0]


async def _return_offer_txn(
    ctx: ServiceContext, uow: UnitOfWork, consultation: Consultation, doctor_id: int, *, skip: bool, reason: str
) -> bool:
    """offered -> queued (conditional); with ``skip`` the doctor is not offered it again this round."""
    skipped = list(consultation.skipped_doctor_ids or [])
    if skip and doctor_id not in skipped:
        skipped.append(doctor_id)
    if not await repo.mark_offer_returned(uow.session, consultation.id, doctor_id, skipped):
        return False
    _announce(ctx, uow, consultation, rules.Status.QUEUED.value, doctors=[doctor_id], reason=reason)
    return True


async def cancel_consultation(
    ctx: ServiceContext, principal: Principal, consultation_id: int, reason: str | None = None
) -> ConsultationView:
    """The patient cancels their queued, offered or active consultation (nothing is counted, R11.3).

    Raises:
        NotFound: not the caller's consultation.
        Conflict: already completed or cancelled.
    """
    now = ctx.clock.now()
    text = rules.validate_cancel_reason(reason) if reason else "cancelled by the patient"
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.get_consultation(session, consultation_id, for_update=True)
        if consultation is None or consultation.insured_person_id != principal.subject_id:
            raise NotFound("no such consultation")
        rules.cancel(_state(consultation))  # raises Conflict when completed or cancelled
        doctors = [consultation.doctor_id, consultation.offered_to_id]
        if not await repo.mark_cancelled(session, consultation_id, principal.subject_id, now, text):
            raise Conflict("the consultation changed meanwhile; reload", code="consultation_changed")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.cancel",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=principal.subject_id,
        )
        fresh = await repo.refresh_consultation(session, consultation_id)
        assert fresh is not None
        _announce(ctx, uow, fresh, rules.Status.CANCELLED.value, doctors=doctors, reason="cancelled_by_patient")
        await uow.commit()
        view = (await _views(ctx, session, [fresh], principal, now))[0]
    log.info("consultation %s cancelled by the patient", consultation_id)
    await _assign_soon(ctx)
    return view


# ----------------------------------------------------------------------------- completion and write-back


async def complete_consultation(
    ctx: ServiceContext,
    principal: Principal,
    consultation_id: int,
    *,
    notes: str,
    icd10_code: str,
    outcome: str,
    referral_specialty: str | None = None,
    referral_services: Sequence[str] = (),
) -> ConsultationView:
    """The assigned doctor closes the consultation; it is written back to the coverage records (R11.3).

    In one transaction: the consultation joins the open insured event of the same complaints or
    opens a new one; a telemedicine service used is recorded (unique per consultation, so never
    counted twice); a referral opens a dispatcher request for a ``dispatcher`` person (or a
    ``registry`` person whose attachment is not in force, R7.4) or points a ``registry`` person to
    their attached clinic (R6.2); the decision and its reasons go to the audit trail.

    Raises:
        NotFound: the consultation is not the caller's (never offered to or held by them).
        Conflict: ``already_completed``, or not active (``invalid_transition``).
        RuleViolation: ``invalid_icd10`` (422) for a code not in the ICD-10 list.
        InvalidInput: missing notes, referral fields on a non-referral outcome, and the like.
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    today = coverage_day(now)
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.get_consultation(session, consultation_id, for_update=True)
        if consultation is None or doctor_id not in (consultation.doctor_id, consultation.offered_to_id):
            raise NotFound("no such consultation")
        if consultation.status == rules.Status.COMPLETED:
            raise Conflict(
                f"consultation {consultation_id} is already completed",
                code="already_completed",
                details={"consultation_id": consultation_id},
            )
        rules.complete(_state(consultation), doctor_id)  # active and held by this doctor, or Conflict
        completion = _validated_completion(notes, icd10_code, outcome, referral_specialty, referral_services)
        person = await repo.lock_insured_person(session, consultation.insured_person_id)
        assert person is not None
        records = await load_coverage_records(session, person)
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, COMPONENT, today)

        event, event_reason = await _insured_event_txn(
            session, consultation, person, coverage.reasons, coverage.allowed, doctor_id, now
        )
        service = ServiceUsed(
            insured_person_id=person.id,
            insured_event_id=event.id,
            component=COMPONENT,
            service=SERVICE_NAME,
            consultation_id=consultation.id,
            used_on=today,
            quantity=1,
            created_at=now,
        )
        session.add(service)

        route_kind: str | None = None
        route_reasons: tuple[Reason, ...] = ()
        dispatch: DispatchRequest | None = None
        if completion.outcome is rules.Outcome.REFERRAL:
            route = await _referral_route_txn(session, person, completion.referral_specialty, today)
            route_kind, route_reasons = route.kind.value, route.reasons
            if route.kind is rules.RouteKind.DISPATCHER_REQUEST:
                dispatch = DispatchRequest(
                    insured_person_id=person.id,
                    insured_event_id=event.id,
                    consultation_id=consultation.id,
                    source="consultation_referral",
                    complaints=consultation.complaints,
                    requested_specialty=completion.referral_specialty,
                    requested_services=list(completion.referral_services),
                    status="open",
                    created_at=now,
                )
                session.add(dispatch)
        await session.flush()

        outcome_reason = _outcome_reason(completion, route_kind)
        reasons = [*coverage.reasons, event_reason, *route_reasons, outcome_reason]
        session.add(
            CoverageDecisionRecord(
                insured_person_id=person.id,
                kind="telemedicine_consultation",
                allowed=coverage.allowed,
                reasons=[r.as_dict() for r in reasons],
                subject={
                    "consultation_id": consultation.id,
                    "insured_event_id": event.id,
                    "service_used_id": service.id,
                    "icd10_code": completion.icd10_code,
                    "outcome": completion.outcome.value,
                    "referral_route": route_kind,
                    "dispatch_request_id": dispatch.id if dispatch else None,
                },
                actor_type="staff",
                actor_id=doctor_id,
                created_at=now,
            )
        )
        completed = await repo.mark_completed(
            session,
            consultation.id,
            doctor_id,
            {
                "completed_at": now,
                "notes": completion.notes,
                "icd10_code": completion.icd10_code,
                "outcome": completion.outcome.value,
                "referral_specialty": completion.referral_specialty,
                "referral_services": list(completion.referral_services),
                "referral_route": route_kind,
                "dispatch_request_id": dispatch.id if dispatch else None,
                "insured_event_id": event.id,
            },
        )
        if not completed:
            raise Conflict("the consultation changed meanwhile; reload", code="consultation_changed")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.complete",
            resource_type=RESOURCE,
            resource_id=consultation.id,
            patient_id=person.id,
        )
        fresh = await repo.refresh_consultation(session, consultation.id)
        assert fresh is not None
        _announce(ctx, uow, fresh, rules.Status.COMPLETED.value, doctors=[doctor_id])
        if dispatch is not None:
            _publish(
                ctx,
                uow,
                dispatch_queue_channel(),
                {"type": EVENT_DISPATCH_QUEUE_CHANGED, "dispatch_request_id": dispatch.id, "source": dispatch.source},
            )
        event_id = event.id
        await uow.commit()
        view = (await _views(ctx, session, [fresh], principal, now))[0]
    log.info(
        "consultation %s completed: %s, event %s, route %s",
        consultation_id,
        completion.outcome.value,
        event_id,
        route_kind,
    )
    await _assign_soon(ctx)
    return view


def _validated_completion(
    notes: str, icd10_code: str, outcome: str, referral_specialty: str | None, referral_services: Sequence[str]
) -> rules.Completion:
    try:
        return rules.validate_completion(
            rules.Completion(
                notes=notes,
                icd10_code=icd10_code,
                outcome=rules.parse_outcome(outcome),
                referral_specialty=referral_specialty,
                referral_services=tuple(referral_services),
            )
        )
    except InvalidInput as exc:
        if exc.code == ERR_INVALID_ICD10:
            # A code outside the maintained ICD-10 list is refused by rule, as 422 (the brief's contract).
            raise RuleViolation(exc.message, code=ERR_INVALID_ICD10, details=exc.details) from exc
        raise


async def _insured_event_txn(
    session: AsyncSession,
    consultation: Consultation,
    person: InsuredPerson,
    coverage_reasons: Sequence[Reason],
    covered: bool,
    doctor_id: int,
    now: datetime,
) -> tuple[InsuredEvent, Reason]:
    """The open insured event of the same complaints, or a new one (R3.1, R11.3)."""
    open_events = await repo.open_insured_events(session, person.id)
    by_id = {e.id: e for e in open_events}
    matched = rules.match_open_event(
        [to_open_event(e) for e in open_events], consultation.complaints, consultation.specialty, now
    )
    reason = rules.insured_event_reason(matched)
    if matched is not None:
        return by_id[matched.id], reason
    event = InsuredEvent(
        insured_person_id=person.id,
        component=COMPONENT,
        complaints=consultation.complaints,
        status="open",
        source="consultation",
        covered=covered,
        reasons=[r.as_dict() for r in (*coverage_reasons, reason)],
        opened_at=now,
        opened_by_staff_id=doctor_id,
    )
    session.add(event)
    await session.flush()
    return event, reason


async def _referral_route_txn(
    session: AsyncSession, person: InsuredPerson, referral_specialty: str | None, today: date
) -> rules.ReferralRoute:
    """Where a referral sends the person: the console (R2/R3) or the attached clinic (R6.2, R7.4)."""
    effective = False
    if person.service_type == rules.SERVICE_TYPE_REGISTRY and person.attached_clinic_id is not None:
        letters = [
            to_attachment_letter_facts(letter) for letter in await repo.attachment_letters_of(session, person.id)
        ]
        effective = attachment_effective(letters, today, clinic_id=person.attached_clinic_id).allowed
    return rules.referral_route(
        person.service_type,
        person.attached_clinic_id,
        attachment_effective=effective,
        referral_specialty=referral_specialty,
    )


def _outcome_reason(completion: rules.Completion, route_kind: str | None) -> Reason:
    facts = {"outcome": completion.outcome.value, "icd10_code": completion.icd10_code, "referral_route": route_kind}
    if completion.outcome is rules.Outcome.EMERGENCY:
        return Reason("R10.1", "emergency: the patient is told to call an ambulance (103/112)", facts)
    return Reason(
        "R11.3", f"consultation completed with {completion.outcome.value}, counted as a telemedicine service", facts
    )


# ----------------------------------------------------------------------------- doctor's queue


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
        views = await _views(ctx, session, rows, principal, now)
        waiting = await repo.waiting_counts(session, specialties)
        max_active = doctor.max_active_consultations if doctor else DEFAULT_MAX_ACTIVE
    return DoctorQueueView(
        on_duty_specialties=on_duty_for,
        duty_ends_at=roster_rules.duty_ends_at(shifts, doctor_id, now),
        max_active=max_active,
        offers=[v for v in views if v.status == rules.Status.OFFERED],
        active=[v for v in views if v.status == rules.Status.ACTIVE],
        waiting={s: waiting.get(s, 0) for s in specialties},
    )


# ----------------------------------------------------------------------------- assignment


async def _assign_soon(ctx: ServiceContext) -> None:
    """Run a cycle right after a change, so nobody waits for the background loop; errors are only logged."""
    try:
        await run_assignment_cycle(ctx)
    except Exception:
        log.exception("assignment cycle after a change failed; the background loop will retry")


async def run_assignment_cycle(ctx: ServiceContext) -> int:
    """One pass of the queue: return lapsed offers, hand over at shift end, offer queued consultations.

    Safe to run concurrently in several processes: each change is a conditional UPDATE, and
    offers to one doctor are serialised on the doctor's row, so nothing is offered twice and no
    doctor goes over their limit. Rows are first judged from one read; a transaction is opened
    only for those that need a change, and everything is checked again inside it.

    Returns:
        How many offers were made.
    """
    now = ctx.clock.now()
    shifts = await _shifts_around(ctx, now)
    await _return_and_hand_over(ctx, now, shifts)
    async with ctx.uow() as uow:
        queued = [
            (c.id, c.specialty, list(c.skipped_doctor_ids or []))
            for c in await repo.queued_consultations(uow.session, limit=MAX_QUEUE_PER_CYCLE)
        ]
        on_duty_ids = {d for c in queued for d in roster_rules.on_duty(shifts, now, c[1])}
        accounts = await repo.doctors(uow.session, on_duty_ids)
        max_active = {doctor_id: account.max_active_consultations for doctor_id, account in accounts.items()}
        loads = await repo.doctor_loads(uow.session, max_active)
    offers = 0
    for consultation_id, specialty, skipped in queued:
        candidates = _candidates(shifts, now, specialty, max_active, loads)
        if _pick(candidates, specialty, skipped, now, _min_remaining(ctx)) is None:
            continue  # nobody can take it now: no transaction needed
        doctor_id = await _offer_one(ctx, consultation_id, shifts, now)
        if doctor_id is not None:
            loads[doctor_id] = loads.get(doctor_id, 0) + 1
            offers += 1
    return offers


async def _shifts_around(ctx: ServiceContext, now: datetime) -> list[roster_rules.Shift]:
    """Shifts that matter for who is on duty now and when their duty (or last shift) ends."""
    grace = timedelta(minutes=ctx.settings.handover_grace_minutes)
    async with ctx.uow() as uow:
        stored = await roster_repo.shifts_overlapping(
            uow.session, now - grace - timedelta(days=1), now + timedelta(days=2)
        )
        return [to_domain_shift(s) for s in stored]


def _min_remaining(ctx: ServiceContext) -> timedelta:
    return timedelta(minutes=ctx.settings.offer_min_remaining_shift_minutes)


def _candidates(
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
    specialty: str,
    max_active: dict[int, int],
    loads: dict[int, int],
) -> list[assignment.DoctorLoad]:
    """The active doctors on duty for ``specialty`` now, with their loads and limits."""
    return [
        assignment.DoctorLoad(
            doctor_id=doctor_id,
            specialties=frozenset({specialty}),
            active_count=loads.get(doctor_id, 0),
            on_duty=True,
            shift_ends_at=roster_rules.duty_ends_at(shifts, doctor_id, now, specialty),
            max_active=max_active[doctor_id],
        )
        for doctor_id in roster_rules.on_duty(shifts, now, specialty)
        if doctor_id in max_active
    ]


def _pick(
    candidates: list[assignment.DoctorLoad],
    specialty: str,
    skipped: list[int],
    now: datetime,
    min_remaining: timedelta,
) -> tuple[int, bool] | None:
    """The doctor to offer to and whether that starts a new round (rule 5), or ``None``."""

    def choose(excluded: frozenset[int]) -> int | None:
        return assignment.choose_doctor(candidates, specialty, excluded, DEFAULT_MAX_ACTIVE, now, min_remaining)

    doctor_id = choose(frozenset(skipped))
    if doctor_id is not None:
        return doctor_id, False
    if not skipped:
        return None
    # Everyone who could take it has passed: a new round, the doctor who passed last being last choice.
    doctor_id = choose(frozenset(skipped[-1:]))
    if doctor_id is None:
        doctor_id = choose(frozenset())
    return (doctor_id, True) if doctor_id is not None else None


async def _return_and_hand_over(ctx: ServiceContext, now: datetime, shifts: list[roster_rules.Shift]) -> None:
    """Rules 1-3: lapsed offers, offers to doctors leaving duty, active consultations of doctors gone."""
    async with ctx.uow() as uow:
        due = [
            c.id
            for c in await repo.consultations_in(uow.session, (rules.Status.OFFERED, rules.Status.ACTIVE))
            if _due_action(ctx, c, now, shifts) is not None
        ]
    for consultation_id in due:
        async with ctx.uow() as uow:
            row = await repo.refresh_consultation(uow.session, consultation_id)
            if row is not None and await _return_or_hand_over_txn(ctx, uow, row, now, shifts):
                await uow.commit()


def _due_action(
    ctx: ServiceContext, row: Consultation, now: datetime, shifts: Sequence[roster_rules.Shift]
) -> str | None:
    """What the cycle must do with an offered or active consultation: rules 1-3, or ``None``."""
    if row.status == rules.Status.OFFERED and row.offered_to_id is not None:
        if rules.offer_expired(_state(row), now):
            return "offer_expired"
        minutes = ctx.settings.offer_min_remaining_shift_minutes
        if roster_rules.shift_ending_within(shifts, row.offered_to_id, now, minutes, specialty=row.specialty):
            return "shift_ending"
        return None
    if row.status == rules.Status.ACTIVE and row.doctor_id is not None:
        grace = timedelta(minutes=ctx.settings.handover_grace_minutes)
        return "handover" if _handover_due(shifts, row.doctor_id, row.specialty, now, grace) else None
    return None


async def _return_or_hand_over_txn(
    ctx: ServiceContext, uow: UnitOfWork, row: Consultation, now: datetime, shifts: list[roster_rules.Shift]
) -> bool:
    """Apply ``_due_action`` to a row read inside the transaction; ``False`` when nothing (or someone else) did."""
    action = _due_action(ctx, row, now, shifts)
    if action == "offer_expired" and row.offered_to_id is not None:
        return await _return_offer_txn(ctx, uow, row, row.offered_to_id, skip=True, reason=action)
    if action == "shift_ending" and row.offered_to_id is not None:
        return await _return_offer_txn(ctx, uow, row, row.offered_to_id, skip=False, reason=action)
    if action == "handover" and row.doctor_id is not None:
        doctor_id = row.doctor_id
        rules.hand_over(_state(row), doctor_id)
        skipped = [*(d for d in row.skipped_doctor_ids or [] if d != doctor_id), doctor_id]
        if not await repo.mark_handed_over(uow.session, row.id, doctor_id, skipped):
            return False
        _announce(ctx, uow, row, rules.Status.QUEUED.value, doctors=[doctor_id], reason="handover")
        log.info("consultation %s handed over: doctor %s is off duty", row.id, doctor_id)
        return True
    return False


def _handover_due(
    shifts: Sequence[roster_rules.Shift], doctor_id: int, specialty: str, now: datetime, grace: timedelta
) -> bool:
    """Whether an active consultation must be handed over: its doctor left duty at least ``grace`` ago."""
    if doctor_id in roster_rules.on_duty(shifts, now, specialty):
        return False
    ended = [s.ends_at for s in shifts if s.doctor_id == doctor_id and s.specialty == specialty and s.ends_at <= now]
    return not ended or now - max(ended) >= grace


async def _offer_one(
    ctx: ServiceContext, consultation_id: int, shifts: list[roster_rules.Shift], now: datetime
) -> int | None:
    """Offer one queued consultation to the best doctor, judged afresh inside the transaction.

    Returns:
        The doctor it was offered to, or ``None`` when nobody can take it now (or another process moved it).
    """
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.refresh_consultation(session, consultation_id)
        if consultation is None or consultation.status != rules.Status.QUEUED:
            return None
        specialty = consultation.specialty
        accounts = await repo.doctors(session, roster_rules.on_duty(shifts, now, specialty))
        max_active = {doctor_id: account.max_active_consultations for doctor_id, account in accounts.items()}
        loads = await repo.doctor_loads(session, max_active)
        candidates = _candidates(shifts, now, specialty, max_active, loads)
        picked = _pick(candidates, specialty, list(consultation.skipped_doctor_ids or []), now, _min_remaining(ctx))
        if picked is None:
            return None
        doctor_id, new_round = picked
        # Offers to one doctor are made one at a time: lock their row, then count their load again.
        account = await repo.lock_doctor(session, doctor_id)
        load = (await repo.doctor_loads(session, [doctor_id]))[doctor_id]
        if account is None or load >= (account.max_active_consultations or DEFAULT_MAX_ACTIVE):
            return None  # another process filled this doctor meanwhile; the next cycle tries again
        deadline = assignment.offer_deadline(now, timedelta(seconds=ctx.settings.offer_timeout_seconds))
        state = _state(consultation)
        if new_round:
            state = rules.ConsultationState(id=state.id, status=state.status)
        rules.offer(state, doctor_id, now, deadline)
        if not await repo.mark_offered(
            session, consultation_id, doctor_id, deadline, skipped_doctor_ids=[] if new_round else None
        ):
            return None
        _announce(ctx, uow, consultation, rules.Status.OFFERED.value)
        _publish(
            ctx,
            uow,
            user_channel(f"staff:{doctor_id}"),
            {
                "type": EVENT_CONSULTATION_OFFERED,
                "consultation_id": consultation_id,
                "specialty": specialty,
                "channel": consultation.channel,
                "expires_at": deadline.isoformat(),
            },
        )
        await uow.commit()
    log.info("consultation %s offered to doctor %s until %s", consultation_id, doctor_id, deadline.isoformat())
    return doctor_id
