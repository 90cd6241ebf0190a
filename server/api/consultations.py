"""Consultation routes: request (insured), read, cancel, accept/decline/complete (doctor), the doctor's queue (R11)."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from pydantic import Field, field_validator

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int, read_json
from server.background import nudged_job_ctx
from server.channels import assignment_channel
from server.domain.roster import SPECIALTY_CODES
from server.keys import context_key
from server.services import consultations as service
from server.services.consultations import AllowanceView, ConsultationView, DoctorQueueView, EventChoicesView
from server.services.identity import ROLE_ADMIN, ROLE_DOCTOR, ROLE_INSURED

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


class ConsultationCreate(ApiModel):
    """A request for a consultation (R11.1)."""

    channel: Literal["text", "audio", "video"]
    specialty: str = Field(min_length=1, max_length=40, description="general_practice or another specialty")
    complaints: str = Field(min_length=1, max_length=2000)
    red_flags: dict[str, bool] | None = Field(
        default=None, description="R11.6: every question of GET /api/consultations/red-flags answered true or false"
    )
    confirm_urgent: bool = Field(default=False, description="asked again after the 103/112 instruction: urgent")

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
    insured_event_id: int | None = Field(
        default=None,
        ge=1,
        description=(
            "R11.5: one of the patient's open insured events (GET .../open-events) this consultation continues; "
            "absent or null opens a new insured event (R3.1)"
        ),
    )


@endpoint(
    routes,
    "POST",
    "/api/consultations",
    summary="Request a consultation: coverage (R10.2) and yearly allowance (R11.3) are checked, then it is queued",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    body=ConsultationCreate,
    response=ConsultationView,
    status=201,
    errors=[409, 428],
)
async def request_consultation(request: web.Request, body: ConsultationCreate) -> ConsultationView:
    """The answer carries the queue position and estimated wait, or says nobody is on duty (R11.2)."""
    return await service.request_consultation(
        request.app[context_key],
        current_principal(request),
        channel=body.channel,
        specialty=body.specialty,
        complaints=body.complaints,
        red_flags=body.red_flags,
        confirm_urgent=body.confirm_urgent,
    )


@endpoint(
    routes,
    "GET",
    "/api/consultations",
    summary="My consultations: a patient's own; a doctor's offers, active and recently completed",
    tags=["consultations"],
    roles=(ROLE_INSURED, ROLE_DOCTOR),
    response=list[ConsultationView],
)
async def list_consultations(request: web.Request) -> list[ConsultationView]:
    """Newest first."""
    views = await service.list_consultations(request.app[context_key], current_principal(request))
    return views


@endpoint(
    routes,
    "GET",
    "/api/consultations/allowance",
    summary="Telemedicine consultations left this year (R11.3)",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    response=AllowanceView,
)
async def allowance(request: web.Request) -> AllowanceView:
    """Allowance of the program minus services used and consultations still open."""
    return await service.telemedicine_allowance(request.app[context_key], current_principal(request).subject_id)


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}",
    summary="One consultation (its patient, the doctor it is offered to or held by, or an admin)",
    tags=["consultations"],
    roles=(ROLE_INSURED, ROLE_DOCTOR, ROLE_ADMIN),
    response=ConsultationView,
    errors=[404],
)
async def get_consultation(request: web.Request) -> ConsultationView:
    """Anyone else gets 404: the consultation is not revealed (checklist C1)."""
    return await service.get_consultation(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/cancel",
    summary="Cancel my consultation while it is queued, offered or active",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    response=ConsultationView,
    errors=[404, 409],
)
async def cancel(request: web.Request) -> ConsultationView:
    """A body with a reason is optional."""
    reason = None
    if request.can_read_body:
        body = CancelBody.model_validate(await read_json(request))
        reason = body.reason
    return await service.cancel_consultation(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id"), reason
    )


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/accept",
    summary="Accept a consultation offered to me (before the offer's deadline)",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=ConsultationView,
    errors=[404, 409],
)
async def accept(request: web.Request) -> ConsultationView:
    """After the deadline the offer has gone to the next doctor: 409 offer_expired."""
    return await service.accept_offer(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/decline",
    summary="Pass on a consultation offered to me; it goes to the next doctor",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=ConsultationView,
    errors=[404, 409],
)
async def decline(request: web.Request) -> ConsultationView:
    """The doctor is skipped for this consultation."""
    return await service.decline_offer(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )


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
    response=ConsultationView,
    errors=[404, 409],
)
async def complete(request: web.Request, body: CompleteBody) -> ConsultationView:
    """An invalid ICD-10 code is 422 invalid_icd10; completing twice is 409; someone else's is 404."""
    return await service.complete_consultation(
        request.app[context_key],
        current_principal(request),
        path_int(request, "consultation_id"),
        notes=body.notes,
        icd10_code=body.icd10_code,
        outcome=body.outcome,
        referral_specialty=body.referral_specialty,
        referral_services=body.referral_services,
        insured_event_id=body.insured_event_id,
    )


class OpenEventsQuery(ApiModel):
    icd10_code: str | None = Field(default=None, min_length=1, max_length=16)


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}/open-events",
    summary=(
        "The patient's open insured events to link my consultation to at completion (R11.5), with a suggestion "
        "of the same ICD-10 category; the default is a new insured event (R3.1)"
    ),
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    query=OpenEventsQuery,
    response=EventChoicesView,
    errors=[404],
)
async def open_events(request: web.Request, query: OpenEventsQuery) -> EventChoicesView:
    """Only the doctor offered or holding the consultation sees them (others: 404); the read is audited."""
    return await service.event_choices(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id"), query.icd10_code
    )


@endpoint(
    routes,
    "GET",
    "/api/doctor/queue",
    summary="My live queue: offers with deadlines, active consultations, waiting counts per specialty",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=DoctorQueueView,
)
async def doctor_queue(request: web.Request) -> DoctorQueueView:
    """Refreshed by the client on queue.changed and consultation.offered events."""
    return await service.doctor_queue(request.app[context_key], current_principal(request))


def setup(app: web.Application) -> None:
    """Add the consultation routes and the background assignment loop (woken by any process's nudge)."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(
        nudged_job_ctx(
            "consultation-assignment",
            service.run_assignment_cycle,
            lambda ctx: ctx.settings.assignment_interval_seconds,
            assignment_channel(),
        )
    )
