"""GET /api/me for each kind of caller."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.factories import Factories, bearer


async def test_policy_login_yields_a_token_that_opens_me(client: TestClient, factories: Factories) -> None:
    person = await factories.insured(full_name="Ivanova Anna")
    tokens = await factories.login_insured(client, person)
    response = await client.get("/api/me", headers=bearer(tokens))
    assert response.status == 200
    body = await response.json()
    assert body["role"] == "insured"
    assert body["id"] == person.id
    assert body["display_name"] == "Ivanova Anna"
    assert body["details"]["policy_number"] == await factories.policy_number_of(person)


async def test_staff_login_yields_a_token_that_opens_me(client: TestClient, factories: Factories) -> None:
    doctor = await factories.staff("doctor", specialties=["cardiology"])
    tokens = await factories.login_staff(client, doctor)
    body = await (await client.get("/api/me", headers=bearer(tokens))).json()
    assert body["role"] == "doctor"
    assert body["details"]["specialties"] == ["cardiology"]


async def test_me_without_a_token_is_401_with_json_error(client: TestClient) -> None:
    response = await client.get("/api/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
