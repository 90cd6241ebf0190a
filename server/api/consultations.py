"""Consultation routes: request (insured), read, cancel, accept/decline/complete (doctor), the doctor's queue (R11)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import Field, field_validator

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int, read_json
from server.background import periodic_job_ctx
from server.domain.roster import SPECIALTY_CODES
from server.keys import context_key
from server.services import consultations as service
from server.services.identity import ROLE_ADMIN, ROLE_DOCTOR, ROLE_INSURED

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


class ConsultationCreate(ApiModel):
    """A request for a consultation (R11.1)."""

    channel: Literal["text", "audio", "video"]
    specialty: str = Field(min_length=1, max_length=40, description="general_practice or another specialty")
    complaints: str = Field(min_length=1, max_length=2000)

    @field_validator("specialty")
    @classmethod
    def _known_specialty(cls, value: str) -> str:
        if value not in SPECIALTY_CODES:
            raise ValueError(f"unknown specialty; one of: {', '.join(sorted(SPECIALTY_CODES))}")
        return value


class CancelBody(ApiModel):
    reason: str | None = Field(default=None, max_length=200)


class CompleteBody(ApiModel):
    """The doctor's closing record (R11.3)."""

    notes: str = Field(min_length=1, max_length=10_000)
    icd10_code: str = Field(min_length=1, max_length=16)
    outcome: Literal["advice", "referral", "emergency"]
    referral_specialty: str | None = Field(default=None, max_length=40)
    referral_services: list[str] = Field(default_factory=list, max_length=20)


class ClinicPublic(ApiModel):
    id: int
    name: str
    address: str
    phone: str


class SummaryPublic(ApiModel):
    """What the patient is told after completion."""

    outcome: str
    icd10_code: str
    icd10_description: str
    notes: str
    referral_specialty: str | None
    referral_services: list[str]
    referral_route: str | None
    dispatch_request_id: int | None
    clinic: ClinicPublic | None
    emergency_phones: list[str]
    instructions: str


class ConsultationPublic(ApiModel):
    """A consultation; queue fields are set while it waits, the summary once it is completed."""

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
    queue_position: int | None
    estimated_wait_minutes: int | None
    doctors_on_duty: int | None
    doctor_on_duty: bool | None
    notice: str | None
    summary: SummaryPublic | None


class AllowancePublic(ApiModel):
    """Telemedicine consultations left this year (R11.3)."""

    year: int
    allowance_per_year: int
    used: int
    open: int
    left: int


class DoctorQueuePublic(ApiModel):
    """A doctor's live queue."""

    on_duty_specialties: list[str]
    duty_ends_at: datetime | None
    max_active: int
    offers: list[ConsultationPublic]
    active: list[ConsultationPublic]
    waiting: dict[str, int]


def _public(view: service.ConsultationView) -> ConsultationPublic:
    summary = None
    if view.summary is not None:
        s = view.summary
        summary = SummaryPublic(
            outcome=s.outcome,
            icd10_code=s.icd10_code,
            icd10_description=s.icd10_description,
            notes=s.notes,
            referral_specialty=s.referral_specialty,
            referral_services=s.referral_services,
            referral_route=s.referral_route,
            dispatch_request_id=s.dispatch_request_id,
            clinic=ClinicPublic(id=s.clinic.id, name=s.clinic.name, address=s.clinic.address, phone=s.clinic.phone)
            if s.clinic
            else None,
            emergency_phones=s.emergency_phones,
            instructions=s.instructions,
        )
    return ConsultationPublic(
        id=view.id,
        status=view.status,
        channel=view.channel,
        specialty=view.specialty,
        complaints=view.complaints,
        requested_at=view.requested_at,
        patient_id=view.patient_id,
        patient_name=view.patient_name,
        doctor_id=view.doctor_id,
        doctor_name=view.doctor_name,
        offered_to_id=view.offered_to_id,
        offer_expires_at=view.offer_expires_at,
        accepted_at=view.accepted_at,
        completed_at=view.completed_at,
        cancelled_at=view.cancelled_at,
        cancel_reason=view.cancel_reason,
        insured_event_id=view.insured_event_id,
        queue_position=view.queue_position,
        estimated_wait_minutes=view.estimated_wait_minutes,
        doctors_on_duty=view.doctors_on_duty,
        doctor_on_duty=None if view.doctors_on_duty is None else view.doctors_on_duty > 0,
        notice=view.notice,
        summary=summary,
    )


@endpoint(
    routes,
    "POST",
    "/api/consultations",
    summary="Request a consultation: coverage (R10.2) and yearly allowance (R11.3) are checked, then it is queued",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    body=ConsultationCreate,
    response=ConsultationPublic,
    status=201,
    errors=[409],
)
async def request_consultation(request: web.Request, body: ConsultationCreate) -> ConsultationPublic:
    """The answer carries the queue position and estimated wait, or says nobody is on duty (R11.2)."""
    view = await service.request_consultation(
        request.app[context_key],
        current_principal(request),
        channel=body.channel,
        specialty=body.specialty,
        complaints=body.complaints,
    )
    return _public(view)


@endpoint(
    routes,
    "GET",
    "/api/consultations",
    summary="My consultations: a patient's own; a doctor's offers, active and recently completed",
    tags=["consultations"],
    roles=(ROLE_INSURED, ROLE_DOCTOR),
    response=list[ConsultationPublic],
)
async def list_consultations(request: web.Request) -> list[ConsultationPublic]:
    """Newest first."""
    views = await service.list_consultations(request.app[context_key], current_principal(request))
    return [_public(v) for v in views]


@endpoint(
    routes,
    "GET",
    "/api/consultations/allowance",
    summary="Telemedicine consultations left this year (R11.3)",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    response=AllowancePublic,
)
async def allowance(request: web.Request) -> AllowancePublic:
    """Allowance of the program minus services used and consultations still open."""
    view = await service.telemedicine_allowance(request.app[context_key], current_principal(request).subject_id)
    return AllowancePublic(
        year=view.year, allowance_per_year=view.allowance_per_year, used=view.used, open=view.open, left=view.left
    )


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}",
    summary="One consultation (its patient, the doctor it is offered to or held by, or an admin)",
    tags=["consultations"],
    roles=(ROLE_INSURED, ROLE_DOCTOR, ROLE_ADMIN),
    response=ConsultationPublic,
    errors=[404],
)
async def get_consultation(request: web.Request) -> ConsultationPublic:
    """Anyone else gets 404: the consultation is not revealed (checklist C1)."""
    view = await service.get_consultation(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )
    return _public(view)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/cancel",
    summary="Cancel my consultation while it is queued, offered or active",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    response=ConsultationPublic,
    errors=[404, 409],
)
async def cancel(request: web.Request) -> ConsultationPublic:
    """A body with a reason is optional."""
    reason = None
    if request.can_read_body:
        body = CancelBody.model_validate(await read_json(request))
        reason = body.reason
    view = await service.cancel_consultation(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id"), reason
    )
    return _public(view)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/accept",
    summary="Accept a consultation offered to me (before the offer's deadline)",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=ConsultationPublic,
    errors=[404, 409],
)
async def accept(request: web.Request) -> ConsultationPublic:
    """After the deadline the offer has gone to the next doctor: 409 offer_expired."""
    view = await service.accept_offer(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )
    return _public(view)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/decline",
    summary="Pass on a consultation offered to me; it goes to the next doctor",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=ConsultationPublic,
    errors=[404, 409],
)
async def decline(request: web.Request) -> ConsultationPublic:
    """The doctor is skipped for this consultation."""
    view = await service.decline_offer(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )
    return _public(view)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/complete",
    summary=(
        "Complete my active consultation with notes, an ICD-10 code and an outcome; "
        "it is written back to the coverage records (R11.3)"
    ),
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    body=CompleteBody,
    response=ConsultationPublic,
    errors=[404, 409],
)
async def complete(request: web.Request, body: CompleteBody) -> ConsultationPublic:
    """An invalid ICD-10 code is 422 invalid_icd10; completing twice is 409; someone else's is 404."""
    view = await service.complete_consultation(
        request.app[context_key],
        current_principal(request),
        path_int(request, "consultation_id"),
        notes=body.notes,
        icd10_code=body.icd10_code,
        outcome=body.outcome,
        referral_specialty=body.referral_specialty,
        referral_services=body.referral_services,
    )
    return _public(view)


@endpoint(
    routes,
    "GET",
    "/api/doctor/queue",
    summary="My live queue: offers with deadlines, active consultations, waiting counts per specialty",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=DoctorQueuePublic,
)
async def doctor_queue(request: web.Request) -> DoctorQueuePublic:
    """Refreshed by the client on queue.changed and consultation.offered events."""
    view = await service.doctor_queue(request.app[context_key], current_principal(request))
    return DoctorQueuePublic(
        on_duty_specialties=view.on_duty_specialties,
        duty_ends_at=view.duty_ends_at,
        max_active=view.max_active,
        offers=[_public(v) for v in view.offers],
        active=[_public(v) for v in view.active],
        waiting=view.waiting,
    )


def setup(app: web.Application) -> None:
    """Add the consultation routes and the background assignment loop."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(
        periodic_job_ctx(
            "consultation-assignment",
            service.run_assignment_cycle,
            lambda ctx: ctx.settings.assignment_interval_seconds,
        )
    )
