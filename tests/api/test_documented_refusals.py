"""Business-rule refusals of schema-valid input are documented in the OpenAPI document (issue 11 item 4).

One place decides a route's refusal statuses (``EndpointSpec.error_statuses``: the declared
``errors`` plus what validation, ids and roles add); the document lists exactly those, and a
handler refusing with a status outside them is recorded, so the suite names the route.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.api import endpoints
from server.api.endpoints import endpoint
from server.api.openapi import endpoint_specs
from server.domain.errors import Conflict, RateLimited


async def test_the_document_lists_every_routes_refusals_from_the_one_place(client: TestClient) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    specs = endpoint_specs(client.app)
    assert specs
    for spec in specs:
        responses = document["paths"][spec.path][spec.method.lower()]["responses"]
        listed = {int(status) for status in responses} - {spec.status}
        assert listed == spec.error_statuses(), (spec.method, spec.path)
        assert set(spec.errors) <= listed
        for status in listed:
            assert responses[str(status)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


async def test_policy_start_documents_its_refusals(client: TestClient) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    responses = document["paths"]["/api/auth/policy/start"]["post"]["responses"]
    assert {"409", "422", "429", "503"} <= set(responses)


async def test_a_refusal_the_route_does_not_declare_is_recorded(aiohttp_client: AiohttpClient) -> None:
    routes = web.RouteTableDef()

    @endpoint(routes, "POST", "/probe/{item_id}", summary="probe", errors=[429])
    async def probe(request: web.Request) -> None:
        if request.match_info["item_id"] == "1":
            raise RateLimited("slow down")
        raise Conflict("already there")

    app = web.Application()
    app.router.add_routes(routes)
    client = await aiohttp_client(app)
    endpoints.UNDOCUMENTED_REFUSALS.pop(("POST", "/probe/{item_id}"), None)
    try:
        await client.post("/probe/1")
        assert ("POST", "/probe/{item_id}") not in endpoints.UNDOCUMENTED_REFUSALS  # 429 is declared
        await client.post("/probe/2")
        assert endpoints.UNDOCUMENTED_REFUSALS[("POST", "/probe/{item_id}")] == {409}
    finally:
        endpoints.UNDOCUMENTED_REFUSALS.pop(("POST", "/probe/{item_id}"), None)
