"""Duty roster routes: shifts (admin edits, doctors see their own), import, coverage check and gap alerts (R11.2)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, Field, ValidationError, model_validator

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int, read_json
from server.api.errors import validation_details
from server.api.input_guard import refuse
from server.background import periodic_job_ctx
from server.domain.errors import InvalidInput, RuleViolation
from server.keys import context_key
from server.services import roster as roster_service
from server.services.identity import ROLE_ADMIN, ROLE_DISPATCHER, ROLE_DOCTOR
from server.services.roster import AlertView, CoverageView, ImportOutcome, ShiftView

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

CSV_TYPES = ("text/csv", "application/csv", "text/plain")


class ShiftCreate(ApiModel):
    """A new shift; name the doctor by id or by username."""

    doctor_id: int | None = Field(default=None, ge=1)
    doctor_username: str | None = Field(default=None, min_length=1, max_length=80)
    specialty: str = Field(min_length=1, max_length=40)
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _one_doctor(self) -> ShiftCreate:
        if (self.doctor_id is None) == (self.doctor_username is None):
            raise ValueError("give exactly one of doctor_id and doctor_username")
        return self


class ShiftUpdate(ApiModel):
    """Fields of a shift to change; the result is checked like a new shift."""

    doctor_id: int | None = Field(default=None, ge=1)
    specialty: str | None = Field(default=None, min_length=1, max_length=40)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class ImportRow(ApiModel):
    """One row of a roster import (the CSV columns)."""

    doctor_username: str = Field(min_length=1, max_length=80)
    specialty: str = Field(min_length=1, max_length=40)
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class RosterQuery(ApiModel):
    """A window of the roster; default from now back one day to two weeks ahead."""

    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    specialty: str | None = Field(default=None, min_length=1, max_length=40)


class MineQuery(ApiModel):
    """A doctor's own roster window and the time zone to show it in."""

    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    tz: str | None = Field(default=None, min_length=1, max_length=64)  # default: the doctor's own, else Moscow


class TimeZoneBody(ApiModel):
    """The doctor's own time zone (IANA name)."""

    tz: str = Field(min_length=1, max_length=64)


class CoverageQuery(ApiModel):
    weeks: int = Field(default=2, ge=1, le=8)


class AlertsQuery(ApiModel):
    include_resolved: bool = False


@endpoint(
    routes,
    "GET",
    "/api/roster",
    summary="The duty roster in a window (UTC), optionally for one specialty",
    tags=["roster"],
    roles=(ROLE_ADMIN, ROLE_DISPATCHER),
    query=RosterQuery,
    response=list[ShiftView],
)
async def list_roster(request: web.Request, query: RosterQuery) -> list[ShiftView]:
    """Admins and dispatchers see the whole roster."""
    ctx = request.app[context_key]
    now = ctx.clock.now()
    start = query.from_ or now - timedelta(days=1)
    end = query.to or now + timedelta(days=14)
    views = await roster_service.list_shifts(ctx, start=start, end=end, specialty=query.specialty)
    return views


@endpoint(
    routes,
    "POST",
    "/api/roster/shifts",
    summary="Add a shift (refuses overlaps, end before start, more than 24 h, a specialty the doctor lacks)",
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    body=ShiftCreate,
    response=ShiftView,
    status=201,
    errors=[404, 409],
)
async def create_shift(request: web.Request, body: ShiftCreate) -> ShiftView:
    """Admins edit the roster; the coverage check re-runs afterwards."""
    view = await roster_service.create_shift(
        request.app[context_key],
        doctor_id=body.doctor_id,
        doctor_username=body.doctor_username,
        specialty=body.specialty,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return view


@endpoint(
    routes,
    "PATCH",
    "/api/roster/shifts/{shift_id}",
    summary="Change a shift (checked like a new one)",
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    body=ShiftUpdate,
    response=ShiftView,
    errors=[404, 409],
)
async def update_shift(request: web.Request, body: ShiftUpdate) -> ShiftView:
    """Partial update: only the given fields change."""
    view = await roster_service.update_shift(
        request.app[context_key],
        path_int(request, "shift_id"),
        doctor_id=body.doctor_id,
        specialty=body.specialty,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return view


@endpoint(
    routes,
    "DELETE",
    "/api/roster/shifts/{shift_id}",
    summary="Remove a shift",
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    status=204,
    errors=[404],
)
async def delete_shift(request: web.Request) -> web.Response:
    """The coverage check re-runs afterwards, so a gap this opens raises an alert (R11.2)."""
    await roster_service.delete_shift(request.app[context_key], path_int(request, "shift_id"))
    return web.Response(status=204)


@endpoint(
    routes,
    "POST",
    "/api/roster/import",
    summary=(
        "Import shifts, all or nothing: a JSON list of {doctor_username, specialty, starts_at, ends_at} "
        "or a text/csv body with those columns (ISO-8601 times with offset)"
    ),
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    response=ImportOutcome,
    status=201,
    errors=[400, 409, 415, 422],
)
async def import_roster(request: web.Request) -> ImportOutcome:
    """Every row is checked before any is saved; the errors name the bad rows."""
    ctx = request.app[context_key]
    content_type = request.content_type
    if content_type in CSV_TYPES:
        raw = await request.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the CSV must be UTF-8", code="malformed_csv") from exc
        refuse(text)
        rows = roster_service.parse_roster_csv(text)
    elif content_type in ("application/json", ""):
        rows = _json_rows(await read_json(request))
    else:
        raise web.HTTPUnsupportedMediaType(reason="send application/json or text/csv")
    result = await roster_service.import_shifts(ctx, rows)
    return result


def _json_rows(payload: Any) -> list[roster_service.ShiftRow]:
    items = payload.get("shifts") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise InvalidInput('send a JSON list of shifts (or {"shifts": [...]})', code="malformed_json")
    rows: list[roster_service.ShiftRow] = []
    errors: list[dict[str, Any]] = []
    for number, item in enumerate(items, start=1):
        try:
            row = ImportRow.model_validate(item)
        except ValidationError as exc:
            errors.append({"row": number, "errors": [f"{d['field']}: {d['problem']}" for d in validation_details(exc)]})
            continue
        rows.append(
            roster_service.ShiftRow(
                row=number,
                doctor_username=row.doctor_username,
                specialty=row.specialty,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
            )
        )
    if errors:
        raise RuleViolation(
            f"{len(errors)} row(s) are not valid; nothing was imported",
            code="invalid_roster",
            details={"errors": errors},
        )
    return rows


@endpoint(
    routes,
    "GET",
    "/api/roster/mine",
    summary="My shifts, in UTC and in local time (tz; default my own time zone, else Europe/Moscow)",
    tags=["roster"],
    roles=(ROLE_DOCTOR,),
    query=MineQuery,
    response=list[ShiftView],
)
async def my_roster(request: web.Request, query: MineQuery) -> list[ShiftView]:
    """A doctor's own view of the roster."""
    ctx = request.app[context_key]
    principal = current_principal(request)
    now = ctx.clock.now()
    views = await roster_service.my_shifts(
        ctx,
        principal.subject_id,
        start=query.from_ or now - timedelta(days=1),
        end=query.to or now + timedelta(days=28),
        tz=query.tz,
    )
    return views


@endpoint(
    routes,
    "PUT",
    "/api/roster/mine/time-zone",
    summary="Set my time zone for my shifts (IANA name, e.g. Asia/Vladivostok)",
    tags=["roster"],
    roles=(ROLE_DOCTOR,),
    body=TimeZoneBody,
    response=TimeZoneBody,
)
async def set_my_time_zone(request: web.Request, body: TimeZoneBody) -> TimeZoneBody:
    """A doctor's own time zone."""
    ctx = request.app[context_key]
    tz = await roster_service.set_time_zone(ctx, current_principal(request).subject_id, body.tz)
    return TimeZoneBody(tz=tz)


@endpoint(
    routes,
    "GET",
    "/api/roster/coverage",
    summary="Coverage of the coming weeks per specialty; a general-practice gap is an alert (R11.2)",
    tags=["roster"],
    roles=(ROLE_ADMIN, ROLE_DISPATCHER),
    query=CoverageQuery,
    response=CoverageView,
)
async def coverage(request: web.Request, query: CoverageQuery) -> CoverageView:
    """Runs the check now (recording alerts and the gap metric) and reports it."""
    report = await roster_service.run_coverage_check(request.app[context_key], weeks=query.weeks)
    return report


@endpoint(
    routes,
    "GET",
    "/api/admin/roster-alerts",
    summary="Roster gap alerts (R11.2): open ones, or all with include_resolved=true",
    tags=["roster", "admin"],
    roles=(ROLE_ADMIN,),
    query=AlertsQuery,
    response=list[AlertView],
)
async def roster_alerts(request: web.Request, query: AlertsQuery) -> list[AlertView]:
    """Admins see every gap the coverage check found."""
    views = await roster_service.list_alerts(request.app[context_key], include_resolved=query.include_resolved)
    return views


def setup(app: web.Application) -> None:
    """Add the roster routes and the periodic coverage check."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(
        periodic_job_ctx(
            "roster-coverage-check",
            roster_service.run_coverage_check,
            lambda ctx: ctx.settings.roster_check_interval_seconds,
        )
    )
