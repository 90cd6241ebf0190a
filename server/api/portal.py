"""Routes the browser app needs: my access log (insured), ICD-10 search and the patient card (doctor)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.domain.icd10 import search_icd10
from server.keys import context_key
from server.services import portal as service
from server.services.identity import ROLE_DOCTOR, ROLE_INSURED
from server.services.portal import AccessEntry, PatientCard

routes = web.RouteTableDef()


class AccessLogPublic(ApiModel):
    """Accesses to my medical data by others, newest first."""

    events: list[AccessEntry]


class Icd10Query(ApiModel):
    q: str = Field(min_length=1, max_length=80, description="a code prefix (J06) or words of the name")
    limit: int = Field(default=20, ge=1, le=50)


class Icd10Public(ApiModel):
    code: str
    description: str


class Icd10Results(ApiModel):
    results: list[Icd10Public]


@endpoint(
    routes,
    "GET",
    "/api/me/access-log",
    summary="Who accessed my medical data and when (doctors, dispatchers, admins), from the audit trail",
    tags=["coverage"],
    roles=(ROLE_INSURED,),
    response=AccessLogPublic,
    errors=[401, 403],
)
async def my_access_log(request: web.Request) -> AccessLogPublic:
    """Nothing is filtered out: the person sees every audited access by someone else (D1)."""
    entries = await service.access_log(request.app[context_key], current_principal(request))
    return AccessLogPublic(events=entries)


@endpoint(
    routes,
    "GET",
    "/api/icd10",
    summary="Search ICD-10 categories and subcategories by code prefix or by words of the WHO name",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    query=Icd10Query,
    response=Icd10Results,
    errors=[401, 403, 422],
)
async def icd10_search(request: web.Request, query: Icd10Query) -> Icd10Results:
    """The doctor picks the code when closing a consultation; completion validates it again."""
    found = search_icd10(query.q, limit=query.limit)
    return Icd10Results(results=[Icd10Public(code=c.code, description=c.description) for c in found])


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}/patient-card",
    summary="The patient's coverage summary for the doctor offered or holding this consultation (audited)",
    tags=["consultations"],
    roles=(ROLE_DOCTOR,),
    response=PatientCard,
    errors=[401, 403, 404],
)
async def patient_card(request: web.Request) -> PatientCard:
    """No more than the consultation needs; any other doctor gets 404."""
    card = await service.patient_card(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )
    return card
