"""Health, readiness, metrics, request ids, security headers, the OpenAPI document and error envelopes."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.factories import Factories


async def test_healthz_and_readyz(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"


async def test_readyz_reports_503_when_the_database_is_gone(client: TestClient) -> None:
    from server.keys import engine_key

    engine = client.app[engine_key]
    await engine.dispose()
    engine.url = engine.url.set(database="/nonexistent/dir/x.sqlite3" if engine.dialect.name == "sqlite" else "nope_db")
    # A fresh engine on a bad URL is what a dead database looks like to the pool.
    from server.db.engine import make_engine

    client.app._state[engine_key] = make_engine(engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["database"] == "unreachable"
    await client.app[engine_key].dispose()


async def test_metrics_are_exposed_in_prometheus_format(client: TestClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'telemed_http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_every_response_has_a_request_id_and_security_headers(client: TestClient) -> None:
    response = await client.get("/api/me")
    assert len(response.headers["X-Request-Id"]) == 32
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_unknown_route_and_wrong_method_are_json_errors(client: TestClient) -> None:
    missing = await client.get("/api/nope")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.delete("/api/auth/login")
    assert wrong.status == 405
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"


async def test_openapi_document_describes_every_api_route(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/") and route.method != "HEAD" and path != "/api/ws":
            assert (route.method, path) in documented, f"{route.method} {path} missing from OpenAPI"
    login = document["paths"]["/api/auth/policy/verify"]["post"]
    assert "401" in login["responses"] and "422" in login["responses"]
    schema_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.split("/")[-1] in document["components"]["schemas"]


async def test_openapi_examples_validate_against_the_running_app(client: TestClient, factories: Factories) -> None:
    """Responses of the live app carry the fields the document promises (checked for /api/me)."""
    document = await (await client.get("/api/openapi.json")).json()
    person = await factories.insured()
    tokens = await factories.login_insured(client, person)
    me = await (await client.get("/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})).json()
    me_schema = document["components"]["schemas"]["MeResponse"]
    assert set(me_schema["required"]) <= set(me)
    token_schema = document["components"]["schemas"]["TokenResponse"]
    assert set(token_schema["required"]) <= set(tokens)


async def test_landing_page_styles_load_under_the_content_security_policy(client) -> None:
    """The CSP forbids inline styles, so the page must link its stylesheet from /static/."""
    page = await client.get("/")
    html = await page.text()
    assert "<style" not in html and "style=" not in html and 'href="/static/app/app.css"' in html
    style = await client.get("/static/app/app.css")
    assert style.status == 200 and "font-family" in await style.text()
