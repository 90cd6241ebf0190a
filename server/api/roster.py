"""Duty roster routes: shifts (admin edits, doctors see their own), import, coverage check and gap alerts (R11.2)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
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


class LocalPeriod(ApiModel):
    """A shift's start and end in a named time zone, for people who read local time."""

    timezone: str
    starts_at: datetime
    ends_at: datetime


class ShiftPublic(ApiModel):
    """A shift; ``starts_at``/``ends_at`` are UTC."""

    id: int
    doctor_id: int
    doctor_username: str
    doctor_name: str
    specialty: str
    starts_at: datetime
    ends_at: datetime
    hours: float
    local: LocalPeriod | None = None


class ImportResult(ApiModel):
    """What an import did: all rows were accepted (or none, with the errors)."""

    created: int
    unchanged: int
    shifts: list[ShiftPublic]


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


class GapPublic(ApiModel):
    start: datetime
    end: datetime
    hours: float


class SpecialtyCoverage(ApiModel):
    """One specialty's coverage over the window; general practice must have no gap (R11.2)."""

    specialty: str
    required_24_7: bool
    covered_hours: float
    gap_hours: float
    gaps: list[GapPublic]
    alert: bool
    rule: str | None = None
    message: str | None = None
    uncovered_hours: list[datetime] = Field(
        default_factory=list, description="clock hours with nobody on duty, for round-the-clock specialties"
    )


class AlertPublic(ApiModel):
    """A roster gap alert (R11.2)."""

    id: int
    specialty: str
    rule: str
    gap_start: datetime
    gap_end: datetime
    hours: float
    detected_at: datetime
    last_seen_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    message: str


class CoverageReport(ApiModel):
    """The coverage check of the coming weeks, per specialty."""

    window_start: datetime
    window_end: datetime
    total_hours: float
    ok: bool
    specialties: list[SpecialtyCoverage]
    alerts: list[AlertPublic]


class AlertsQuery(ApiModel):
    include_resolved: bool = False


def _shift(view: roster_service.ShiftView) -> ShiftPublic:
    local = None
    if view.local is not None:
        local = LocalPeriod(timezone=view.local.timezone, starts_at=view.local.starts_at, ends_at=view.local.ends_at)
    return ShiftPublic(
        id=view.id,
        doctor_id=view.doctor_id,
        doctor_username=view.doctor_username,
        doctor_name=view.doctor_name,
        specialty=view.specialty,
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        hours=view.hours,
        local=local,
    )


def _alert(view: roster_service.AlertView) -> AlertPublic:
    return AlertPublic(**view.as_dict())


def _report(report: roster_service.CoverageView) -> CoverageReport:
    return CoverageReport(
        window_start=report.window_start,
        window_end=report.window_end,
        total_hours=report.total_hours,
        ok=report.ok,
        specialties=[
            SpecialtyCoverage(
                specialty=item.specialty,
                required_24_7=item.required_24_7,
                covered_hours=item.covered_hours,
                gap_hours=item.gap_hours,
                gaps=[GapPublic(start=g.start, end=g.end, hours=g.hours) for g in item.gaps],
                alert=item.alert,
                rule=item.rule,
                message=item.message,
                uncovered_hours=item.uncovered_hours,
            )
            for item in report.specialties
        ],
        alerts=[_alert(alert) for alert in report.alerts],
    )


@endpoint(
    routes,
    "GET",
    "/api/roster",
    summary="The duty roster in a window (UTC), optionally for one specialty",
    tags=["roster"],
    roles=(ROLE_ADMIN, ROLE_DISPATCHER),
    query=RosterQuery,
    response=list[ShiftPublic],
)
async def list_roster(request: web.Request, query: RosterQuery) -> list[ShiftPublic]:
    """Admins and dispatchers see the whole roster."""
    ctx = request.app[context_key]
    now = ctx.clock.now()
    start = query.from_ or now - timedelta(days=1)
    end = query.to or now + timedelta(days=14)
    views = await roster_service.list_shifts(ctx, start=start, end=end, specialty=query.specialty)
    return [_shift(view) for view in views]


@endpoint(
    routes,
    "POST",
    "/api/roster/shifts",
    summary="Add a shift (refuses overlaps, end before start, more than 24 h, a specialty the doctor lacks)",
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    body=ShiftCreate,
    response=ShiftPublic,
    status=201,
    errors=[404, 409],
)
async def create_shift(request: web.Request, body: ShiftCreate) -> ShiftPublic:
    """Admins edit the roster; the coverage check re-runs afterwards."""
    view = await roster_service.create_shift(
        request.app[context_key],
        doctor_id=body.doctor_id,
        doctor_username=body.doctor_username,
        specialty=body.specialty,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return _shift(view)


@endpoint(
    routes,
    "PATCH",
    "/api/roster/shifts/{shift_id}",
    summary="Change a shift (checked like a new one)",
    tags=["roster"],
    roles=(ROLE_ADMIN,),
    body=ShiftUpdate,
    response=ShiftPublic,
    errors=[404, 409],
)
async def update_shift(request: web.Request, body: ShiftUpdate) -> ShiftPublic:
    """Partial update: only the given fields change."""
    view = await roster_service.update_shift(
        request.app[context_key],
        path_int(request, "shift_id"),
        doctor_id=body.doctor_id,
        specialty=body.specialty,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return _shift(view)


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
    response=ImportResult,
    status=201,
    errors=[400, 409, 415, 422],
)
async def import_roster(request: web.Request) -> ImportResult:
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
    return ImportResult(created=result.created, unchanged=result.unchanged, shifts=[_shift(v) for v in result.shifts])


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
    response=list[ShiftPublic],
)
async def my_roster(request: web.Request, query: MineQuery) -> list[ShiftPublic]:
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
    return [_shift(view) for view in views]


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
    response=CoverageReport,
)
async def coverage(request: web.Request, query: CoverageQuery) -> CoverageReport:
    """Runs the check now (recording alerts and the gap metric) and reports it."""
    report = await roster_service.run_coverage_check(request.app[context_key], weeks=query.weeks)
    return _report(report)


@endpoint(
    routes,
    "GET",
    "/api/admin/roster-alerts",
    summary="Roster gap alerts (R11.2): open ones, or all with include_resolved=true",
    tags=["roster", "admin"],
    roles=(ROLE_ADMIN,),
    query=AlertsQuery,
    response=list[AlertPublic],
)
async def roster_alerts(request: web.Request, query: AlertsQuery) -> list[AlertPublic]:
    """Admins see every gap the coverage check found."""
    views = await roster_service.list_alerts(request.app[context_key], include_resolved=query.include_resolved)
    return [_alert(view) for view in views]


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
