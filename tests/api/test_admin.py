"""Admin API: bundling payments generates attachment letters for registry persons (R6.1, R7.1-R7.3); bad input
is a clear 4xx and writes nothing; double bundling is 409; only admins may do it."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import AttachmentLetter, CoverageDecisionRecord, Payment
from server.domain.calendar import next_business_day
from tests.api.dispatch_support import World, build_world, count_rows, rules_of
from tests.factories import Factories

QUARTERLY = [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]


async def _due(client: TestClient, world: World) -> list[dict]:
    response = await client.get(f"/api/admin/payments/due?policy_id={world.policy.id}", headers=world.admin)
    assert response.status == 200
    return list(await response.json())


async def test_bundling_an_installment_generates_a_letter_per_registry_person(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R1.2, R6.1, R7.1-R7.3: a policy mixes types; one letter per registry person, none for dispatcher ones."""
    world = await build_world(client, factories, payment_mode="installments", installments=QUARTERLY)
    first = await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic.id, birth_date=date(1980, 1, 1)
    )
    second = await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic_b.id, birth_date=date(1981, 1, 1)
    )
    due = await _due(client, world)
    assert [row["due_on"] for row in due] == ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"]
    response = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": due[0]["amount"], "bundled_on": "2026-03-27"},
        headers=world.admin,
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["payment"]["scheduled_payment_id"] == due[0]["id"]  # matched by amount: the earliest unpaid one
    assert body["payment"]["purpose"] == "premium" and body["activations"] == []
    letters = {item["letter"]["insured_person_id"]: item for item in body["attachment_letters"]}
    assert set(letters) == {first.id, second.id}
    assert sorted(item["letter"]["number"] for item in letters.values()) == ["AL-2026-000001", "AL-2026-000002"]
    mine = letters[first.id]["letter"]
    assert mine["clinic_id"] == world.clinic.id
    assert next_business_day(date(2026, 3, 27)) == date(2026, 3, 30)
    assert (mine["generated_on"], mine["send_on"]) == ("2026-03-27", "2026-03-30")  # Friday -> Monday (R7.2)
    assert mine["valid_until"] == "2026-04-01"  # R7.3: until the next scheduled payment
    kind = CoverageDecisionRecord.kind == "attachment_letter"
    assert await count_rows(session_factory, CoverageDecisionRecord, kind) == 2
    assert [row["due_on"] for row in await _due(client, world)] == ["2026-04-01", "2026-07-01", "2026-10-01"]


async def test_lump_sum_letter_runs_to_the_end_of_the_policy_r7_3(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic.id, birth_date=date(1980, 1, 1)
    )
    [due] = await _due(client, world)
    response = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": due["amount"], "scheduled_payment_id": due["id"]},
        headers=world.admin,
    )
    [generated] = (await response.json())["attachment_letters"]
    assert generated["letter"]["valid_until"] == "2026-12-31" and "R7.3" in rules_of(generated)


async def test_concurrent_double_bundling_gives_one_payment_and_one_409(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    [due] = await _due(client, world)
    payload = {"policy_id": world.policy.id, "amount": due["amount"], "scheduled_payment_id": due["id"]}
    responses = await asyncio.gather(
        *(client.post("/api/admin/payments", json=payload, headers=world.admin) for _ in range(2))
    )
    assert sorted(r.status for r in responses) == [201, 409]
    assert await count_rows(session_factory, Payment) == 1


async def test_bundling_bad_input_is_4xx_and_writes_nothing(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic.id, birth_date=date(1980, 1, 1)
    )
    other_policy = await factories.policy(program=world.program)
    [due] = await _due(client, world)
    amount = due["amount"]
    cases = [
        ({"policy_id": world.policy.id, "amount": amount, "bundled_on": "2026-06-11"}, 400, "future_date"),
        ({"policy_id": world.policy.id, "amount": "1.00", "scheduled_payment_id": due["id"]}, 400, "amount_mismatch"),
        ({"policy_id": world.policy.id, "amount": "1.00"}, 400, "no_matching_schedule"),
        ({"policy_id": 999_999, "amount": amount}, 404, "not_found"),
        ({"policy_id": other_policy.id, "amount": amount, "scheduled_payment_id": due["id"]}, 404, "not_found"),
        ({"policy_id": world.policy.id, "amount": "-5"}, 422, "validation_error"),
        ({"policy_id": world.policy.id, "amount": "1.001"}, 422, "validation_error"),
    ]
    for payload, status, code in cases:
        response = await client.post("/api/admin/payments", json=payload, headers=world.admin)
        assert response.status == status, payload
        assert (await response.json())["error"]["code"] == code, payload
    ended = await factories.policy(program=world.program, starts_on=date(2025, 1, 1), ends_on=date(2025, 12, 31))
    response = await client.post(
        "/api/admin/payments",
        json={"policy_id": ended.id, "amount": str(ended.premium)},
        headers=world.admin,
    )
    assert response.status == 422 and "R7.3" in rules_of(await response.json())
    assert await count_rows(session_factory, Payment) == 0
    assert await count_rows(session_factory, AttachmentLetter) == 0


async def test_admin_routes_are_for_admins_only(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    for headers in (world.dispatcher, world.insured):
        for method, path in (
            ("GET", "/api/admin/payments/due"),
            ("GET", "/api/admin/attachment-letters"),
            ("POST", "/api/admin/attachment-letters/1/sent"),
        ):
            response = await client.request(method, path, headers=headers)
            assert response.status == 403, (method, path)
    response = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": str(Decimal("1.00"))},
        headers=world.dispatcher,
    )
    assert response.status == 403
    assert (await client.post("/api/admin/attachment-letters/999/sent", headers=world.admin)).status == 404
