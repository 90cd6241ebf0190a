"""Nothing reaches past the policy's end (item 1 of issue 9): letters capped, booking and extension refused,
and the card says why a letter ended (R10.2, R10.3)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from server.clock import FixedClock
from server.services import coverage as coverage_service
from server.services.context import ServiceContext
from tests.api.dispatch_support import build_world, issue_letter, open_covered_event, rules_of
from tests.factories import Factories
from tests.services.test_dispatch import principal


async def test_letter_near_the_policys_end_is_capped_and_nothing_reaches_past_it_R10_2_R10_3(
    client: TestClient, factories: Factories, clock: FixedClock, ctx: ServiceContext
) -> None:
    world = await build_world(client, factories)
    assert world.policy.ends_on.isoformat() == "2026-12-31"
    event = await open_covered_event(client, world)
    issued = await issue_letter(client, world, event["id"], world.clinic.id, ["consultation"], issued_on="2026-12-15")
    letter = issued["letter"]
    assert letter["valid_until"] == "2026-12-31"  # not 2027-01-15
    assert "R10.3" in rules_of(issued)

    booked = await client.post(
        f"/api/dispatch/letters/{letter['id']}/visits",
        json={"doctor_name": "Dr. Petrov", "scheduled_at": "2027-01-10T10:30:00+03:00", "services": ["consultation"]},
        headers=world.dispatcher,
    )
    assert booked.status == 422
    assert "R10.3" in rules_of(await booked.json())

    extended = await client.post(f"/api/dispatch/letters/{letter['id']}/extend?on=2026-12-31", headers=world.dispatcher)
    body = await extended.json()
    assert extended.status == 422 and rules_of(body) == ["R10.3"]
    assert body["error"]["reasons"][0]["facts"]["ends_on"] == "2026-12-31"

    # 2027-01-01: past the policy. Tokens cannot be minted for a moment later than the real clock, so the
    # dispatcher's card is read through its use case (the same one the route calls).
    clock.set(datetime(2027, 1, 1, 9, 0, tzinfo=UTC))
    history = await coverage_service.person_history(ctx, principal("dispatcher", world.dispatcher_id), world.person.id)
    [shown] = history.card.letters
    assert shown.validity == "ended_with_policy"
    assert shown.validity_reason is not None and shown.validity_reason["rule"] == "R10.3"
    assert shown.validity_reason["facts"]["policy_ends_on"] == "2026-12-31"
