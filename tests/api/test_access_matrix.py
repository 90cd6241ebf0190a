"""Every protected route, called by every role it does not list: 401 anonymous, 403 wrong role (C1, E5).

Generated from the OpenAPI document, so a new route is covered the day it is added. HR in
particular can reach nothing but its own identity: no consultation, coverage or chat route
answers an HR token (R12.5, checklist E5).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.factories import Factories, bearer

ROLES = ("insured", "doctor", "dispatcher", "hr", "admin")


async def _tokens_by_role(client: TestClient, factories: Factories) -> dict[str, dict[str, str]]:
    tokens = {"insured": bearer(await factories.login_insured(client, await factories.insured()))}
    for role in ROLES[1:]:
        tokens[role] = bearer(await factories.login_staff(client, await factories.staff(role)))
    return tokens


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return await client.request(method, _concrete(path), json={}, headers=headers)


async def test_protected_routes_refuse_anonymous_and_wrong_roles(client: TestClient, factories: Factories) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    tokens = await _tokens_by_role(client, factories)
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            roles = operation.get("x-roles")
            if roles is None:
                continue
            anonymous = await _call(client, method.upper(), path, {})
            assert anonymous.status == 401, f"{method} {path} anonymous -> {anonymous.status}"
            for role in ROLES:
                if role in roles:
                    continue
                response = await _call(client, method.upper(), path, tokens[role])
                body = await response.json()
                assert response.status == 403, f"{method} {path} as {role} -> {response.status} {body}"
                assert body["error"]["code"] == "wrong_role"
                checked += 1
    assert checked > 20


async def test_hr_reaches_no_individual_level_route_E5(client: TestClient) -> None:
    """HR may call only identity routes; anything about consultations, coverage or chat excludes it."""
    document = await (await client.get("/api/openapi.json")).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "hr" in (operation.get("x-roles") or []):
                assert path.startswith(("/api/auth/", "/api/me", "/api/hr/")), f"HR may call {method} {path}"
                assert not path.startswith(("/api/me/coverage", "/api/me/requests")), path
