"""Policy login answers before the code is sent (issue 11 item 10; checklist A9).

The request path must do the same work for an unknown policy, a wrong birth date and the right
person, so the code goes through the outbox queue and a background task delivers it. Before the
queue, ``policy/start`` awaited the sender: a slow gateway held the answer for a real person only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient

from server.keys import context_key
from server.security.code_queue import QueuedCodeSender
from tests.factories import Factories
from tests.fakes import RecordingSender


@dataclass
class GatedSender(RecordingSender):
    """Holds every delivery until the test opens the gate (a gateway that takes its time)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False
    attempts: int = 0

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        self.attempts += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("gateway down")
        await super().send(phone, text, now=now)


@pytest.fixture
def sender() -> GatedSender:
    return GatedSender()


def _outbox(client: TestClient) -> QueuedCodeSender:
    queued = client.app[context_key].code_sender
    assert isinstance(queued, QueuedCodeSender)
    return queued


async def test_the_answer_does_not_wait_for_the_sender_and_the_code_goes_once_A9(
    client: TestClient, factories: Factories, sender: GatedSender
) -> None:
    person = await factories.insured()
    number = await factories.policy_number_of(person)
    body = {"policy_number": number, "birth_date": person.birth_date.isoformat()}
    # The gateway is stuck: the answer must still come (before the queue it never did).
    response = await asyncio.wait_for(client.post("/api/auth/policy/start", json=body), timeout=5)
    assert response.status == 200, await response.text()
    challenge = (await response.json())["challenge_id"]
    assert sender.messages == []
    sender.gate.set()
    await asyncio.wait_for(_outbox(client).join(), timeout=5)
    assert [m.phone for m in sender.messages] == [person.phone]  # sent exactly once
    verified = await client.post(
        "/api/auth/policy/verify", json={"challenge_id": challenge, "code": sender.last_code(person.phone)}
    )
    assert verified.status == 200, await verified.text()


async def test_a_failed_delivery_is_logged_not_answered_and_the_queue_goes_on(
    client: TestClient, factories: Factories, sender: GatedSender
) -> None:
    person = await factories.insured()
    number = await factories.policy_number_of(person)
    body = {"policy_number": number, "birth_date": person.birth_date.isoformat()}
    sender.fail = True
    sender.gate.set()
    first = await client.post("/api/auth/policy/start", json=body)
    assert first.status == 200  # the same answer as for an unknown policy: nothing to probe
    await asyncio.wait_for(_outbox(client).join(), timeout=5)
    assert _outbox(client).failed == 1 and sender.messages == []
    sender.fail = False
    second = await client.post("/api/auth/policy/start", json=body)
    assert second.status == 200
    await asyncio.wait_for(_outbox(client).join(), timeout=5)
    assert len(sender.messages) == 1 and sender.attempts == 2


async def test_unknown_and_wrong_birth_date_queue_nothing(
    client: TestClient, factories: Factories, sender: GatedSender
) -> None:
    person = await factories.insured()
    number = await factories.policy_number_of(person)
    sender.gate.set()
    for body in (
        {"policy_number": "NOPE-000001", "birth_date": person.birth_date.isoformat()},
        {"policy_number": number, "birth_date": person.birth_date.replace(year=1950).isoformat()},
    ):
        response = await client.post("/api/auth/policy/start", json=body)
        assert response.status == 200
    await asyncio.wait_for(_outbox(client).join(), timeout=5)
    assert sender.attempts == 0


async def test_codes_queued_at_shutdown_are_still_delivered() -> None:
    inner = RecordingSender()
    queued = QueuedCodeSender(inner)
    queued.start()
    now = datetime(2026, 6, 10)
    for index in range(3):
        await queued.send(f"+7900000000{index}", f"Telemed login code: 12345{index}.", now=now)
    await queued.close()
    assert [m.phone for m in inner.messages] == ["+79000000000", "+79000000001", "+79000000002"]
