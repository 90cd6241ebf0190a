"""Dispatcher routes: the queue, a person's coverage and history, insured events, allowed clinics, letters of
guarantee, visit details and the approval check (R2, R3, R6.2-R6.4, R7.4, R10.2)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, Field

from server.api.coverage import ClinicsQuery
from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.keys import context_key
from server.services import coverage as coverage_service
from server.services import dispatch as service
from server.services.coverage import PersonHistory, PersonSummary
from server.services.dispatch import ApprovalAnswer, LetterChanged, LetterIssued
from server.services.dispatch_views import ClinicOption, EventView, RequestView, VisitView
from server.services.identity import ROLE_DISPATCHER

routes = web.RouteTableDef()
ROLES = (ROLE_DISPATCHER,)
TAGS = ("dispatch",)

ServiceName = str


class QueueQuery(ApiModel):
    """Which queue items to list."""

    status: Literal["open", "in_progress", "unfinished", "done", "cancelled"] = "open"
    limit: int = Field(default=200, ge=1, le=1000)


class RequestClose(ApiModel):
    """Finish a queue item."""

    status: Literal["done", "cancelled"]


class EventCreate(ApiModel):
    """Record the problem and classify it (R2.1, R2.2)."""

    insured_person_id: int = Field(gt=0)
    component: str = Field(min_length=1, max_length=20)
    complaints: str = Field(min_length=1, max_length=2000)
    request_id: int | None = Field(default=None, gt=0)
    on: date | None = None


class LetterCreate(ApiModel):
    """A letter of guarantee for the agreed services, or for "diagnosis of the complaints" (R2.5)."""

    clinic_id: int = Field(gt=0)
    services: list[ServiceName] = Field(min_length=1, max_length=20)
    component: str | None = Field(default=None, max_length=20)
    issued_on: date | None = None


class LetterActionQuery(ApiModel):
    """The day of a letter change (default: today)."""

    on: date | None = None


class VisitCreate(ApiModel):
    """The booking (R2.4) whose details the person is told (R2.6)."""

    doctor_name: str = Field(min_length=1, max_length=300)
    scheduled_at: AwareDatetime
    services: list[ServiceName] = Field(default_factory=list, max_length=20)


class ApprovalCheck(ApiModel):
    """Does this visit need the console's (new) approval?"""

    insured_person_id: int = Field(gt=0)
    clinic_id: int = Field(gt=0)
    services: list[ServiceName] = Field(default_factory=list, max_length=20)
    on: date | None = None
    insured_event_id: int | None = Field(default=None, gt=0)
    complaints: str | None = Field(default=None, max_length=2000)
    new_event: bool = False


class PersonSearch(ApiModel):
    """Find a person by any of policy number, name, birth date and phone; one page at a time."""

    policy_number: str | None = Field(default=None, min_length=1, max_length=40)
    name: str | None = Field(default=None, min_length=2, max_length=100)
    birth_date: date | None = None
    phone: str | None = Field(default=None, min_length=5, max_length=40)
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)


@endpoint(
    routes,
    "GET",
    "/api/dispatch/requests",
    summary="The dispatchers' queue, oldest first (insured requests, consultation referrals, call-back requests)",
    tags=TAGS,
    roles=ROLES,
    query=QueueQuery,
    response=list[RequestView],
)
async def list_requests(request: web.Request, query: QueueQuery) -> list[RequestView]:
    """``unfinished`` lists open and in-progress items together."""
    statuses = ("open", "in_progress") if query.status == "unfinished" else (query.status,)
    views = await service.queue(
        request.app[context_key], statuses, limit=query.limit, principal=current_principal(request)
    )
    return views


@endpoint(
    routes,
    "POST",
    "/api/dispatch/requests/{request_id}/take",
    summary="Take an open request (one dispatcher wins; the other gets 409)",
    tags=TAGS,
    roles=ROLES,
    response=RequestView,
    errors=[404, 409],
)
async def take_request(request: web.Request) -> RequestView:
    """Taking one's own request again is harmless."""
    view = await service.take_request(
        request.app[context_key], current_principal(request), path_int(request, "request_id")
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/dispatch/requests/{request_id}/close",
    summary="Finish a request as done or cancelled",
    tags=TAGS,
    roles=ROLES,
    body=RequestClose,
    response=RequestView,
    errors=[404, 409],
)
async def close_request(request: web.Request, body: RequestClose) -> RequestView:
    """A request is also finished automatically when its event's letter is sent."""
    view = await service.finish_request(
        request.app[context_key], current_principal(request), path_int(request, "request_id"), body.status
    )
    return view


@endpoint(
    routes,
    "GET",
    "/api/dispatch/persons",
    summary="Find insured persons by policy number, name, birth date and/or phone, one page at a time (limit, offset)",
    tags=TAGS,
    roles=ROLES,
    query=PersonSearch,
    response=list[PersonSummary],
)
async def find_persons(request: web.Request, query: PersonSearch) -> list[PersonSummary]:
    """One page (limit, offset; by name); open one with /api/dispatch/persons/{id}/coverage (audited)."""
    found = await coverage_service.find_persons(
        request.app[context_key],
        policy_number=query.policy_number,
        name=query.name,
        birth_date=query.birth_date,
        phone=query.phone,
        limit=query.limit,
        offset=query.offset,
    )
    return found


@endpoint(
    routes,
    "GET",
    "/api/dispatch/persons/{person_id}/coverage",
    summary="A person's coverage card and history: events, requests, decisions (the read is audited)",
    tags=TAGS,
    roles=ROLES,
    response=PersonHistory,
    errors=[404],
)
async def person_coverage(request: web.Request) -> PersonHistory:
    """Checklist D1: every read of a person's coverage writes an audit event."""
    history = await coverage_service.person_history(
        request.app[context_key], current_principal(request), path_int(request, "person_id")
    )
    return history


@endpoint(
    routes,
    "GET",
    "/api/dispatch/persons/{person_id}/clinics",
    summary="Only the clinics allowed for a visit (R2.3) or an attachment (R5.3), each noting R6.4 passes",
    tags=TAGS,
    roles=ROLES,
    query=ClinicsQuery,
    response=list[ClinicOption],
    errors=[404],
)
async def person_clinics(request: web.Request, query: ClinicsQuery) -> list[ClinicOption]:
    """Clinics off the program's list, or of another category for an attachment, are never offered."""
    options = await coverage_service.clinic_options(
        request.app[context_key], path_int(request, "person_id"), query.purpose, city=query.city
    )
    return options


@endpoint(
    routes,
    "POST",
    "/api/dispatch/events",
    summary="Record the complaints and classify the insured event: covered (open) or rejected, with reasons (R2.2)",
    tags=TAGS,
    roles=ROLES,
    body=EventCreate,
    response=EventView,
    status=201,
    errors=[404, 409],
)
async def create_event(request: web.Request, body: EventCreate) -> EventView:
    """An uncovered event is still recorded (status rejected) so the console can tell the person why."""
    view = await service.open_event(
        request.app[context_key],
        current_principal(request),
        person_id=body.insured_person_id,
        component=body.component,
        complaints=body.complaints,
        request_id=body.request_id,
        on=body.on,
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/dispatch/events/{event_id}/close",
    summary="Treatment complete: close the event and its active letters",
    tags=TAGS,
    roles=ROLES,
    response=EventView,
    errors=[404, 409],
)
async def close_event(request: web.Request) -> EventView:
    """After this, any new visit is a new insured event (R3.1)."""
    view = await service.close_event(
        request.app[context_key], current_principal(request), path_int(request, "event_id")
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/dispatch/events/{event_id}/letters",
    summary="Send the clinic a letter of guarantee (R2.5): clinic on the list (R2.3), component covered and "
    "policy valid (R10.2), event open; valid one month (R3.3)",
    tags=TAGS,
    roles=ROLES,
    body=LetterCreate,
    response=LetterIssued,
    status=201,
    errors=[404],
)
async def issue_letter(request: web.Request, body: LetterCreate) -> LetterIssued:
    """Refusals are 422 with every failed rule, and are recorded as decisions."""
    issued = await service.issue_letter(
        request.app[context_key],
        current_principal(request),
        path_int(request, "event_id"),
        clinic_id=body.clinic_id,
        services=body.services,
        component=body.component,
        issued_on=body.issued_on,
    )
    return issued


async def _letter_action(request: web.Request, query: LetterActionQuery, action: str) -> LetterChanged:
    changed = await service.change_letter(
        request.app[context_key], current_principal(request), path_int(request, "letter_id"), action, on=query.on
    )
    return changed


@endpoint(
    routes,
    "POST",
    "/api/dispatch/letters/{letter_id}/extend",
    summary="Re-approve a letter for another month while treatment goes on (R3.3)",
    tags=TAGS,
    roles=ROLES,
    query=LetterActionQuery,
    response=LetterChanged,
    errors=[404, 409],
)
async def extend_letter(request: web.Request, query: LetterActionQuery) -> LetterChanged:
    """Refused (422, R3.3) for a finished letter or a complete treatment."""
    return await _letter_action(request, query, "extend")


@endpoint(
    routes,
    "POST",
    "/api/dispatch/letters/{letter_id}/close",
    summary="Close a letter: treatment complete",
    tags=TAGS,
    roles=ROLES,
    query=LetterActionQuery,
    response=LetterChanged,
    errors=[404, 409],
)
async def close_letter(request: web.Request, query: LetterActionQuery) -> LetterChanged:
    """A closed letter never authorizes a visit again."""
    return await _letter_action(request, query, "close")


@endpoint(
    routes,
    "POST",
    "/api/dispatch/letters/{letter_id}/cancel",
    summary="Cancel a letter (issued in error, visit not taking place)",
    tags=TAGS,
    roles=ROLES,
    query=LetterActionQuery,
    response=LetterChanged,
    errors=[404, 409],
)
async def cancel_letter(request: web.Request, query: LetterActionQuery) -> LetterChanged:
    """A cancelled letter never authorizes a visit again."""
    return await _letter_action(request, query, "cancel")


@endpoint(
    routes,
    "POST",
    "/api/dispatch/letters/{letter_id}/visits",
    summary="Book the visit under the letter (R2.4) and record the details the person is told (R2.6)",
    tags=TAGS,
    roles=ROLES,
    body=VisitCreate,
    response=VisitView,
    status=201,
    errors=[404],
)
async def book_visit(request: web.Request, body: VisitCreate) -> VisitView:
    """The person then sees the visit on their coverage card."""
    view = await service.book_visit(
        request.app[context_key],
        current_principal(request),
        path_int(request, "letter_id"),
        doctor_name=body.doctor_name,
        scheduled_at=body.scheduled_at,
        services=body.services,
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/dispatch/approval-check",
    summary="Does this visit need approval? The explained answer (R3.1-R3.3, R6.2, R6.3, R7.4); a day outside "
    "the policy is 422 R10.2, an unknown or unlisted clinic 422 R2.3",
    tags=TAGS,
    roles=ROLES,
    body=ApprovalCheck,
    response=ApprovalAnswer,
    errors=[404],
)
async def approval_check(request: web.Request, body: ApprovalCheck) -> ApprovalAnswer:
    """Read-only for coverage; the access is audited."""
    answer = await service.approval_check(
        request.app[context_key],
        current_principal(request),
        person_id=body.insured_person_id,
        clinic_id=body.clinic_id,
        services=body.services,
        on=body.on,
        insured_event_id=body.insured_event_id,
        complaints=body.complaints,
        new_event=body.new_event,
    )
    return answer
