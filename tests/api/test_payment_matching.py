"""R7.6 through the API (issue 9 item 11): a payment is matched by the reference it carries; an ambiguous
one waits for an admin, who sees it in the list of unmatched payments and matches it to a person's schedule."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import AttachmentLetter, InsuredPerson
from tests.api.dispatch_support import build_world, count_rows, rules_of
from tests.api.test_coverage import pay_policy_premiums
from tests.factories import Factories, bearer


async def _two_switches(client: TestClient, factories: Factories) -> tuple[Any, list[InsuredPerson], list[Any]]:
    """Two persons of one policy each switch to registry: they owe the same additional premium."""
    world = await build_world(client, factories)
    await pay_policy_premiums(client, world, "2026-06-10")
    second = await factories.insured(policy=world.policy)
    applications = []
    for person in (world.person, second):
        headers = bearer(await factories.login_insured(client, person))
        response = await client.post(
            "/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=headers
        )
        assert response.status == 201, await response.text()
        applications.append((await response.json())["application"])
    assert applications[0]["schedule"][0]["amount"] == applications[1]["schedule"][0]["amount"]
    return world, [world.person, second], applications


async def test_an_ambiguous_payment_waits_and_a_reference_decides_r7_6(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R7.6: the bare amount could settle either person's schedule: it is not guessed, it waits (nothing
    attached); a payment naming the second agreement attaches the second person only."""
    world, persons, applications = await _two_switches(client, factories)
    amount = applications[0]["schedule"][0]["amount"]

    bare = await client.post(
        "/api/admin/payments", json={"policy_id": world.policy.id, "amount": amount}, headers=world.admin
    )
    assert bare.status == 201, await bare.text()
    waiting = await bare.json()
    assert waiting["waiting"] is True and waiting["payment"]["scheduled_payment_id"] is None
    assert rules_of(waiting) == ["R7.6"] and waiting["attachment_letters"] == [] and waiting["activations"] == []
    assert await count_rows(session_factory, AttachmentLetter) == 0

    named = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": amount, "reference": applications[1]["agreement_number"]},
        headers=world.admin,
    )
    assert named.status == 201, await named.text()
    body = await named.json()
    assert body["waiting"] is False and body["payment"]["reference"] == applications[1]["agreement_number"]
    assert [a["insured_person_id"] for a in body["activations"]] == [persons[1].id]

    listed = await (await client.get("/api/admin/payments/unmatched", headers=world.admin)).json()
    assert [w["payment"]["id"] for w in listed] == [waiting["payment"]["id"]]
    assert listed[0]["policy_number"] == world.policy.number and listed[0]["reasons"][0]["rule"] == "R7.6"


async def test_an_admin_matches_a_waiting_payment_to_a_persons_schedule_r7_6(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R7.6 with R7.1, R4.6: matching bundles it that day, for that person only; twice is 409; the list empties."""
    world, persons, applications = await _two_switches(client, factories)
    amount = applications[0]["schedule"][0]["amount"]
    bare = await client.post(
        "/api/admin/payments", json={"policy_id": world.policy.id, "amount": amount}, headers=world.admin
    )
    payment_id = (await bare.json())["payment"]["id"]

    target = applications[0]["schedule"][0]["id"]
    matched = await client.post(
        f"/api/admin/payments/{payment_id}/match", json={"scheduled_payment_id": target}, headers=world.admin
    )
    assert matched.status == 200, await matched.text()
    body = await matched.json()
    assert body["payment"]["scheduled_payment_id"] == target and body["payment"]["bundled_on"] == "2026-06-10"
    assert [a["insured_person_id"] for a in body["activations"]] == [persons[0].id]
    assert [g["letter"]["insured_person_id"] for g in body["attachment_letters"]] == [persons[0].id]
    assert await (await client.get("/api/admin/payments/unmatched", headers=world.admin)).json() == []

    again = await client.post(
        f"/api/admin/payments/{payment_id}/match", json={"scheduled_payment_id": target}, headers=world.admin
    )
    assert again.status == 409 and (await again.json())["error"]["code"] == "already_matched"
    missing = await client.post(
        "/api/admin/payments/999999/match", json={"scheduled_payment_id": target}, headers=world.admin
    )
    assert missing.status == 404


async def test_a_reference_that_names_no_schedule_waits_too_r7_6(client: TestClient, factories: Factories) -> None:
    """R7.6: a mistyped reference is not guessed either: the money is recorded as waiting, with the reason."""
    world, _, applications = await _two_switches(client, factories)
    response = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": applications[0]["schedule"][0]["amount"], "reference": "AA-0"},
        headers=world.admin,
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["waiting"] is True and "AA-0" in body["reasons"][0]["message"]
    forbidden = await client.get("/api/admin/payments/unmatched", headers=world.insured)
    assert forbidden.status == 403
