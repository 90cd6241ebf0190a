"""The coverage card (service type, clinic, program, who answers now, letters, visits) and the shared
pieces of every dispatch use case: views, the decision trail and the clinic lists (R1, R2.3, R5.3, R6, R9)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AdditionalAgreement,
    AttachmentLetter,
    Clinic,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    LetterOfGuarantee,
    Policy,
    ProgramChangeApplication,
    ScheduledPayment,
    Visit,
)
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.db.uow import UnitOfWork
from server.domain.attachment import attachment_effective
from server.domain.clinics import ClinicPurpose, allowed_clinics, check_clinic_choice
from server.domain.coverage_types import LetterFacts, LetterStatus, PolicyFacts, ServiceType
from server.domain.decisions import Reason
from server.domain.errors import DomainError, InvalidInput, NotFound, RuleViolation
from server.domain.routing import DEFAULT_DISPATCH_POINTS, DispatchPoint, card_phone, city_key, who_answers
from server.domain.service_type import recommended_service_type
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    coverage_day,
    to_attachment_letter_facts,
    to_clinic_facts,
    to_dispatch_point,
    to_insured_facts,
    to_letter_facts,
    to_policy_facts,
    to_program_facts,
)
from server.services.identity import Principal

log = logging.getLogger(__name__)

DEFAULT_CLINIC_TIMEZONE: Final = ZoneInfo("Europe/Moscow")
RESOURCE_PERSON: Final = "insured_person"
HISTORY_LIMIT: Final = 100


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class ClinicView:
    """A clinic as shown to people: where it is and how to reach its reception."""

    id: int
    name: str
    city: str
    address: str
    phone: str
    price_category: int
    has_access_system: bool


@dataclass(frozen=True, slots=True)
class ClinicOption:
    """A clinic offered for a visit or an attachment, with why it qualifies (R2.3, R5.3, R6.4)."""

    clinic: ClinicView
    needs_pass_photo: bool
    reasons: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LetterView:
    """A letter of guarantee with its validity today (R2.5, R3.3)."""

    id: int
    number: str
    insured_event_id: int
    insured_person_id: int
    clinic: ClinicView
    services: list[str]
    issued_on: date
    valid_until: date
    status: str
    validity: str
    sent_to_clinic_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VisitView:
    """Visit details told to the person (R2.6)."""

    id: int
    insured_event_id: int
    letter_id: int | None
    letter_number: str | None
    clinic: ClinicView
    doctor_name: str
    scheduled_at: datetime
    services: list[str]
    text: str


@dataclass(frozen=True, slots=True)
class EventView:
    """An insured event (a case) with its complaints and the coverage verdict (R2.1, R2.2)."""

    id: int
    insured_person_id: int
    component: str
    complaints: str
    status: str
    covered: bool
    source: str
    reasons: list[dict[str, Any]]
    opened_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RequestView:
    """An item of the dispatchers' queue."""

    id: int
    insured_person_id: int
    person_name: str
    person_city: str
    service_type: str
    source: str
    status: str
    complaints: str
    requested_specialty: str | None
    requested_services: list[str]
    insured_event_id: int | None
    consultation_id: int | None
    assigned_dispatcher_id: int | None
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class DecisionView:
    """One recorded coverage decision: what, allowed or not, why, who and when."""

    id: int
    kind: str
    allowed: bool
    reasons: list[dict[str, Any]]
    subject: dict[str, Any]
    actor_type: str
    actor_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoutingView:
    """Who answers the person (R9.1-R9.3) or whose number is on the card (R9.4)."""

    kind: str
    name: str
    city: str
    phone: str
    timezone: str
    hours: str
    local_time: datetime | None
    reasons: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TelemedicineView:
    """Telemedicine consultations in this calendar year (R11.3)."""

    year: int
    allowance_per_year: int
    used: int
    left: int


@dataclass(frozen=True, slots=True)
class AttachmentLetterView:
    """An attachment letter (R6.1, R7.1-R7.3)."""

    id: int
    number: str
    insured_person_id: int
    clinic_id: int
    payment_id: int
    generated_on: date
    send_on: date
    sent_at: datetime | None
    valid_from: date
    valid_until: date


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """Whether a registry attachment is in force today (R6.2, R7.4), and its letters."""

    effective: bool
    reasons: list[dict[str, Any]]
    letters: list[AttachmentLetterView]


@dataclass(frozen=True, slots=True)
class ScheduledPaymentView:
    """One due payment of a schedule (R4.4, R7.3)."""

    id: int
    policy_id: int
    due_on: date
    amount: Decimal
    purpose: str
    additional_agreement_id: int | None
    paid: bool


@dataclass(frozen=True, slots=True)
class ApplicationView:
    """A service type change application (R4.2) with its additional agreement and schedule (R4.3, R4.4)."""

    id: int
    insured_person_id: int
    policy_id: int
    status: str
    clinic: ClinicView
    additional_premium: Decimal
    agreement_id: int | None
    agreement_number: str | None
    agreed_on: date | None
    schedule: list[ScheduledPaymentView]
    reasons: list[dict[str, Any]]
    created_at: datetime
    application_url: str


@dataclass(frozen=True, slots=True)
class ProgramView:
    """The person's program: components (R10.1), price category (R5.3), service types (R4.1, R8)."""

    id: int
    name: str
    components: list[str]
    price_category: int
    registry_offered: bool
    recommended_service_type: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The person's policy: period and payment mode (R7.3, R10.2)."""

    id: int
    number: str
    policyholder: str
    starts_on: date
    ends_on: date
    payment_mode: str
    valid_today: bool


@dataclass(frozen=True, slots=True)
class CoverageCard:
    """Everything the insured person's card shows (and the dispatcher sees first)."""

    insured_person_id: int
    full_name: str
    city: str
    today: date
    service_type: str
    attached_clinic: ClinicView | None
    attachment: AttachmentView | None
    program: ProgramView
    policy: PolicyView
    answers_now: RoutingView
    card_phone: RoutingView
    telemedicine: TelemedicineView
    letters: list[LetterView]
    open_events: list[EventView]
    visits: list[VisitView]
    requests: list[RequestView]
    applications: list[ApplicationView]
    pass_photo_on_file: bool


@dataclass(frozen=True, slots=True)
class PersonSummary:
    """A person found by the console: enough to pick the right one on the phone."""

    id: int
    full_name: str
    birth_date: date
    city: str
    policy_number: str
    service_type: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class PersonHistory:
    """The dispatcher's view of a person: the card plus every event, request and decision."""

    card: CoverageCard
    events: list[EventView]
    requests: list[RequestView]
    decisions: list[DecisionView]


# ----------------------------------------------------------------------------- view builders


def clinic_view(clinic: Clinic) -> ClinicView:
    """A clinic row as a view."""
    return ClinicView(
        id=clinic.id,
        name=clinic.name,
        city=clinic.city,
        address=clinic.address,
        phone=clinic.phone,
        price_category=clinic.price_category,
        has_access_system=clinic.has_access_system,
    )


def letter_validity(letter: LetterFacts, today: date) -> str:
    """``active``, ``expired``, ``not_yet_valid``, ``closed`` or ``cancelled`` on ``today`` (R3.3)."""
    if letter.status is not LetterStatus.ACTIVE:
        return letter.status.value
    if letter.valid_until < today:
        return "expired"
    if letter.issued_on > today:
        return "not_yet_valid"
    return "active"


def letter_view(letter: LetterOfGuarantee, clinic: Clinic, today: date) -> LetterView:
    """A letter row as a view, with its validity on ``today``."""
    return LetterView(
        id=letter.id,
        number=letter.number,
        insured_event_id=letter.insured_event_id,
        insured_person_id=letter.insured_person_id,
        clinic=clinic_view(clinic),
        services=list(letter.services or ()),
        issued_on=letter.issued_on,
        valid_until=letter.valid_until,
        status=letter.status,
        validity=letter_validity(to_letter_facts(letter), today),
        sent_to_clinic_at=letter.sent_to_clinic_at,
        created_at=letter.created_at,
    )


def event_view(event: InsuredEvent) -> EventView:
    """An insured event row as a view."""
    return EventView(
        id=event.id,
        insured_person_id=event.insured_person_id,
        component=event.component,
        complaints=event.complaints,
        status=event.status,
        covered=event.covered,
        source=event.source,
        reasons=list(event.reasons or ()),
        opened_at=event.opened_at,
        closed_at=event.closed_at,
    )


def request_view(request: DispatchRequest, person: InsuredPerson | None) -> RequestView:
    """A queue item as a view."""
    return RequestView(
        id=request.id,
        insured_person_id=request.insured_person_id,
        person_name=person.full_name if person else "",
        person_city=person.city if person else "",
        service_type=person.service_type if person else "",
        source=request.source,
        status=request.status,
        complaints=request.complaints,
        requested_specialty=request.requested_specialty,
        requested_services=list(request.requested_services or ()),
        insured_event_id=request.insured_event_id,
        consultation_id=request.consultation_id,
        assigned_dispatcher_id=request.assigned_dispatcher_id,
        created_at=request.created_at,
        closed_at=request.closed_at,
    )


def decision_view(record: CoverageDecisionRecord) -> DecisionView:
    """A decision record as a view."""
    return DecisionView(
        id=record.id,
        kind=record.kind,
        allowed=record.allowed,
        reasons=list(record.reasons or ()),
        subject=dict(record.subject or {}),
        actor_type=record.actor_type,
        actor_id=record.actor_id,
        created_at=record.created_at,
    )


def attachment_letter_view(letter: AttachmentLetter) -> AttachmentLetterView:
    """An attachment letter row as a view."""
    return AttachmentLetterView(
        id=letter.id,
        number=letter.number,
        insured_person_id=letter.insured_person_id,
        clinic_id=letter.clinic_id,
        payment_id=letter.payment_id,
        generated_on=letter.generated_on,
        send_on=letter.send_on,
        sent_at=letter.sent_at,
        valid_from=letter.valid_from,
        valid_until=letter.valid_until,
    )


def scheduled_view(row: ScheduledPayment, paid: bool) -> ScheduledPaymentView:
    """A scheduled payment row as a view."""
    return ScheduledPaymentView(
        id=row.id,
        policy_id=row.policy_id,
        due_on=row.due_on,
        amount=row.amount,
        purpose=row.purpose,
        additional_agreement_id=row.additional_agreement_id,
        paid=paid,
    )


def application_url(application_id: int) -> str:
    """Where the printable R4.2 application is served."""
    return f"/api/me/service-type-change/{application_id}/application.html"


def application_view(
    application: ProgramChangeApplication,
    clinic: Clinic,
    agreement: AdditionalAgreement | None,
    schedule: Sequence[ScheduledPayment],
    paid: set[int],
) -> ApplicationView:
    """An application with its agreement and schedule as a view."""
    return ApplicationView(
        id=application.id,
        insured_person_id=application.insured_person_id,
        policy_id=application.policy_id,
        status=application.status,
        clinic=clinic_view(clinic),
        additional_premium=application.additional_premium,
        agreement_id=agreement.id if agreement else None,
        agreement_number=agreement.number if agreement else None,
        agreed_on=agreement.agreed_on if agreement else None,
        schedule=[scheduled_view(row, row.id in paid) for row in schedule],
        reasons=list(application.reasons or ()),
        created_at=application.created_at,
        application_url=application_url(application.id),
    )


def routing_view(point: DispatchPoint, reasons: Iterable[Reason], local_time: datetime | None) -> RoutingView:
    """A routing decision as a view."""
    return RoutingView(
        kind=point.kind.value,
        name=point.name,
        city=point.city,
        phone=point.phone,
        timezone=point.timezone,
        hours=point.describe(),
        local_time=local_time,
        reasons=[r.as_dict() for r in reasons],
    )


def reasons_json(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    """Reasons as stored and sent (JSON-ready; dates already strings in facts)."""
    return [r.as_dict() for r in reasons]


# ----------------------------------------------------------------------------- shared helpers


def today_of(ctx: ServiceContext) -> date:
    """The insurer's calendar day now (policies are dated in Moscow time)."""
    return coverage_day(ctx.clock.now())


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


def publish_after_commit(ctx: ServiceContext, uow: UnitOfWork, channel: str, message: dict[str, Any]) -> None:
    """Publish on the bus once the transaction commits; a bus failure is logged (the database is the truth)."""

    async def hook() -> None:
        try:
            await ctx.bus.publish(channel, message)
        except Exception:
            log.warning("could not publish %s on %s; clients catch up from the database", message.get("type"), channel)

    uow.after_commit(hook)


def record_decision_txn(
    session: AsyncSession,
    *,
    person_id: int | None,
    kind: str,
    allowed: bool,
    reasons: Iterable[Reason] | Iterable[dict[str, Any]],
    subject: dict[str, Any],
    principal: Principal | None,
    now: datetime,
) -> CoverageDecisionRecord:
    """Add a coverage decision to the trail (who, when, why) inside the caller's transaction.

    Args:
        session: The open session.
        person_id: The insured person the decision is about.
        kind: What was decided (``letter_issue``, ``service_type_change``, ...).
        allowed: The verdict.
        reasons: The rule reasons behind it.
        subject: Ids and values the decision was about (JSON-ready).
        principal: Who decided; ``None`` for the system (demo seed, background work).
        now: When.

    Returns:
        The record (added, not yet flushed).
    """
    stored = [r.as_dict() if isinstance(r, Reason) else dict(r) for r in reasons]
    record = CoverageDecisionRecord(
        insured_person_id=person_id,
        kind=kind,
        allowed=allowed,
        reasons=stored,
        subject=subject,
        actor_type=principal.subject_type if principal else "system",
        actor_id=principal.subject_id if principal else None,
        created_at=now,
    )
    session.add(record)
    return record


async def record_refusal(
    ctx: ServiceContext,
    principal: Principal,
    *,
    person_id: int | None,
    kind: str,
    error: DomainError,
    subject: dict[str, Any],
) -> None:
    """Record a refused coverage decision in its own transaction (the refused action wrote nothing).

    Args:
        ctx: The service context.
        principal: Who asked.
        person_id: The person concerned.
        kind: What was refused.
        error: The rule violation with its reasons.
        subject: What was asked (JSON-ready).
    """
    async with ctx.uow() as uow:
        record_decision_txn(
            uow.session,
            person_id=person_id,
            kind=kind,
            allowed=False,
            reasons=error.reasons,
            subject=subject,
            principal=principal,
            now=ctx.clock.now(),
        )
        await uow.commit()


def rule_violation(
    rule: str, message: str, facts: dict[str, Any] | None = None, *, code: str | None = None
) -> RuleViolation:
    """A 422 refusal citing one rule."""
    reason = Reason(rule, message, facts or {})
    return RuleViolation(message, code=code, reasons=(reason,))


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


# ----------------------------------------------------------------------------- the coverage card


async def _letters_txn(session: AsyncSession, person_id: int, today: date) -> list[LetterView]:
    letters = await repo.letters_of_person(session, person_id, limit=HISTORY_LIMIT)
    clinics = await coverage_repo.clinics_by_ids(session, (letter.clinic_id for letter in letters))
    return [letter_view(letter, clinics[letter.clinic_id], today) for letter in letters]


async def visits_txn(session: AsyncSession, person_id: int, points: Sequence[DispatchPoint]) -> list[VisitView]:
    """A person's visits with everything R2.6 asks to tell them, in the clinic's local time."""
    rows = await repo.visits_of_person(session, person_id)
    clinics = await coverage_repo.clinics_by_ids(session, (visit.clinic_id for visit, _ in rows))
    return [visit_view(visit, letter, clinics[visit.clinic_id], points) for visit, letter in rows]


def visit_view(
    visit: Visit, letter: LetterOfGuarantee | None, clinic: Clinic, points: Sequence[DispatchPoint]
) -> VisitView:
    """A visit row as the notice the person is told (R2.6)."""
    from server.domain.visits import VisitNotice

    local = visit.scheduled_at.astimezone(clinic_timezone(clinic.city, points))
    notice = VisitNotice(
        clinic_name=clinic.name,
        clinic_address=clinic.address,
        doctor_name=visit.doctor_name,
        scheduled_at=local,
        services=tuple(visit.services or ()),
        letter_number=letter.number if letter else "",
    )
    return VisitView(
        id=visit.id,
        insured_event_id=visit.insured_event_id,
        letter_id=visit.letter_id,
        letter_number=letter.number if letter else None,
        clinic=clinic_view(clinic),
        doctor_name=visit.doctor_name,
        scheduled_at=local,
        services=list(visit.services or ()),
        text=notice.text(),
    )


async def applications_txn(session: AsyncSession, person_id: int) -> list[ApplicationView]:
    """A person's service type change applications with agreements and schedules."""
    applications = await repo.applications_of_person(session, person_id)
    if not applications:
        return []
    agreements = await repo.agreements_of_applications(session, (a.id for a in applications))
    schedules = await repo.agreement_schedules(session, (a.id for a in agreements.values()))
    paid = await repo.paid_scheduled_ids(session, (row.id for rows in schedules.values() for row in rows))
    clinics = await coverage_repo.clinics_by_ids(session, (a.clinic_id for a in applications))
    views = []
    for application in applications:
        agreement = agreements.get(application.id)
        schedule = schedules.get(agreement.id, []) if agreement else []
        views.append(application_view(application, clinics[application.clinic_id], agreement, schedule, paid))
    return views


async def card_txn(session: AsyncSession, person: InsuredPerson, now: datetime) -> CoverageCard:
    """Build the coverage card of ``person`` inside an open transaction.

    Args:
        session: The open session.
        person: The insured person.
        now: The current moment (aware UTC).

    Returns:
        The card.
    """
    today = coverage_day(now)
    policy = await coverage_repo.get_policy(session, person.policy_id)
    assert policy is not None  # a foreign key guarantees it
    program = await coverage_repo.get_program(session, policy.program_id)
    assert program is not None
    program_facts = to_program_facts(program)
    holder = await coverage_repo.policyholder_name(session, policy.policyholder_id)
    points = await points_txn(session)

    attached: ClinicView | None = None
    attachment: AttachmentView | None = None
    if person.attached_clinic_id is not None:
        clinic = await coverage_repo.get_clinic(session, person.attached_clinic_id)
        attached = clinic_view(clinic) if clinic else None
    if person.service_type == ServiceType.REGISTRY.value:
        rows = await repo.attachment_letters_of_person(session, person.id)
        decision = attachment_effective(
            [to_attachment_letter_facts(row) for row in rows], today, clinic_id=person.attached_clinic_id
        )
        attachment = AttachmentView(
            effective=decision.allowed,
            reasons=reasons_json(decision.reasons),
            letters=[attachment_letter_view(row) for row in rows],
        )

    routing = who_answers(person.city, points, now)
    printed = card_phone(person.city, points)
    used = await coverage_repo.telemedicine_used_between(
        session, person.id, date(today.year, 1, 1), date(today.year, 12, 31)
    )
    allowance = program.telemedicine_allowance_per_year
    recommended, why = recommended_service_type(program_facts)
    requests = [r for r in await repo.requests_of_person(session, person.id) if r.status in ("open", "in_progress")]
    return CoverageCard(
        insured_person_id=person.id,
        full_name=person.full_name,
        city=person.city,
        today=today,
        service_type=person.service_type,
        attached_clinic=attached,
        attachment=attachment,
        program=ProgramView(
            id=program.id,
            name=program.name,
            components=sorted(program_facts.components),
            price_category=program.price_category,
            registry_offered=program.registry_offered,
            recommended_service_type=recommended.value,
            recommendation=why.message,
        ),
        policy=PolicyView(
            id=policy.id,
            number=policy.number,
            policyholder=holder,
            starts_on=policy.starts_on,
            ends_on=policy.ends_on,
            payment_mode=policy.payment_mode,
            valid_today=policy.starts_on <= today <= policy.ends_on,
        ),
        answers_now=routing_view(routing.point, routing.reasons, routing.local_time),
        card_phone=routing_view(printed.point, printed.reasons, None),
        telemedicine=TelemedicineView(
            year=today.year, allowance_per_year=allowance, used=used, left=max(0, allowance - used)
        ),
        letters=await _letters_txn(session, person.id, today),
        open_events=[event_view(e) for e in await repo.events_of_person(session, person.id, statuses=["open"])],
        visits=await visits_txn(session, person.id, points),
        requests=[request_view(r, person) for r in requests],
        applications=await applications_txn(session, person.id),
        pass_photo_on_file=person.has_pass_photo,
    )


async def my_coverage(ctx: ServiceContext, principal: Principal) -> CoverageCard:
    """The insured person's own coverage card (the read is audited, checklist D1).

    Args:
        ctx: The service context.
        principal: The insured person.

    Returns:
        The card.

    Raises:
        NotFound: the person no longer exists.
    """
    async with ctx.uow() as uow:
        person = await require_person_txn(uow.session, principal.subject_id)
        card = await card_txn(uow.session, person, ctx.clock.now())
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="coverage.read",
            resource_type=RESOURCE_PERSON,
            resource_id=person.id,
            patient_id=person.id,
        )
        await uow.commit()
    return card


async def person_history(ctx: ServiceContext, principal: Principal, person_id: int) -> PersonHistory:
    """A person's card and full history for the dispatcher (the read is audited, checklist D1).

    Args:
        ctx: The service context.
        principal: The dispatcher.
        person_id: The insured person.

    Returns:
        The card, every insured event, queue item and coverage decision.

    Raises:
        NotFound: no such person.
    """
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, person_id)
        card = await card_txn(session, person, ctx.clock.now())
        events = await repo.events_of_person(session, person.id, limit=HISTORY_LIMIT)
        requests = await repo.requests_of_person(session, person.id, limit=HISTORY_LIMIT)
        decisions = await repo.decisions_of_person(session, person.id, limit=HISTORY_LIMIT)
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="coverage.read",
            resource_type=RESOURCE_PERSON,
            resource_id=person.id,
            patient_id=person.id,
        )
        await uow.commit()
    return PersonHistory(
        card=card,
        events=[event_view(e) for e in events],
        requests=[request_view(r, person) for r in requests],
        decisions=[decision_view(d) for d in decisions],
    )


async def clinic_options(
    ctx: ServiceContext, person_id: int, purpose: str, *, city: str | None = None
) -> list[ClinicOption]:
    """The clinics a person may be sent to (R2.3) or attached to (R5.3), each noting R6.4 passes.

    Args:
        ctx: The service context.
        person_id: The insured person.
        purpose: ``visit`` or ``attachment``.
        city: Only clinics of this city.

    Returns:
        Only allowed clinics, by city and name.

    Raises:
        NotFound: no such person.
    """
    chosen = ClinicPurpose(purpose)
    async with ctx.uow() as uow:
        found = await coverage_repo.person_policy_program(uow.session, person_id)
        if found is None:
            raise NotFound("no such insured person")
        person, _policy, program = found
        clinics = await coverage_repo.program_clinics(uow.session, program.id)
        program_facts = to_program_facts(program, (c.id for c in clinics))
        insured = to_insured_facts(person)
        by_id = {c.id: c for c in clinics}
        facts = [to_clinic_facts(c) for c in clinics if city is None or city_key(c.city) == city_key(city)]
        target = ServiceType.REGISTRY if chosen is ClinicPurpose.ATTACHMENT else None
        options = []
        for clinic in allowed_clinics(program_facts, facts, target):
            choice = check_clinic_choice(program_facts, clinic, chosen, insured)
            options.append(
                ClinicOption(
                    clinic=clinic_view(by_id[clinic.id]),
                    needs_pass_photo=choice.needs_pass_photo,
                    reasons=reasons_json(choice.reasons),
                )
            )
        return options


async def policy_facts_txn(session: AsyncSession, policy: Policy) -> PolicyFacts:
    """The policy's facts with its premium schedule (R7.3)."""
    return to_policy_facts(policy, await coverage_repo.premium_schedule(session, policy.id))


async def find_persons(
    ctx: ServiceContext, *, policy_number: str | None = None, name: str | None = None
) -> list[PersonSummary]:
    """Find insured persons by policy number and/or name, for a dispatcher taking a call.

    Args:
        ctx: The service context.
        policy_number: Exact policy number.
        name: Part of the full name (case-insensitive).

    Returns:
        At most 20 persons, by name.

    Raises:
        InvalidInput: neither criterion given.
    """
    if not policy_number and not name:
        raise InvalidInput("give a policy number or a name", code="search_criteria_required")
    async with ctx.uow() as uow:
        rows = await coverage_repo.find_persons(uow.session, policy_number=policy_number, name=name)
        return [
            PersonSummary(
                id=person.id,
                full_name=person.full_name,
                birth_date=person.birth_date,
                city=person.city,
                policy_number=policy.number,
                service_type=person.service_type,
                is_active=person.is_active,
            )
            for person, policy in rows
        ]
