"""Corporate HR routes: usage, health management, exports and the account manager (R12).

HR of one policyholder only (the account is bound to it; no route takes a company id, so another
company's figures cannot even be named). Periods are months or ISO weeks (``2026-11``,
``2026-W48``), filters a fixed list; anything else is a 4xx that reveals no count.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.background import periodic_job_ctx
from server.keys import context_key
from server.services import hr as service
from server.services import program_signing as signing
from server.services.dispatch_views import ApplicationView
from server.services.hr_passport import passport_pdf
from server.services.identity import ROLE_HR

routes = web.RouteTableDef()
ROLES = (ROLE_HR,)
TAGS = ("hr",)
_PERIOD = Field(min_length=7, max_length=8, description="a calendar month (2026-11) or an ISO week (2026-W48)")


class HrPeriodQuery(ApiModel):
    """One published period."""

    period: str = _PERIOD


class HrUsageQuery(ApiModel):
    """One published period, optionally one slice of it (department or age band, not both)."""

    period: str = _PERIOD
    department: str | None = Field(default=None, max_length=200)
    age_band: str | None = Field(default=None, max_length=10)


class HrMonthQuery(ApiModel):
    """One published month."""

    period: str = Field(min_length=7, max_length=7, description="a calendar month (2026-11)")


def _attachment(body: bytes | str, content_type: str, filename: str) -> web.Response:
    payload = body.encode("utf-8") if isinstance(body, str) else body
    return web.Response(
        body=payload,
        content_type=content_type,
        charset="utf-8" if isinstance(body, str) else None,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


@endpoint(
    routes,
    "GET",
    "/api/hr/periods",
    summary="The months (closed, frozen) and ISO weeks HR may ask for, newest first",
    tags=TAGS,
    roles=ROLES,
    response=service.HrPeriodsView,
)
async def hr_periods(request: web.Request) -> service.HrPeriodsView:
    """Closed months since the company's first policy, and their weeks."""
    return await service.periods(request.app[context_key], current_principal(request))


@endpoint(
    routes,
    "GET",
    "/api/hr/usage",
    summary="Usage of the company's staff for a month or an ISO week, or one slice of a month (R12.1, R12.5)",
    tags=TAGS,
    roles=ROLES,
    query=HrUsageQuery,
    response=service.HrUsageView,
    errors=[400, 403, 422],
)
async def hr_usage(request: web.Request, query: HrUsageQuery) -> service.HrUsageView:
    """Tables (suppressed cells are null), company-wide figures and SVG charts."""
    filters = {"department": query.department or "", "age_band": query.age_band or ""}
    return await service.usage(request.app[context_key], current_principal(request), query.period, filters)


@endpoint(
    routes,
    "GET",
    "/api/hr/usage.csv",
    summary="Every usage table of the period as CSV, with the same suppression",
    tags=TAGS,
    roles=ROLES,
    query=HrUsageQuery,
    errors=[400, 403, 422],
    content_type="text/csv",
)
async def hr_usage_csv(request: web.Request, query: HrUsageQuery) -> web.Response:
    """CSV export of /api/hr/usage."""
    filters = {"department": query.department or "", "age_band": query.age_band or ""}
    view = await service.usage(request.app[context_key], current_principal(request), query.period, filters)
    return _attachment(
        service.tables_csv(view.tables, view.period, view.min_cell), "text/csv", f"usage-{view.period}.csv"
    )


@endpoint(
    routes,
    "GET",
    "/api/hr/health",
    summary="Prevention needs by staff segment (department x age band x ICD-10 chapter) and trends (R12.2, R12.3)",
    tags=TAGS,
    roles=ROLES,
    query=HrMonthQuery,
    response=service.HrHealthView,
    errors=[400, 403, 422],
)
async def hr_health(request: web.Request, query: HrMonthQuery) -> service.HrHealthView:
    """Aggregate health figures of one month."""
    return await service.health(request.app[context_key], current_principal(request), query.period)


@endpoint(
    routes,
    "GET",
    "/api/hr/health.csv",
    summary="The health tables of the month as CSV, with the same suppression",
    tags=TAGS,
    roles=ROLES,
    query=HrMonthQuery,
    errors=[400, 403, 422],
    content_type="text/csv",
)
async def hr_health_csv(request: web.Request, query: HrMonthQuery) -> web.Response:
    """CSV export of /api/hr/health."""
    view = await service.health(request.app[context_key], current_principal(request), query.period)
    text = service.tables_csv([view.prevention_needs, view.diagnoses_by_chapter], view.period, view.min_cell)
    return _attachment(text, "text/csv", f"health-{view.period}.csv")


@endpoint(
    routes,
    "GET",
    "/api/hr/passport.pdf",
    summary="The company Health Passport of a month: one or two pages of aggregate figures with charts (R12.3)",
    tags=TAGS,
    roles=ROLES,
    query=HrMonthQuery,
    errors=[400, 403, 422],
    content_type="application/pdf",
)
async def hr_passport(request: web.Request, query: HrMonthQuery) -> web.Response:
    """PDF rendered by WeasyPrint from the same snapshot and charts as the page."""
    ctx, principal = request.app[context_key], current_principal(request)
    usage = await service.usage(ctx, principal, query.period)
    health = await service.health(ctx, principal, query.period)
    company = (await service.account_manager(ctx, principal)).policyholder
    pdf = await asyncio.to_thread(passport_pdf, company, usage, health)
    return _attachment(pdf, "application/pdf", f"health-passport-{usage.period}.pdf")


@endpoint(
    routes,
    "GET",
    "/api/hr/account-manager",
    summary="The client's personal account manager at the insurer (R12.4)",
    tags=TAGS,
    roles=ROLES,
    response=service.HrAccountManagerView,
)
async def hr_account_manager(request: web.Request) -> service.HrAccountManagerView:
    """Contacts of the account manager."""
    return await service.account_manager(request.app[context_key], current_principal(request))


class RefuseBody(ApiModel):
    """Why the employer does not sign (shown to the employee)."""

    reason: str = Field(min_length=1, max_length=500)


@endpoint(
    routes,
    "GET",
    "/api/hr/service-type-applications",
    summary="My company's employees' applications to switch to registry waiting for my approval and signature (R4.2)",
    tags=TAGS,
    roles=ROLES,
    response=list[ApplicationView],
)
async def hr_pending_applications(request: web.Request) -> list[ApplicationView]:
    """Only the HR user's own policyholder's applications; the read is audited."""
    return await signing.pending_applications(request.app[context_key], current_principal(request))


@endpoint(
    routes,
    "POST",
    "/api/hr/service-type-applications/{application_id}/approve",
    summary="Approve and sign an employee's application (R4.2): the additional agreement (R4.3) is drawn up and "
    "the additional premium goes on the employer's schedule (R4.4, R4.5)",
    tags=TAGS,
    roles=ROLES,
    response=ApplicationView,
    errors=[404, 409],
)
async def hr_approve_application(request: web.Request) -> ApplicationView:
    """Checked again on the day of signing; a switch no longer allowed is 422 with its rule and rejected."""
    return await signing.approve_application(
        request.app[context_key], current_principal(request), path_int(request, "application_id")
    )


@endpoint(
    routes,
    "POST",
    "/api/hr/service-type-applications/{application_id}/refuse",
    summary="Refuse to sign an employee's application (R4.2), with the reason the employee sees; nothing is charged",
    tags=TAGS,
    roles=ROLES,
    body=RefuseBody,
    response=ApplicationView,
    errors=[404, 409],
)
async def hr_refuse_application(request: web.Request, body: RefuseBody) -> ApplicationView:
    """Another company's application is 404; one not waiting is 409."""
    return await signing.refuse_application(
        request.app[context_key], current_principal(request), path_int(request, "application_id"), body.reason
    )


def setup(app: web.Application) -> None:
    """Add the HR routes and the job that freezes each client's month as it closes."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(
        periodic_job_ctx(
            "hr-freeze-closed-months", service.freeze_closed_months, lambda ctx: ctx.settings.hr_freeze_interval_seconds
        )
    )
