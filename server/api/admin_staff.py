"""Staff accounts (checklist A6): the admin creates, disables, resets, re-roles and logs out staff; a person
sets their own password with the one-time code (``POST /api/auth/password/set``, public)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.keys import context_key
from server.services.identity import ROLE_ADMIN
from server.services.records import staff
from server.services.records.changes import ChangeView, actor_of, staff_history

routes = web.RouteTableDef()
ROLES = (ROLE_ADMIN,)
TAGS = ("admin: staff",)
Role = Literal["doctor", "dispatcher", "hr", "admin"]


class StaffCreate(ApiModel):
    """A doctor (specialties, time zone), dispatcher, HR user (one policyholder) or admin; no password."""

    username: str = Field(min_length=3, max_length=80)
    role: Role
    full_name: str = Field(min_length=1, max_length=300)
    specialties: list[str] = Field(default_factory=list, max_length=20)
    timezone: str | None = Field(default=None, max_length=64)
    hr_policyholder_id: int | None = Field(default=None, gt=0)
    max_active_consultations: int = Field(default=3, ge=1, le=20)


class StaffUpdate(ApiModel):
    """Profile fields (access is unchanged)."""

    full_name: str | None = Field(default=None, min_length=1, max_length=300)
    timezone: str | None = Field(default=None, max_length=64)
    specialties: list[str] | None = Field(default=None, max_length=20)


class RoleChange(ApiModel):
    """The new role (and what it needs)."""

    role: Role
    specialties: list[str] = Field(default_factory=list, max_length=20)
    hr_policyholder_id: int | None = Field(default=None, gt=0)


class StaffQuery(ApiModel):
    """Filter accounts."""

    role: Role | None = None


class PasswordSet(ApiModel):
    """The one-time code and the new password (at least 12 characters)."""

    code: str = Field(min_length=10, max_length=200)
    password: str = Field(min_length=1, max_length=200)


@endpoint(
    routes,
    "POST",
    "/api/admin/staff",
    summary="Create a staff account; the answer carries a one-time "
    "set-password code and link (shown once; no password is chosen by the admin)",
    tags=TAGS,
    roles=ROLES,
    body=StaffCreate,
    response=staff.StaffWithCode,
    status=201,
    errors=[400, 409],
)
async def create_staff(request: web.Request, body: StaffCreate) -> staff.StaffWithCode:
    """Audited."""
    return await staff.create_account(
        request.app[context_key], actor_of(current_principal(request)), **body.model_dump()
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/staff",
    summary="Staff accounts",
    tags=TAGS,
    roles=ROLES,
    query=StaffQuery,
    response=list[staff.StaffView],
)
async def list_staff(request: web.Request, query: StaffQuery) -> list[staff.StaffView]:
    """By username."""
    return await staff.list_accounts(request.app[context_key], query.role)


@endpoint(
    routes,
    "GET",
    "/api/admin/staff/{account_id}",
    summary="One staff account",
    tags=TAGS,
    roles=ROLES,
    response=staff.StaffView,
    errors=[404],
)
async def get_staff(request: web.Request) -> staff.StaffView:
    """Never a password hash."""
    return await staff.get_account(request.app[context_key], path_int(request, "account_id"))


@endpoint(
    routes,
    "PATCH",
    "/api/admin/staff/{account_id}",
    summary="Change name, time zone or a doctor's specialties",
    tags=TAGS,
    roles=ROLES,
    body=StaffUpdate,
    response=staff.StaffView,
    errors=[400, 404],
)
async def update_staff(request: web.Request, body: StaffUpdate) -> staff.StaffView:
    """Audited."""
    return await staff.update_profile(
        request.app[context_key],
        actor_of(current_principal(request)),
        path_int(request, "account_id"),
        **body.model_dump(),
    )


def _action_route(path: str, summary: str, action: str) -> None:
    @endpoint(
        routes, "POST", path, summary=summary, tags=TAGS, roles=ROLES, response=staff.StaffView, errors=[400, 404]
    )
    async def handler(request: web.Request) -> staff.StaffView:
        ctx = request.app[context_key]
        actor = actor_of(current_principal(request))
        account_id = path_int(request, "account_id")
        if action == "disable":
            return await staff.disable_account(ctx, actor, account_id)
        if action == "enable":
            return await staff.enable_account(ctx, actor, account_id)
        return await staff.end_sessions(ctx, actor, account_id)

    handler.__name__ = f"staff_{action}"


_action_route(
    "/api/admin/staff/{account_id}/disable",
    "Disable an account: every session ends and every socket closes at once, on every process",
    "disable",
)
_action_route("/api/admin/staff/{account_id}/enable", "Allow logins again", "enable")
_action_route(
    "/api/admin/staff/{account_id}/end-sessions",
    "Log an account out everywhere (tokens stop, sockets close at once)",
    "end_sessions",
)


@endpoint(
    routes,
    "POST",
    "/api/admin/staff/{account_id}/reset-password",
    summary="Reset a password: the old one "
    "stops working, sessions end, and a one-time code lets the person set a new one",
    tags=TAGS,
    roles=ROLES,
    response=staff.StaffWithCode,
    errors=[404],
)
async def reset_password(request: web.Request) -> staff.StaffWithCode:
    """Audited; the code is shown once."""
    return await staff.reset_password(
        request.app[context_key], actor_of(current_principal(request)), path_int(request, "account_id")
    )


@endpoint(
    routes,
    "PUT",
    "/api/admin/staff/{account_id}/role",
    summary="Change the role: tokens of the old role stop and sockets close at once",
    tags=TAGS,
    roles=ROLES,
    body=RoleChange,
    response=staff.StaffView,
    errors=[400, 404],
)
async def change_role(request: web.Request, body: RoleChange) -> staff.StaffView:
    """A doctor needs specialties, an HR user a corporate policyholder."""
    return await staff.change_role(
        request.app[context_key],
        actor_of(current_principal(request)),
        path_int(request, "account_id"),
        role=body.role,
        specialties=body.specialties,
        hr_policyholder_id=body.hr_policyholder_id,
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/staff/{account_id}/history",
    summary="Every change to a staff account: who, when, what",
    tags=TAGS,
    roles=ROLES,
    response=list[ChangeView],
)
async def history(request: web.Request) -> list[ChangeView]:
    """Oldest first."""
    return await staff_history(request.app[context_key], path_int(request, "account_id"))


@endpoint(
    routes,
    "POST",
    "/api/auth/password/set",
    summary="Set your password with the one-time code an admin gave you (single use, 72 hours)",
    tags=("auth",),
    body=PasswordSet,
    response=staff.StaffView,
    errors=[400, 401],
)
async def set_password(request: web.Request, body: PasswordSet) -> staff.StaffView:
    """Public: the code is the credential."""
    return await staff.set_password_with_code(request.app[context_key], code=body.code, password=body.password)
