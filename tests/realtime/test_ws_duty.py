"""Live over the client WebSocket: duty alerts reach dispatchers and admins, a doctor's socket makes them
eligible for offers and its end starts the grace (R11.6-R11.8)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.clock import FixedClock
from server.db.models import Consultation
from server.domain.red_flags import CODES
from server.keys import context_key
from server.services import consultations
from tests.factories import Factories, bearer
from tests.realtime.conftest import connect

NO = dict.fromkeys(CODES, False)


async def test_r11_6_a_red_flag_request_is_pushed_to_dispatcher_and_admin_sockets(
    client: TestClient, factories: Factories
) -> None:
    dispatcher = await connect(client, await factories.login_staff(client, await factories.staff("dispatcher")))
    admin = await connect(client, await factories.login_staff(client, await factories.staff("admin")))
    subscriptions = [(await ws.request("notifications.subscribe"))["id"] for ws in (dispatcher, admin)]
    await asyncio.sleep(0.05)
    patient = bearer(await factories.login_insured(client, await factories.insured()))
    made = await client.post(
        "/api/consultations",
        json={
            "channel": "text",
            "specialty": "general_practice",
            "complaints": "cannot breathe",
            "red_flags": {**NO, "breathing": True},
            "confirm_urgent": True,
        },
        headers=patient,
    )
    assert made.status == 201, await made.text()
    for ws, subscription in zip((dispatcher, admin), subscriptions, strict=True):
        event = await ws.event(subscription, "duty.alert")
        assert event["alert"]["kind"] == "red_flag" and event["alert"]["details"]["red_flags"] == ["breathing"]
        await ws.close()


async def test_r11_7_r11_8_only_a_connected_doctor_is_offered_and_a_lost_socket_hands_on_after_the_grace(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: Any
) -> None:
    ctx = client.app[context_key]
    doctor = await factories.staff("doctor")
    await factories.shift(doctor, hours=12)
    tokens = await factories.login_staff(client, doctor)
    patient = bearer(await factories.login_insured(client, await factories.insured()))
    body = {"channel": "text", "specialty": "general_practice", "complaints": "cough", "red_flags": NO}
    created = await (await client.post("/api/consultations", json=body, headers=patient)).json()
    assert created["status"] == "queued"  # on duty, but not connected: not offered (R11.7)
    socket = await connect(client, tokens)
    await consultations.run_assignment_cycle(ctx)
    accepted = await client.post(f"/api/consultations/{created['id']}/accept", headers=bearer(tokens))
    assert accepted.status == 200, await accepted.text()
    await socket.close()
    await asyncio.sleep(0.1)  # the hub records the end of the socket
    clock.advance(timedelta(seconds=ctx.settings.disconnect_grace_seconds + 1))
    await consultations.run_assignment_cycle(ctx)
    async with session_factory() as session:
        row = (await session.execute(select(Consultation).where(Consultation.id == created["id"]))).scalar_one()
    assert (row.status, row.doctor_id) == ("queued", None)  # front of the queue again, the patient told
