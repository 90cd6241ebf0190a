"""Insured person's coverage routes: the coverage card, requests to the console, the service type change
with its printable application, and the pass photo (R1, R2, R4, R5, R6.4, R9, R10, R11.3)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from aiohttp import BodyPartReader, web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.domain.errors import InvalidInput
from server.domain.passes import PASS_PHOTO_RULES
from server.keys import context_key
from server.services import coverage as coverage_service
from server.services import dispatch as dispatch_service
from server.services import passes as pass_service
from server.services import program_change
from server.services.identity import ROLE_INSURED

routes = web.RouteTableDef()

PHOTO_FIELD = "photo"
READ_CHUNK = 64 * 1024


# ---------------------------------------------------------------- response models (shared with dispatch and admin)


class ReasonPublic(ApiModel):
    """One reason of a decision: the rule id, a sentence, and the facts it used."""

    rule: str
    message: str
    facts: dict[str, Any] = Field(default_factory=dict)


class CoverageClinic(ApiModel):
    """A clinic: where it is and how to reach its reception."""

    id: int
    name: str
    city: str
    address: str
    phone: str
    price_category: int
    has_access_system: bool


class CoverageClinicOption(ApiModel):
    """An allowed clinic (R2.3, R5.3) and whether a pass photo is needed there (R6.4)."""

    clinic: CoverageClinic
    needs_pass_photo: bool
    reasons: list[ReasonPublic]


class CoverageLetter(ApiModel):
    """A letter of guarantee and its validity today: active, expired, not_yet_valid, ended_with_policy (R10.3),
    closed, cancelled; on the card, ``validity_reason`` says which rule decided it."""

    id: int
    number: str
    insured_event_id: int
    insured_person_id: int
    clinic: CoverageClinic
    services: list[str]
    issued_on: date
    valid_until: date
    status: str
    validity: str
    sent_to_clinic_at: datetime | None
    created_at: datetime
    validity_reason: ReasonPublic | None = None


class CoverageVisit(ApiModel):
    """Visit details told to the person (R2.6): clinic address, doctor, date and time, services, letter number."""

    id: int
    insured_event_id: int
    letter_id: int | None
    letter_number: str | None
    clinic: CoverageClinic
    doctor_name: str
    scheduled_at: datetime
    services: list[str]
    text: str


class CoverageEvent(ApiModel):
    """An insured event with its complaints and the coverage verdict (R2.1, R2.2)."""

    id: int
    insured_person_id: int
    component: str
    complaints: str
    status: str
    covered: bool
    source: str
    reasons: list[ReasonPublic]
    opened_at: datetime
    closed_at: datetime | None


class CoverageRequest(ApiModel):
    """A request in the dispatchers' queue."""

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


class CoverageDecision(ApiModel):
    """A recorded coverage decision: what, the verdict, why, who and when."""

    id: int
    kind: str
    allowed: bool
    reasons: list[ReasonPublic]
    subject: dict[str, Any]
    actor_type: str
    actor_id: int | None
    created_at: datetime


class CoverageRouting(ApiModel):
    """Who answers now (R9.1-R9.3, with its local time) or whose number is on the card (R9.4)."""

    kind: str
    name: str
    city: str
    phone: str
    timezone: str
    hours: str
    local_time: datetime | None
    reasons: list[ReasonPublic]


class CoverageTelemedicine(ApiModel):
    """Telemedicine consultations this calendar year (R11.3)."""

    year: int
    allowance_per_year: int
    used: int
    left: int


class CoverageAttachmentLetter(ApiModel):
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


class CoverageAttachment(ApiModel):
    """Whether the registry attachment is in force today (R6.2, R7.4)."""

    effective: bool
    reasons: list[ReasonPublic]
    letters: list[CoverageAttachmentLetter]


class CoverageScheduledPayment(ApiModel):
    """A due payment (amount as a decimal string)."""

    id: int
    policy_id: int
    due_on: date
    amount: Decimal
    purpose: str
    additional_agreement_id: int | None
    paid: bool


class CoverageApplication(ApiModel):
    """A service type change application (R4.2) with its agreement (R4.3) and schedule (R4.4)."""

    id: int
    insured_person_id: int
    policy_id: int
    status: str
    clinic: CoverageClinic
    additional_premium: Decimal
    agreement_id: int | None
    agreement_number: str | None
    agreed_on: date | None
    schedule: list[CoverageScheduledPayment]
    reasons: list[ReasonPublic]
    created_at: datetime
    application_url: str


class CoverageProgram(ApiModel):
    """The program: components (R10.1), price category (R5.3), service types offered (R4.1, R8.2)."""

    id: int
    name: str
    components: list[str]
    price_category: int
    registry_offered: bool
    recommended_service_type: str
    recommendation: str


class CoveragePolicy(ApiModel):
    """The policy: period and payment mode."""

    id: int
    number: str
    policyholder: str
    starts_on: date
    ends_on: date
    payment_mode: str
    valid_today: bool


class CoverageCardPublic(ApiModel):
    """The coverage card."""

    insured_person_id: int
    full_name: str
    city: str
    today: date
    service_type: str
    attached_clinic: CoverageClinic | None
    attachment: CoverageAttachment | None
    program: CoverageProgram
    policy: CoveragePolicy
    answers_now: CoverageRouting
    card_phone: CoverageRouting
    telemedicine: CoverageTelemedicine
    letters: list[CoverageLetter]
    open_events: list[CoverageEvent]
    visits: list[CoverageVisit]
    requests: list[CoverageRequest]
    applications: list[CoverageApplication]
    pass_photo_on_file: bool


class ServiceTypeChangePublic(ApiModel):
    """The outcome of a service type change request."""

    service_type: str
    attached_clinic: CoverageClinic | None
    effective: bool
    application: CoverageApplication | None
    reasons: list[ReasonPublic]


class PassRequestPublic(ApiModel):
    """A pass requested from a clinic with an access system (R6.4)."""

    id: int
    clinic_id: int
    status: str


class PassPhotoPublic(ApiModel):
    """The accepted pass photo (re-encoded as JPEG without metadata) and the passes requested."""

    photo_on_file: bool
    mime: str
    width: int
    height: int
    pass_requests: list[PassRequestPublic]
    reasons: list[ReasonPublic]


# ----------------------------------------------------------------------------- request models


class InsuredRequestCreate(ApiModel):
    """A request to the console for care (R2.1)."""

    component: str = Field(min_length=1, max_length=20, description="outpatient, dental, ambulance, inpatient")
    complaints: str = Field(min_length=1, max_length=2000)
    services: list[str] = Field(default_factory=list, max_length=20)


class ServiceTypeChangeCreate(ApiModel):
    """Switch to registry naming one clinic (R4.2), or (before the policy starts) back to dispatcher."""

    service_type: Literal["registry", "dispatcher"] = "registry"
    clinic_id: int | None = Field(default=None, gt=0)


class ClinicsQuery(ApiModel):
    """Which clinics to list."""

    purpose: Literal["visit", "attachment"] = "visit"
    city: str | None = Field(default=None, max_length=100)


PublicT = TypeVar("PublicT", bound=ApiModel)


def as_public(model: type[PublicT], value: object) -> PublicT:
    """A service view (dataclass) as its response model."""
    return model.model_validate(value, from_attributes=True)


# ----------------------------------------------------------------------------- routes


@endpoint(
    routes,
    "GET",
    "/api/me/coverage",
    summary="My coverage card: service type, clinic, program, who answers now and the card number (R9), "
    "telemedicine left, letters of guarantee, open events, visits (R2.6)",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=CoverageCardPublic,
    errors=[404],
)
async def my_coverage(request: web.Request) -> CoverageCardPublic:
    """The card is built from the database at each call; the read is audited."""
    card = await coverage_service.my_coverage(request.app[context_key], current_principal(request))
    return as_public(CoverageCardPublic, card)


@endpoint(
    routes,
    "GET",
    "/api/me/clinics",
    summary="Clinics I may be sent to (purpose=visit, R2.3) or attach to (purpose=attachment, R5.3); R6.4 noted",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    query=ClinicsQuery,
    response=list[CoverageClinicOption],
)
async def my_clinics(request: web.Request, query: ClinicsQuery) -> list[CoverageClinicOption]:
    """Only allowed clinics are listed."""
    options = await coverage_service.clinic_options(
        request.app[context_key], current_principal(request).subject_id, query.purpose, city=query.city
    )
    return [as_public(CoverageClinicOption, option) for option in options]


@endpoint(
    routes,
    "POST",
    "/api/me/requests",
    summary="Ask the console for care: coverage is checked (R2.2, R10.2), then the request joins the queue",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    body=InsuredRequestCreate,
    response=CoverageRequest,
    status=201,
    errors=[404],
)
async def submit_request(request: web.Request, body: InsuredRequestCreate) -> CoverageRequest:
    """An uncovered request is refused with 422 and its rule reasons (and recorded as a decision)."""
    view = await dispatch_service.submit_insured_request(
        request.app[context_key],
        current_principal(request),
        component=body.component,
        complaints=body.complaints,
        services=body.services,
    )
    return as_public(CoverageRequest, view)


@endpoint(
    routes,
    "POST",
    "/api/me/service-type-change",
    summary="Change dispatcher -> registry naming one clinic: application, additional agreement, premium and "
    "schedule (R4); refusals cite R4.1, R5.1, R5.2, R5.3, R2.3; 409 when one is already in progress",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    body=ServiceTypeChangeCreate,
    response=ServiceTypeChangePublic,
    status=201,
    errors=[404, 409],
)
async def change_service_type(request: web.Request, body: ServiceTypeChangeCreate) -> ServiceTypeChangePublic:
    """The change takes effect only when the first additional premium is bundled (R4.6)."""
    change = await program_change.request_service_type_change(
        request.app[context_key], current_principal(request), service_type=body.service_type, clinic_id=body.clinic_id
    )
    return as_public(ServiceTypeChangePublic, change)


@endpoint(
    routes,
    "GET",
    "/api/me/service-type-change",
    summary="My service type change applications with their agreements and schedules",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=list[CoverageApplication],
)
async def my_applications(request: web.Request) -> list[CoverageApplication]:
    """Newest first."""
    views = await program_change.my_applications(request.app[context_key], current_principal(request))
    return [as_public(CoverageApplication, view) for view in views]


@endpoint(
    routes,
    "GET",
    "/api/me/service-type-change/{application_id}/application.html",
    summary="The printable application to change the program (R4.2), for the policyholder to sign",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    errors=[404],
    content_type="text/html",
)
async def application_page(request: web.Request) -> web.Response:
    """Print-ready HTML; every value is escaped; no scripts may run in it."""
    page = await program_change.application_html(
        request.app[context_key], current_principal(request), path_int(request, "application_id")
    )
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'",
            "Cache-Control": "private, no-store",
        },
    )


@endpoint(
    routes,
    "POST",
    "/api/me/service-type-change/{application_id}/withdraw",
    summary="Withdraw an application before any additional premium is bundled",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=CoverageApplication,
    errors=[404, 409],
)
async def withdraw_application(request: web.Request) -> CoverageApplication:
    """Its unpaid schedule is removed; nothing changes for the person."""
    view = await program_change.withdraw_application(
        request.app[context_key], current_principal(request), path_int(request, "application_id")
    )
    return as_public(CoverageApplication, view)


@endpoint(
    routes,
    "POST",
    "/api/me/pass-photo",
    summary=f"Upload my photo for clinic passes (R6.4) as multipart field '{PHOTO_FIELD}': "
    f"{PASS_PHOTO_RULES.describe()}",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=PassPhotoPublic,
    status=201,
    errors=[413],
)
async def upload_pass_photo(request: web.Request) -> PassPhotoPublic:
    """The server decodes the image; the file name and declared type are ignored."""
    limit = PASS_PHOTO_RULES.max_bytes
    if request.content_length is not None and request.content_length > limit + READ_CHUNK:
        raise pass_service.too_large()
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput(f"send the photo as multipart/form-data field '{PHOTO_FIELD}'", code="multipart_required")
    reader = await request.multipart()
    data: bytes | None = None
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) != PHOTO_FIELD or not isinstance(part, BodyPartReader):
            continue
        buffer = bytearray()
        while chunk := await part.read_chunk(READ_CHUNK):
            buffer.extend(chunk)
            if len(buffer) > limit:
                raise pass_service.too_large()
        data = bytes(buffer)
        break
    if data is None:
        raise InvalidInput(f"no multipart field '{PHOTO_FIELD}' in the upload", code="missing_file")
    result = await pass_service.upload_pass_photo(request.app[context_key], current_principal(request), data)
    return as_public(PassPhotoPublic, result)
