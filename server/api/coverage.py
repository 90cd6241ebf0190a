"""Insured person's coverage routes: the coverage card, requests to the console, the service type change
with its printable application, and the pass photo (R1, R2, R4, R5, R6.4, R9, R10, R11.3)."""

from __future__ import annotations

from typing import Literal

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
from server.services.coverage import CoverageCard
from server.services.dispatch_views import ApplicationView, ClinicOption, RequestView
from server.services.identity import ROLE_INSURED
from server.services.passes import PassPhotoResult
from server.services.program_change import ServiceTypeChange

routes = web.RouteTableDef()

PHOTO_FIELD = "photo"
READ_CHUNK = 64 * 1024


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


# ----------------------------------------------------------------------------- routes


@endpoint(
    routes,
    "GET",
    "/api/me/coverage",
    summary="My coverage card: service type, clinic, program, who answers now and the card number (R9), "
    "telemedicine left, letters of guarantee, open events, visits (R2.6)",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=CoverageCard,
    errors=[404],
)
async def my_coverage(request: web.Request) -> CoverageCard:
    """The card is built from the database at each call; the read is audited."""
    card = await coverage_service.my_coverage(request.app[context_key], current_principal(request))
    return card


@endpoint(
    routes,
    "GET",
    "/api/me/clinics",
    summary="Clinics I may be sent to (purpose=visit, R2.3) or attach to (purpose=attachment, R5.3); R6.4 noted",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    query=ClinicsQuery,
    response=list[ClinicOption],
)
async def my_clinics(request: web.Request, query: ClinicsQuery) -> list[ClinicOption]:
    """Only allowed clinics are listed."""
    options = await coverage_service.clinic_options(
        request.app[context_key], current_principal(request).subject_id, query.purpose, city=query.city
    )
    return options


@endpoint(
    routes,
    "POST",
    "/api/me/requests",
    summary="Ask the console for care: coverage is checked (R2.2, R10.2), then the request joins the queue",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    body=InsuredRequestCreate,
    response=RequestView,
    status=201,
    errors=[404],
)
async def submit_request(request: web.Request, body: InsuredRequestCreate) -> RequestView:
    """An uncovered request is refused with 422 and its rule reasons (and recorded as a decision)."""
    view = await dispatch_service.submit_insured_request(
        request.app[context_key],
        current_principal(request),
        component=body.component,
        complaints=body.complaints,
        services=body.services,
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/me/service-type-change",
    summary="Change dispatcher -> registry naming one clinic: application, additional agreement, premium and "
    "schedule (R4); refusals cite R4.1, R5.1, R5.2, R5.3, R2.3; 409 when one is already in progress",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    body=ServiceTypeChangeCreate,
    response=ServiceTypeChange,
    status=201,
    errors=[404, 409],
)
async def change_service_type(request: web.Request, body: ServiceTypeChangeCreate) -> ServiceTypeChange:
    """The change takes effect only when the first additional premium is bundled (R4.6)."""
    change = await program_change.request_service_type_change(
        request.app[context_key], current_principal(request), service_type=body.service_type, clinic_id=body.clinic_id
    )
    return change


@endpoint(
    routes,
    "GET",
    "/api/me/service-type-change",
    summary="My service type change applications with their agreements and schedules",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=list[ApplicationView],
)
async def my_applications(request: web.Request) -> list[ApplicationView]:
    """Newest first."""
    views = await program_change.my_applications(request.app[context_key], current_principal(request))
    return views


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
    response=ApplicationView,
    errors=[404, 409],
)
async def withdraw_application(request: web.Request) -> ApplicationView:
    """Its unpaid schedule is removed; nothing changes for the person."""
    view = await program_change.withdraw_application(
        request.app[context_key], current_principal(request), path_int(request, "application_id")
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/me/pass-photo",
    summary=f"Upload my photo for clinic passes (R6.4) as multipart field '{PHOTO_FIELD}': "
    f"{PASS_PHOTO_RULES.describe()}",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=PassPhotoResult,
    status=201,
    errors=[400, 413, 422, 503],
)
async def upload_pass_photo(request: web.Request) -> PassPhotoResult:
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
    return result
