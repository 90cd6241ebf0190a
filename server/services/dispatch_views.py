"""The views every dispatch use case returns (clinics, letters, visits, events, requests, decisions, payments)
and the functions that build them from stored rows; no I/O here (R2.6 notices, R2.5 letter validity)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import WithJsonSchema

from server.db.models import (
    AdditionalAgreement,
    AttachmentLetter,
    Clinic,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    LetterOfGuarantee,
    ProgramChangeApplication,
    ScheduledPayment,
    Visit,
)
from server.domain.coverage_types import LetterFacts, LetterStatus, PolicyFacts
from server.domain.decisions import Reason
from server.domain.letters import letter_state
from server.domain.routing import DispatchPoint
from server.services.coverage_facts import (
    to_letter_facts,
)
from server.services.dispatch_common import clinic_timezone

# ----------------------------------------------------------------------------- views

REASON_SCHEMA: Final[dict[str, Any]] = {
    "title": "Reason",
    "description": "One reason of a decision: the rule id, a sentence, and the facts it used.",
    "type": "object",
    "properties": {
        "rule": {"type": "string"},
        "message": {"type": "string"},
        "facts": {"type": "object", "additionalProperties": True},
    },
    "required": ["rule", "message"],
    "additionalProperties": False,
}
# A reason as the views carry it (``Reason.as_dict()``), with its schema for the OpenAPI document.
ReasonJson = Annotated[dict[str, Any], WithJsonSchema(REASON_SCHEMA)]


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
    reasons: list[ReasonJson]


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
    validity_reason: ReasonJson | None = None


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
    reasons: list[ReasonJson]
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
    reasons: list[ReasonJson]
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
    reasons: list[ReasonJson]


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
    reasons: list[ReasonJson]
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
    reasons: list[ReasonJson]
    created_at: datetime
    application_url: str


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


def letter_view(
    letter: LetterOfGuarantee, clinic: Clinic, today: date, policy: PolicyFacts | None = None
) -> LetterView:
    """A letter row as a view, with its validity on ``today``; with the policy, why it ended (R3.3, R10.3)."""
    validity = letter_validity(to_letter_facts(letter), today)
    why: dict[str, Any] | None = None
    if policy is not None:
        state, reason = letter_state(to_letter_facts(letter), policy, today)
        validity, why = state.value, reason.as_dict()
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
        validity=validity,
        sent_to_clinic_at=letter.sent_to_clinic_at,
        created_at=letter.created_at,
        validity_reason=why,
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
