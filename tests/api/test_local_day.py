"""R10.3 through the API (issue 9 item 18): "that day" is the insured person's own local date.

At 2026-06-10 20:00 UTC it is still 06-10 (23:00) in Moscow but already 06-11 (08:00) in
Petropavlovsk-Kamchatsky: the Kamchatka person is no longer covered by a policy ending 2026-06-10,
on the coverage card, at the dispatch console (events, approval check) and for their own request.
(The issue's case is the year's end, 2027-01-01 08:00 in Kamchatka; tokens cannot be minted for a
moment later than the real clock, so the same boundary is tried on a policy ending on the test day.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from aiohttp.test_utils import TestClient

from server.clock import FixedClock
from tests.api.dispatch_support import build_world, rules_of
from tests.factories import Factories, bearer

KAMCHATKA = "Petropavlovsk Kamchatsky"
NEXT_DAY_IN_KAMCHATKA = datetime(2026, 6, 10, 20, 0, tzinfo=UTC)  # 08:00 on 06-11 there, 23:00 in Moscow
POLICY = {"starts_on": date(2026, 1, 1), "ends_on": date(2026, 6, 10)}


async def test_the_coverage_card_uses_the_persons_local_date_r10_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R10.3: the card's day, policy validity and allowance are the person's local date, not Moscow's."""
    world = await build_world(client, factories, person_overrides={"city": KAMCHATKA}, policy=POLICY)
    moscow = await factories.insured(policy=world.policy, city="Moscow")
    clock.advance(NEXT_DAY_IN_KAMCHATKA - clock.now())
    await world.relogin(client, factories)
    got = await client.get("/api/me/coverage", headers=world.insured)
    far_east = await got.json()
    assert got.status == 200, far_east
    assert far_east["today"] == "2026-06-11"
    assert far_east["policy"]["valid_today"] is False
    at_home = await (
        await client.get("/api/me/coverage", headers=bearer(await factories.login_insured(client, moscow)))
    ).json()
    assert at_home["today"] == "2026-06-10" and at_home["policy"]["valid_today"] is True
    seen = await client.get(f"/api/dispatch/persons/{world.person.id}/coverage", headers=world.dispatcher)
    assert seen.status == 200, await seen.text()
    card = await seen.json()
    assert (card.get("card") or card)["today"] == "2026-06-11"


async def test_the_console_decides_on_the_persons_local_date_r10_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R10.3: without an explicit day, an event, an approval check and the person's own request are
    decided on their local date: 06-11 in Kamchatka is outside a policy ending 06-10 (R10.2)."""
    world = await build_world(client, factories, person_overrides={"city": KAMCHATKA}, policy=POLICY)
    clock.advance(NEXT_DAY_IN_KAMCHATKA - clock.now())
    await world.relogin(client, factories)

    event = await client.post(
        "/api/dispatch/events",
        json={"insured_person_id": world.person.id, "component": "outpatient", "complaints": "knee pain"},
        headers=world.dispatcher,
    )
    body = await event.json()
    assert body["status"] == "rejected" and "R10.2" in rules_of(body), body

    check = await client.post(
        "/api/dispatch/approval-check",
        json={
            "insured_person_id": world.person.id,
            "clinic_id": world.clinic.id,
            "services": ["knee X-ray"],
            "complaints": "knee pain",
        },
        headers=world.dispatcher,
    )
    assert check.status == 422, await check.text()
    error = (await check.json())["error"]
    assert "R10.2" in error["rules"] and "2026-06-11" in error["message"]

    asked = await client.post(
        "/api/me/requests", json={"component": "outpatient", "complaints": "knee pain"}, headers=world.insured
    )
    assert asked.status == 422, await asked.text()
    assert (await asked.json())["error"]["code"] == "not_covered"


async def test_the_same_moment_in_moscow_is_still_covered_r10_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R10.3: the Moscow person at the same instant is still on 06-10, inside the policy."""
    world = await build_world(client, factories, policy=POLICY)
    clock.advance(NEXT_DAY_IN_KAMCHATKA - clock.now())
    await world.relogin(client, factories)
    event = await client.post(
        "/api/dispatch/events",
        json={"insured_person_id": world.person.id, "component": "outpatient", "complaints": "knee pain"},
        headers=world.dispatcher,
    )
    assert event.status == 201 and (await event.json())["status"] == "open"
