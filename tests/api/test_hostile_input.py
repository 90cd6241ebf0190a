"""Hostile input on every route from the OpenAPI document: a 4xx with a JSON body, never a 500.

Both backends run these (the real run on PostgreSQL, where a NUL in text and a 20-digit integer
used to be 500s while SQLite stored them). The routes come from ``/api/openapi.json``, so a new
route is covered the day it is added.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.db.models import DutyShift
from tests.factories import Factories, bearer

# Unicode digits that str.isdigit() accepts: superscript two, Arabic-Indic three, full-width three,
# mathematical double-struck zero; then 64-bit overflows, zero, negatives and plain junk.
NON_ASCII_IDS = ["\u00b2", "\u0663", "\uff13", "\U0001d7d8", "\u0661\u0662"]
HOSTILE_IDS = [*NON_ASCII_IDS, "9" * 19, "1" * 10_000, "0", "-1", "1\x00", " 1", "1.0", "1e3", "%00"]
HOSTILE_STRINGS = [
    "\x00",
    "abc\x00def",
    "\ud800",
    "x\udfffy",
    *NON_ASCII_IDS,
    "9" * 40,
    "' OR 1=1 --",
    "\r\n{\"level\":\"fake\"}",
    "\u202e\u0000",
    "a" * 5000,
]
HOSTILE_INTS = [2**63, -(2**63) - 1, 10**40, 2**64 + 1, 0, -1, 2**63 - 1, 2**31]
ROLES = ("insured", "doctor", "dispatcher", "hr", "admin")
EXAMPLES = 12
SKIPPED = {("post", "/api/auth/logout")}  # would end the session the rest of the run uses


async def _tokens(client: TestClient, factories: Factories) -> dict[str, dict[str, str]]:
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    await factories.consultation(patient, doctor)
    tokens = {
        "insured": bearer(await factories.login_insured(client, patient)),
        "doctor": bearer(await factories.login_staff(client, doctor)),
    }
    for role in ("dispatcher", "hr", "admin"):
        tokens[role] = bearer(await factories.login_staff(client, await factories.staff(role)))
    return tokens


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if (method, path) not in SKIPPED and path != "/api/ws"
    ]


def _headers(operation: dict[str, Any], tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    roles = operation.get("x-roles")
    return tokens[roles[0]] if roles else {}


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


hostile_strings = st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=12).map(lambda s: s + "\x00" + s)
hostile_ints = st.sampled_from(HOSTILE_INTS) | st.integers(min_value=-(2**70), max_value=2**70)


def _value(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Mostly plausible values of the schema's type, each field sometimes hostile."""
    schema = _resolve(schema, document)
    if depth > 3:
        return st.none()
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([_value(s, document, depth + 1) for s in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | hostile_strings
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    fmt = schema.get("format", "")
    if kind == "string":
        if fmt == "date":
            return st.dates().map(lambda d: d.isoformat()) | hostile_strings
        if fmt == "date-time":
            return st.sampled_from(["2026-06-10T09:00:00+00:00", "9999-12-31T23:59:59+14:00"]) | hostile_strings
        return hostile_strings | st.text(min_size=1, max_size=20)
    if kind == "integer":
        return hostile_ints
    if kind == "number":
        return hostile_ints | st.sampled_from(["1e400", "-0", 1e308, "NaN"])
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(_value(schema.get("items", {}), document, depth + 1), max_size=3)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return st.fixed_dictionaries(
            {name: _value(prop, document, depth + 1) for name, prop in properties.items()}
        )
    return hostile_strings | hostile_ints | st.none()


def _request_strategy(path: str, operation: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    path_params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
    query_params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries(
                {name: st.sampled_from(HOSTILE_IDS) | st.integers(1, 50).map(str) for name in path_params}
            ),
            "query": st.fixed_dictionaries(
                {},
                optional={p["name"]: _value(p["schema"], document).map(_as_query) for p in query_params},
            ),
            "body": _value(body, document) if body is not None else st.none(),
        }
    )


def _as_query(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe=""), path)


async def _assert_clean_4xx_or_success(response: Any, what: str) -> None:
    text = await response.text()
    assert response.status < 500, f"{what} -> {response.status} {text[:300]}"
    if response.status >= 400 and response.content_type == "application/json":
        assert "error" in json.loads(text), what


async def test_non_ascii_and_unbounded_ids_are_404_on_every_id_route(client: TestClient, factories: Factories) -> None:
    """`/api/consultations/%C2%B2` was a 500 and `%D9%A3` reached object 3: now every id route says 404."""
    document = await (await client.get("/api/openapi.json")).json()
    tokens = await _tokens(client, factories)
    checked = 0
    for method, path, operation in _operations(document):
        names = re.findall(r"\{([^}]+)\}", path)
        if not names:
            continue
        for raw in HOSTILE_IDS:
            url = _url(path, dict.fromkeys(names, raw))
            response = await client.request(method.upper(), url, json={}, headers=_headers(operation, tokens))
            await _assert_clean_4xx_or_success(response, f"{method} {url[:80]}")
            if raw in NON_ASCII_IDS or raw.startswith("9"):
                assert response.status in (404, 400, 422), f"{method} {url} -> {response.status}"
            checked += 1
    assert checked >= 24 * len(HOSTILE_IDS)


async def test_arabic_indic_three_does_not_delete_shift_3(client: TestClient, factories: Factories) -> None:
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))
    doctor = await factories.staff("doctor")
    shifts = [await factories.shift(doctor, starts_at=factories.clock.now().replace(day=d)) for d in (1, 2, 3)]
    target = shifts[-1].id
    arabic = "".join(chr(0x0660 + int(c)) for c in str(target))
    response = await client.delete(f"/api/roster/shifts/{quote(arabic)}", headers=admin)
    assert response.status == 404
    async with factories.session_factory() as session:
        assert await session.get(DutyShift, target) is not None


async def test_nul_in_any_body_string_or_query_parameter_is_refused_identically(
    client: TestClient, factories: Factories
) -> None:
    """The unauthenticated login routes and a person search: 400 refused_input on both backends."""
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    cases = [
        client.post("/api/auth/login", json={"username": "dr\x00x", "password": "p"}),
        client.post("/api/auth/policy/verify", json={"challenge_id": "a\x00", "code": "123456"}),
        client.post("/api/auth/policy/start", json={"policy_number": "P\x00", "birth_date": "1990-01-01"}),
        client.get("/api/dispatch/persons", params={"name": "Iv\x00an"}, headers=dispatcher),
        client.get("/api/dispatch/persons", params={"policy_number": "\x00"}, headers=dispatcher),
        client.get("/api/healthz", params={"x": "\x00"}),
        client.post("/api/auth/login", data=b'{"username": "\\ud800", "password": "p"}'),
    ]
    for pending in cases:
        response = await pending
        body = await response.json()
        assert response.status == 400, body
        assert body["error"]["code"] == "refused_input"
        assert "\x00" not in json.dumps(body)


async def test_oversized_integers_and_non_json_constants_are_refused(client: TestClient, factories: Factories) -> None:
    insured = bearer(await factories.login_insured(client, await factories.insured()))
    response = await client.get("/api/consultations/1/messages", params={"after_seq": "9" * 25}, headers=insured)
    assert response.status == 400
    assert (await response.json())["error"]["details"]["fields"][0]["field"] == "query.after_seq"
    deep = await client.post("/api/auth/login", data=b"[" * 100_000 + b"]" * 100_000)
    assert deep.status in (400, 413)
    nan = await client.post("/api/auth/login", data=b'{"username": NaN, "password": "p"}')
    assert nan.status == 400


async def test_405_names_the_allowed_methods(client: TestClient) -> None:
    response = await client.put("/api/auth/login", json={})
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["error"]["code"] == "method_not_allowed"


@pytest.mark.timeout(400)  # every route x hypothesis examples; ~85 s alone on a loaded 2-core machine
async def test_every_route_survives_hostile_strings_and_integers(client: TestClient, factories: Factories) -> None:
    """Property test over every documented route: path, query and body values drawn by hypothesis."""
    document = await (await client.get("/api/openapi.json")).json()
    tokens = await _tokens(client, factories)
    operations = _operations(document)
    assert len(operations) > 50

    loop = asyncio.get_running_loop()
    strategies = [(m, p, o, _request_strategy(p, o, document)) for m, p, o in operations]

    async def send(method: str, path: str, operation: dict[str, Any], drawn: dict[str, Any]) -> None:
        url = _url(path, drawn["path"])
        kwargs: dict[str, Any] = {"params": drawn["query"], "headers": _headers(operation, tokens)}
        if drawn["body"] is not None:
            kwargs["data"] = json.dumps(drawn["body"]).encode()
            kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
        response = await client.request(method.upper(), url, **kwargs)
        await _assert_clean_4xx_or_success(response, f"{method} {url[:80]} {str(drawn)[:300]}")

    # Hypothesis drives synchronously, so it runs in a worker thread and hands each request to the
    # test's event loop (where the app and its database connections live).
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        requests = [(m, p, o, data.draw(s, label=f"{m} {p}")) for m, p, o, s in strategies]
        failures = []
        for method, path, operation, drawn in requests:
            try:
                asyncio.run_coroutine_threadsafe(send(method, path, operation, drawn), loop).result(timeout=30)
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0])
        assert not failures, "\n".join(failures)

    await asyncio.to_thread(check)
