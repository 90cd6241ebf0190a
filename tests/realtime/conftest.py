"""Helpers for WebSocket tests: an authenticated socket client and a patient-doctor consultation."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.db.models import Consultation, InsuredPerson, StaffAccount
from tests.factories import Factories, bearer

ORIGIN = "http://testserver"
WAIT = 5.0


class WsClient:
    """A test client speaking the socket protocol: requests with increasing ids, buffered events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.frames: list[dict[str, Any]] = []

    async def _read(self, timeout: float = WAIT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r}")
        return dict(json.loads(msg.data))

    async def send_json(self, payload: Any) -> None:
        """Send any JSON (tests of bad input)."""
        await self.ws.send_str(json.dumps(payload))

    def next_id(self) -> int:
        """The next request id."""
        return next(self._ids)

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its result frame (events met on the way are kept)."""
        msg_id = self.next_id()
        await self.send_json({"id": msg_id, "type": type_, **fields})
        return await self.result(msg_id)

    async def result(self, msg_id: int | None, timeout: float = WAIT) -> dict[str, Any]:
        """The result frame for ``msg_id`` (buffered or next)."""
        for index, frame in enumerate(self.frames):
            if frame.get("type") in ("result", "pong") and frame.get("id") == msg_id:
                return self.frames.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._read()
                if frame.get("type") in ("result", "pong") and frame.get("id") == msg_id:
                    return frame
                self.frames.append(frame)

    async def event(self, subscription: int, type_: str | None = None, timeout: float = WAIT) -> dict[str, Any]:
        """The next event of a subscription (optionally of one event type)."""

        def matches(frame: dict[str, Any]) -> bool:
            return (
                frame.get("type") == "event"
                and frame.get("id") == subscription
                and (type_ is None or frame["event"].get("type") == type_)
            )

        for index, frame in enumerate(self.frames):
            if matches(frame):
                return dict(self.frames.pop(index)["event"])
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._read()
                if matches(frame):
                    return dict(frame["event"])
                self.frames.append(frame)

    async def messages(self, subscription: int, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The next ``count`` chat messages of a subscription."""
        return [await self.event(subscription, "chat.message", timeout) for _ in range(count)]

    async def no_message(self, subscription: int, wait: float = 0.3) -> None:
        """Assert that no chat message arrives for a while."""
        try:
            event = await self.event(subscription, "chat.message", timeout=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {event}")

    async def send_text(self, consultation_id: int, text: str, client_message_id: str | None = None) -> dict[str, Any]:
        """``chat.send`` a text and return the result frame."""
        return await self.request(
            "chat.send",
            consultation_id=consultation_id,
            client_message_id=client_message_id or uuid.uuid4().hex,
            text=text,
        )

    async def subscribe(self, consultation_id: int, after_seq: int = 0) -> tuple[int, dict[str, Any]]:
        """Subscribe; returns the subscription id and the result frame."""
        msg_id = self.next_id()
        await self.send_json(
            {"id": msg_id, "type": "consultation.subscribe", "consultation_id": consultation_id, "after_seq": after_seq}
        )
        return msg_id, await self.result(msg_id)

    async def close(self) -> None:
        """Close the socket."""
        await self.ws.close()


async def ticket_for(client: TestClient, tokens: dict[str, Any]) -> str:
    """A fresh single-use socket ticket."""
    response = await client.post("/api/auth/ws-ticket", headers=bearer(tokens))
    assert response.status == 200, await response.text()
    return str((await response.json())["ticket"])


async def connect(client: TestClient, tokens: dict[str, Any]) -> WsClient:
    """Open an authenticated socket."""
    ticket = await ticket_for(client, tokens)
    ws = await client.ws_connect("/api/ws", headers={"Origin": ORIGIN})
    first = json.loads((await ws.receive(timeout=WAIT)).data)
    assert first == {"type": "auth_required"}
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    reply = json.loads((await ws.receive(timeout=WAIT)).data)
    assert reply["type"] == "auth_ok", reply
    return WsClient(ws)


@dataclass
class ChatSetup:
    """A patient, their assigned doctor and an active consultation, both logged in."""

    patient: InsuredPerson
    doctor: StaffAccount
    consultation: Consultation
    patient_tokens: dict[str, Any]
    doctor_tokens: dict[str, Any]


async def make_chat_setup(client: TestClient, factories: Factories) -> ChatSetup:
    """Patient and doctor of one active consultation, logged in over HTTP."""
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(patient, doctor, status="active")
    return ChatSetup(
        patient=patient,
        doctor=doctor,
        consultation=consultation,
        patient_tokens=await factories.login_insured(client, patient),
        doctor_tokens=await factories.login_staff(client, doctor),
    )


@pytest.fixture
async def chat_setup(client: TestClient, factories: Factories) -> ChatSetup:
    """Patient and doctor of one active consultation, logged in over HTTP."""
    return await make_chat_setup(client, factories)
