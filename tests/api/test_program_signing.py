"""R4.2 through the API (issue 9 item 13): who signs the application to switch to registry.

For a corporate policy the employee asks, and HR of that policyholder approves and signs before the
additional agreement is drawn up and the additional premium goes on the employer's schedule; for an
individual policy the insured person signs and the agreement follows at once.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import ScheduledPayment
from tests.api.dispatch_support import build_world, count_rows, rules_of
from tests.api.test_coverage import pay_policy_premiums
from tests.factories import Factories, bearer


async def test_an_employee_asks_and_hr_of_the_policyholder_approves_and_signs_r4_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R4.2, R4.3, R4.4: no agreement and nothing on the schedule until the employer's HR signs."""
    world = await build_world(client, factories, policyholder_kind="corporate")
    await pay_policy_premiums(client, world, "2026-06-10")
    asked = await client.post("/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=world.insured)
    assert asked.status == 201, await asked.text()
    body = await asked.json()
    application = body["application"]
    assert application["status"] == "submitted" and application["agreement_number"] is None
    assert application["schedule"] == [] and body["effective"] is False
    assert "R4.2" in rules_of(body)
    extra = (ScheduledPayment.policy_id == world.policy.id, ScheduledPayment.purpose == "additional_premium")
    assert await count_rows(session_factory, ScheduledPayment, *extra) == 0

    hr = bearer(
        await factories.login_staff(
            client, await factories.staff("hr", hr_policyholder_id=world.policy.policyholder_id)
        )
    )
    pending = await (await client.get("/api/hr/service-type-applications", headers=hr)).json()
    assert [p["id"] for p in pending] == [application["id"]]

    other_company = await factories.policyholder(kind="corporate")
    stranger = bearer(
        await factories.login_staff(client, await factories.staff("hr", hr_policyholder_id=other_company.id))
    )
    assert await (await client.get("/api/hr/service-type-applications", headers=stranger)).json() == []
    foreign = await client.post(f"/api/hr/service-type-applications/{application['id']}/approve", headers=stranger)
    assert foreign.status == 404
    assert (
        await client.post(f"/api/hr/service-type-applications/{application['id']}/approve", headers=world.insured)
    ).status == 403

    signed = await client.post(f"/api/hr/service-type-applications/{application['id']}/approve", headers=hr)
    assert signed.status == 200, await signed.text()
    view = await signed.json()
    assert view["status"] == "agreement_issued" and view["agreement_number"].startswith("AA-2026-")
    assert view["schedule"] and all(p["policy_id"] == world.policy.id for p in view["schedule"])  # the employer's
    assert any(r["rule"] == "R4.2" and "signed" in r["message"] for r in view["reasons"])
    assert await count_rows(session_factory, ScheduledPayment, *extra) == len(view["schedule"])
    assert await (await client.get("/api/hr/service-type-applications", headers=hr)).json() == []
    again = await client.post(f"/api/hr/service-type-applications/{application['id']}/approve", headers=hr)
    assert again.status == 409 and (await again.json())["error"]["code"] == "application_not_pending"


async def test_hr_refuses_with_a_reason_the_employee_sees_and_nothing_is_charged_r4_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R4.2: the employer does not sign: the application is rejected with the reason; the employee may ask again."""
    world = await build_world(client, factories, policyholder_kind="corporate")
    await pay_policy_premiums(client, world, "2026-06-10")
    asked = await client.post("/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=world.insured)
    application_id = (await asked.json())["application"]["id"]
    hr = bearer(
        await factories.login_staff(
            client, await factories.staff("hr", hr_policyholder_id=world.policy.policyholder_id)
        )
    )
    refused = await client.post(
        f"/api/hr/service-type-applications/{application_id}/refuse",
        json={"reason": "registry is not in this year's budget"},
        headers=hr,
    )
    assert refused.status == 200, await refused.text()
    assert (await refused.json())["status"] == "rejected"
    mine = await (await client.get("/api/me/service-type-change", headers=world.insured)).json()
    [shown] = mine
    assert shown["status"] == "rejected"
    assert any(r["rule"] == "R4.2" and "budget" in r["message"] for r in shown["reasons"])
    assert await count_rows(session_factory, ScheduledPayment, ScheduledPayment.purpose == "additional_premium") == 0
    again = await client.post("/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=world.insured)
    assert again.status == 201, await again.text()


async def test_on_an_individual_policy_the_insured_person_signs_and_the_agreement_follows_r4_2(
    client: TestClient, factories: Factories
) -> None:
    """R4.2: the insured person is the policyholder: their application is the signed one."""
    world = await build_world(client, factories, policyholder_kind="individual")
    await pay_policy_premiums(client, world, "2026-06-10")
    asked = await client.post("/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=world.insured)
    assert asked.status == 201, await asked.text()
    application = (await asked.json())["application"]
    assert application["status"] == "agreement_issued" and application["agreement_number"] is not None
    assert application["schedule"]
