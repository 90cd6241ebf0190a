"""Admin routes for reference data: policyholders and departments, clinics, programs and their clinic lists,
dispatch consoles and branches (R9), policies with their payment schedule (R7.3), and a person's change history.

Handlers parse, authorize (role ``admin``) and call ``server.services.records``; the service's view types
are the responses.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.domain.records import Installment, ProgramTerms
from server.keys import context_key
from server.services.identity import ROLE_ADMIN
from server.services.records import reference
from server.services.records.changes import ChangeView, actor_of, person_history

routes = web.RouteTableDef()
ROLES = (ROLE_ADMIN,)
TAGS = ("admin: records",)
Money = Field(max_digits=14, decimal_places=2)


class PolicyholderCreate(ApiModel):
    """A company (with departments) or a person who buys policies."""

    kind: Literal["corporate", "individual"]
    name: str = Field(min_length=1, max_length=300)
    tax_id: str | None = Field(default=None, max_length=20)
    departments: list[str] = Field(default_factory=list, max_length=500)


class DepartmentsAdd(ApiModel):
    """Departments to add (known ones are kept)."""

    names: list[str] = Field(min_length=1, max_length=500)


class ClinicCreate(ApiModel):
    """A clinic; ``has_access_system`` marks clinics whose passes need a photo (R6.4)."""

    name: str = Field(min_length=1, max_length=300)
    city: str = Field(min_length=1, max_length=100)
    address: str = Field(min_length=1, max_length=400)
    phone: str = Field(min_length=1, max_length=40)
    price_category: int
    has_access_system: bool = False


class ClinicUpdate(ApiModel):
    """Fields to change."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    city: str | None = Field(default=None, min_length=1, max_length=100)
    address: str | None = Field(default=None, min_length=1, max_length=400)
    phone: str | None = Field(default=None, min_length=1, max_length=40)
    price_category: int | None = None
    has_access_system: bool | None = None


class ProgramTermsIn(ApiModel):
    """Components (R10.1), price category, tariff per service type (R4.5), registry offer, allowance (R11.3)."""

    components: list[str] = Field(max_length=10)
    price_category: int
    tariffs: dict[str, Decimal] = Field(description='{"dispatcher": 40000, "registry": 52000}')
    registry_offered: bool = False
    telemedicine_allowance_per_year: int = 0

    def terms(self) -> ProgramTerms:
        """As the domain's type."""
        return ProgramTerms(
            components=self.components,
            price_category=self.price_category,
            tariffs=self.tariffs,
            registry_offered=self.registry_offered,
            telemedicine_allowance_per_year=self.telemedicine_allowance_per_year,
        )


class ProgramCreate(ProgramTermsIn):
    """A program and its clinic list (R2.3)."""

    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = Field(min_length=1, max_length=300)
    clinic_ids: list[int] = Field(default_factory=list, max_length=5000)


class ProgramUpdate(ApiModel):
    """New terms and/or name and/or clinic list."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    terms: ProgramTermsIn | None = None
    clinic_ids: list[int] | None = Field(default=None, max_length=5000)


class ProgramClinics(ApiModel):
    """The program's whole clinic list."""

    clinic_ids: list[int] = Field(max_length=5000)


class DispatchPointCreate(ApiModel):
    """A console or branch with its IANA time zone and local hours (R9; a night may cross midnight, R9.5)."""

    kind: Literal["console", "branch_curator", "federal_line"]
    city: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=1, max_length=40)
    timezone: str = Field(min_length=1, max_length=64)
    hours: dict[str, Any] = Field(description='{"always": true} or {"0": ["08:00", "20:00"], ..., "6": null}')
    notes: str | None = Field(default=None, max_length=2000)


class InstallmentIn(ApiModel):
    """One due premium payment."""

    due_on: date
    amount: Decimal = Money


class PolicyCreate(ApiModel):
    """A policy with its period, payment mode and schedule; the installments add up to the premium (R7.3)."""

    number: str = Field(min_length=1, max_length=40)
    policyholder_id: int = Field(gt=0)
    program_id: int = Field(gt=0)
    starts_on: date
    ends_on: date
    payment_mode: Literal["lump_sum", "installments"]
    premium: Decimal = Money
    installments: list[InstallmentIn] = Field(min_length=1, max_length=60)


class PoliciesQuery(ApiModel):
    """Filter policies."""

    policyholder_id: int | None = Field(default=None, gt=0)


class ClinicsQuery(ApiModel):
    """Filter clinics."""

    city: str | None = Field(default=None, max_length=100)


def _ctx(request: web.Request) -> Any:
    return request.app[context_key]


@endpoint(
    routes,
    "POST",
    "/api/admin/policyholders",
    summary="Create a policyholder (corporate with departments, or individual)",
    tags=TAGS,
    roles=ROLES,
    body=PolicyholderCreate,
    response=reference.PolicyholderView,
    status=201,
    errors=[400],
)
async def create_policyholder(request: web.Request, body: PolicyholderCreate) -> reference.PolicyholderView:
    """Audited; departments are what an insured list may name."""
    return await reference.create_policyholder(
        _ctx(request),
        actor_of(current_principal(request)),
        kind=body.kind,
        name=body.name,
        tax_id=body.tax_id,
        departments=body.departments,
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/policyholders",
    summary="Every policyholder with its departments",
    tags=TAGS,
    roles=ROLES,
    response=list[reference.PolicyholderView],
)
async def list_policyholders(request: web.Request) -> list[reference.PolicyholderView]:
    """By name."""
    return await reference.list_policyholders(_ctx(request))


@endpoint(
    routes,
    "GET",
    "/api/admin/policyholders/{policyholder_id}",
    summary="One policyholder",
    tags=TAGS,
    roles=ROLES,
    response=reference.PolicyholderView,
    errors=[404],
)
async def get_policyholder(request: web.Request) -> reference.PolicyholderView:
    """With departments."""
    return await reference.get_policyholder(_ctx(request), path_int(request, "policyholder_id"))


@endpoint(
    routes,
    "POST",
    "/api/admin/policyholders/{policyholder_id}/departments",
    summary="Add departments",
    tags=TAGS,
    roles=ROLES,
    body=DepartmentsAdd,
    response=reference.PolicyholderView,
    errors=[400, 404],
)
async def add_departments(request: web.Request, body: DepartmentsAdd) -> reference.PolicyholderView:
    """Corporate policyholders only."""
    return await reference.add_departments(
        _ctx(request), actor_of(current_principal(request)), path_int(request, "policyholder_id"), body.names
    )


@endpoint(
    routes,
    "POST",
    "/api/admin/clinics",
    summary="Create a clinic (city, address, phone, price category, access-system flag R6.4)",
    tags=TAGS,
    roles=ROLES,
    body=ClinicCreate,
    response=reference.ClinicView,
    status=201,
    errors=[400],
)
async def create_clinic(request: web.Request, body: ClinicCreate) -> reference.ClinicView:
    """Audited."""
    return await reference.create_clinic(_ctx(request), actor_of(current_principal(request)), **body.model_dump())


@endpoint(
    routes,
    "PATCH",
    "/api/admin/clinics/{clinic_id}",
    summary="Change a clinic",
    tags=TAGS,
    roles=ROLES,
    body=ClinicUpdate,
    response=reference.ClinicView,
    errors=[400, 404],
)
async def update_clinic(request: web.Request, body: ClinicUpdate) -> reference.ClinicView:
    """Only the given fields change."""
    return await reference.update_clinic(
        _ctx(request),
        actor_of(current_principal(request)),
        path_int(request, "clinic_id"),
        **body.model_dump(exclude_none=True),
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/clinics",
    summary="Clinics, optionally of one city",
    tags=TAGS,
    roles=ROLES,
    query=ClinicsQuery,
    response=list[reference.ClinicView],
)
async def list_clinics(request: web.Request, query: ClinicsQuery) -> list[reference.ClinicView]:
    """By city and name."""
    return await reference.list_clinics(_ctx(request), query.city)


@endpoint(
    routes,
    "POST",
    "/api/admin/programs",
    summary="Create a program with its clinic list; components R10.1, "
    "tariffs per service type (never negative; registry needs its tariff, R4.5)",
    tags=TAGS,
    roles=ROLES,
    body=ProgramCreate,
    response=reference.ProgramView,
    status=201,
    errors=[400, 404, 409],
)
async def create_program(request: web.Request, body: ProgramCreate) -> reference.ProgramView:
    """Audited."""
    return await reference.create_program(
        _ctx(request),
        actor_of(current_principal(request)),
        code=body.code,
        name=body.name,
        terms=body.terms(),
        clinic_ids=body.clinic_ids,
    )


@endpoint(
    routes,
    "PATCH",
    "/api/admin/programs/{program_id}",
    summary="Change a program's name, terms or clinic list",
    tags=TAGS,
    roles=ROLES,
    body=ProgramUpdate,
    response=reference.ProgramView,
    errors=[400, 404],
)
async def update_program(request: web.Request, body: ProgramUpdate) -> reference.ProgramView:
    """Audited with old and new values."""
    return await reference.update_program(
        _ctx(request),
        actor_of(current_principal(request)),
        path_int(request, "program_id"),
        name=body.name,
        terms=body.terms.terms() if body.terms else None,
        clinic_ids=body.clinic_ids,
    )


@endpoint(
    routes,
    "PUT",
    "/api/admin/programs/{program_id}/clinics",
    summary="Replace a program's clinic list (R2.3)",
    tags=TAGS,
    roles=ROLES,
    body=ProgramClinics,
    response=reference.ProgramView,
    errors=[404],
)
async def set_program_clinics(request: web.Request, body: ProgramClinics) -> reference.ProgramView:
    """An unknown clinic id is a 404 naming it."""
    return await reference.update_program(
        _ctx(request),
        actor_of(current_principal(request)),
        path_int(request, "program_id"),
        clinic_ids=body.clinic_ids,
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/programs",
    summary="Every program with its clinic list",
    tags=TAGS,
    roles=ROLES,
    response=list[reference.ProgramView],
)
async def list_programs(request: web.Request) -> list[reference.ProgramView]:
    """By code."""
    return await reference.list_programs(_ctx(request))


@endpoint(
    routes,
    "POST",
    "/api/admin/dispatch-points",
    summary="Create a dispatch console, branch curator or federal line with its time zone and hours (R9)",
    tags=TAGS,
    roles=ROLES,
    body=DispatchPointCreate,
    response=reference.DispatchPointView,
    status=201,
    errors=[400],
)
async def create_dispatch_point(request: web.Request, body: DispatchPointCreate) -> reference.DispatchPointView:
    """An unknown time zone or malformed hours is a 400 naming the field."""
    return await reference.create_dispatch_point(
        _ctx(request), actor_of(current_principal(request)), **body.model_dump()
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/dispatch-points",
    summary="Every dispatch point (R9)",
    tags=TAGS,
    roles=ROLES,
    response=list[reference.DispatchPointView],
)
async def list_dispatch_points(request: web.Request) -> list[reference.DispatchPointView]:
    """By city."""
    return await reference.list_dispatch_points(_ctx(request))


@endpoint(
    routes,
    "POST",
    "/api/admin/policies",
    summary="Create a policy with its period, payment mode and installment schedule (R7.3)",
    tags=TAGS,
    roles=ROLES,
    body=PolicyCreate,
    response=reference.PolicyView,
    status=201,
    errors=[400, 404, 409],
)
async def create_policy(request: web.Request, body: PolicyCreate) -> reference.PolicyView:
    """The installments fall within the period and add up to the premium."""
    return await reference.create_policy(
        _ctx(request),
        actor_of(current_principal(request)),
        number=body.number,
        policyholder_id=body.policyholder_id,
        program_id=body.program_id,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        payment_mode=body.payment_mode,
        premium=body.premium,
        installments=[Installment(i.due_on, i.amount) for i in body.installments],
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/policies",
    summary="Policies with their schedules, optionally of one policyholder",
    tags=TAGS,
    roles=ROLES,
    query=PoliciesQuery,
    response=list[reference.PolicyView],
)
async def list_policies(request: web.Request, query: PoliciesQuery) -> list[reference.PolicyView]:
    """By number."""
    return await reference.list_policies(_ctx(request), query.policyholder_id)


@endpoint(
    routes,
    "GET",
    "/api/admin/persons/{person_id}/history",
    summary="Every change to an insured person: who, when, what (old -> new), from which file (reading it is audited)",
    tags=TAGS,
    roles=ROLES,
    response=list[ChangeView],
)
async def get_person_history(request: web.Request) -> list[ChangeView]:
    """Oldest first; nothing is ever deleted, so removed persons keep their history."""
    return await person_history(_ctx(request), actor_of(current_principal(request)), path_int(request, "person_id"))
