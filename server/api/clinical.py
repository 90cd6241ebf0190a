"""Clinical-safety routes: consents (E1), the red-flag checklist (R11.6), duty alerts (R11.7), hand-over
(R11.8), addenda (R11.9) and the audit-trail check (D2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.background import periodic_job_ctx
from server.domain.red_flags import checklist_view, emergency_instruction
from server.keys import context_key
from server.services import alerts as alerts_service
from server.services import audit_chain
from server.services import consents as consents_service
from server.services import consultation_safety as safety
from server.services.alerts import AlertView
from server.services.consents import ConsentStatus, ConsentView
from server.services.consultation_safety import AddendumView, HandoverView
from server.services.context import ServiceContext
from server.services.identity import ROLE_ADMIN, ROLE_DISPATCHER, ROLE_DOCTOR, ROLE_INSURED

routes = web.RouteTableDef()
DUTY = (ROLE_DISPATCHER, ROLE_ADMIN)


# ----------------------------------------------------------------------------- consents (E1)


class ConsentGive(ApiModel):
    """Consent to the text version shown, in the language it was read in."""

    kind: str = Field(min_length=1, max_length=16)
    version: str = Field(min_length=1, max_length=32)
    language: str = Field(min_length=2, max_length=2)


class ConsentWithdraw(ApiModel):
    kind: str = Field(min_length=1, max_length=16)


class Withdrawn(ApiModel):
    withdrawn: list[int]


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


@endpoint(
    routes,
    "GET",
    "/api/me/consents",
    summary="My consents (telemedicine care, health data) and the current texts in Russian and English (E1)",
    tags=["consents"],
    roles=(ROLE_INSURED,),
    response=ConsentStatus,
)
async def my_consents(request: web.Request) -> ConsentStatus:
    """What the consent screen shows."""
    status = await consents_service.status(request.app[context_key], current_principal(request))
    return status


@endpoint(
    routes,
    "POST",
    "/api/me/consents",
    summary="Give a consent to the current text (recorded with who, when, version and the client address)",
    tags=["consents"],
    roles=(ROLE_INSURED,),
    body=ConsentGive,
    response=ConsentView,
    status=201,
)
async def give_consent(request: web.Request, body: ConsentGive) -> ConsentView:
    """An outdated version is 400 ``consent_version_outdated``: show the new text."""
    view = await consents_service.give(
        request.app[context_key],
        current_principal(request),
        kind=body.kind,
        version=body.version,
        language=body.language,
        address=_address(request),
        user_agent=request.headers.get("User-Agent"),
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/me/consents/withdraw",
    summary="Withdraw a consent: no new consultation until it is given again (audited)",
    tags=["consents"],
    roles=(ROLE_INSURED,),
    body=ConsentWithdraw,
    response=Withdrawn,
)
async def withdraw_consent(request: web.Request, body: ConsentWithdraw) -> Withdrawn:
    """An ongoing consultation may finish; new ones are refused with 428 ``consent_required``."""
    ids = await consents_service.withdraw(
        request.app[context_key], current_principal(request), kind=body.kind, address=_address(request)
    )
    return Withdrawn(withdrawn=ids)


# ----------------------------------------------------------------------------- red flags (R11.6)


class RedFlagQuestion(ApiModel):
    code: str
    ru: str
    en: str


class RedFlagChecklist(ApiModel):
    """The questions asked before a request joins the queue, and what a "yes" tells the patient."""

    questions: list[RedFlagQuestion]
    if_any_yes: dict[str, Any]


@endpoint(
    routes,
    "GET",
    "/api/consultations/red-flags",
    summary="The red-flag checklist answered with every request (R11.6)",
    tags=["consultations"],
    roles=(ROLE_INSURED,),
    response=RedFlagChecklist,
)
async def red_flag_checklist(request: web.Request) -> RedFlagChecklist:
    """Static, versioned with the code."""
    return RedFlagChecklist.model_validate({"questions": checklist_view(), "if_any_yes": emergency_instruction()})


# ----------------------------------------------------------------------------- duty alerts (R11.7)


class AlertsQuery(ApiModel):
    include_acknowledged: bool = False


@endpoint(
    routes,
    "GET",
    "/api/dispatch/alerts",
    summary="Duty alerts, newest first: red flags, emergencies, escalations, doctors lost (R11.6-R11.8); audited",
    tags=["dispatch"],
    roles=DUTY,
    query=AlertsQuery,
    response=list[AlertView],
)
async def list_alerts(request: web.Request, query: AlertsQuery) -> list[AlertView]:
    """Also pushed live as ``duty.alert`` to the dispatchers' and admins' sockets."""
    views = await alerts_service.list_alerts(
        request.app[context_key], current_principal(request), include_acknowledged=query.include_acknowledged
    )
    return views


@endpoint(
    routes,
    "POST",
    "/api/dispatch/alerts/{alert_id}/acknowledge",
    summary="Take an alert (one dispatcher or admin wins; the second gets 409)",
    tags=["dispatch"],
    roles=DUTY,
    response=AlertView,
    errors=[404, 409],
)
async def acknowledge_alert(request: web.Request) -> AlertView:
    view = await alerts_service.acknowledge(
        request.app[context_key], current_principal(request), path_int(request, "alert_id")
    )
    return view


# ----------------------------------------------------------------------------- hand-over and addenda


class HandoverBody(ApiModel):
    """Hand the consultation to a colleague on duty for its specialty and connected, with a note."""

    to_doctor_id: int = Field(gt=0)
    note: str = Field(min_length=1, max_length=2000)


class AddendumBody(ApiModel):
    text: str = Field(min_length=1, max_length=5000)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/handover",
    summary="Hand an active consultation over to a colleague on duty, with a note (R11.8; recorded and audited)",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    body=HandoverBody,
    response=HandoverView,
    errors=[404, 409],
)
async def hand_over(request: web.Request, body: HandoverBody) -> HandoverView:
    view = await safety.hand_over(
        request.app[context_key],
        current_principal(request),
        path_int(request, "consultation_id"),
        to_doctor_id=body.to_doctor_id,
        note=body.note,
    )
    return view


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/addenda",
    summary="Add a dated addendum to a completed consultation (treating doctor; the original stays, R11.9)",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    body=AddendumBody,
    response=AddendumView,
    status=201,
    errors=[404, 409],
)
async def add_addendum(request: web.Request, body: AddendumBody) -> AddendumView:
    view = await safety.add_addendum(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id"), body.text
    )
    return view


# ----------------------------------------------------------------------------- audit trail (D2)


class ChainReportPublic(ApiModel):
    """Whether the audit trail is intact: its hash chain and every pinned head."""

    ok: bool
    events: int
    checkpoints: int
    first_broken_id: int | None
    problem: str | None
    head_id: int | None
    head_hash: str | None


@endpoint(
    routes,
    "GET",
    "/api/admin/audit/verify",
    summary="Check the audit trail: edited rows, deleted newest rows, truncation (D2)",
    tags=["admin"],
    roles=(ROLE_ADMIN,),
    response=ChainReportPublic,
)
async def verify_audit(request: web.Request) -> ChainReportPublic:
    report = await audit_chain.verify(request.app[context_key])
    return ChainReportPublic.model_validate(vars_of(report))


@endpoint(
    routes,
    "POST",
    "/api/admin/audit/checkpoint",
    summary="Pin the audit trail's current head (also done periodically)",
    tags=["admin"],
    roles=(ROLE_ADMIN,),
    response=ChainReportPublic,
)
async def checkpoint_audit(request: web.Request) -> ChainReportPublic:
    ctx = request.app[context_key]
    report = await audit_chain.checkpoint(ctx) or await audit_chain.verify(ctx)
    return ChainReportPublic.model_validate(vars_of(report))


def setup(app: web.Application) -> None:
    """Add the routes and the periodic pinning of the audit trail's head (D2)."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(
        periodic_job_ctx(
            "audit-checkpoint", _checkpoint_job, lambda ctx: ctx.settings.audit_checkpoint_interval_seconds
        )
    )


async def _checkpoint_job(ctx: ServiceContext) -> None:
    await audit_chain.checkpoint(ctx)


def vars_of(view: Any) -> dict[str, Any]:
    """A slotted dataclass as a dict for the response model."""
    return {name: getattr(view, name) for name in view.__dataclass_fields__}
