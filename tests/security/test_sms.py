"""The HTTP SMS sender against a fake gateway the test starts: retries, idempotency, refusals.

The fake speaks the documented contract (``POST`` JSON ``{to, text, idempotency_key}`` with a
bearer token) and answers with a scripted sequence of statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from server.security.sms import HttpSmsSender, SmsDeliveryError

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
TOKEN = "gateway-token-123"


@dataclass
class FakeGateway:
    """Answers each POST with the next scripted status (then 200), recording what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization", ""))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)

    @property
    def delivered(self) -> int:
        return len(self.received)


async def start_gateway(aiohttp_server: AiohttpServer, gateway: FakeGateway) -> TestServer:
    app = web.Application()
    app.router.add_post("/send", gateway.handle)
    return await aiohttp_server(app)


def sender_for(server: TestServer, attempts: int = 4) -> HttpSmsSender:
    return HttpSmsSender(str(server.make_url("/send")), TOKEN, attempts=attempts, backoff_seconds=0.01)


async def test_a_message_reaches_the_gateway_with_the_bearer_token(aiohttp_server: AiohttpServer) -> None:
    gateway = FakeGateway()
    sender = sender_for(await start_gateway(aiohttp_server, gateway))
    try:
        await sender.send("+79990001122", "Telemed login code: 123456", now=NOW)
    finally:
        await sender.close()
    [message] = gateway.received
    assert (message["to"], message["text"]) == ("+79990001122", "Telemed login code: 123456")
    assert len(message["idempotency_key"]) == 32
    assert gateway.authorizations == [f"Bearer {TOKEN}"]


async def test_server_errors_and_429_are_retried_with_one_idempotency_key(aiohttp_server: AiohttpServer) -> None:
    gateway = FakeGateway(statuses=[503, 429, 500])
    sender = sender_for(await start_gateway(aiohttp_server, gateway))
    try:
        await sender.send("+79990001122", "code 654321", now=NOW)
    finally:
        await sender.close()
    assert gateway.delivered == 4
    assert len({message["idempotency_key"] for message in gateway.received}) == 1


async def test_giving_up_after_the_configured_attempts_is_a_503_error(aiohttp_server: AiohttpServer) -> None:
    gateway = FakeGateway(statuses=[502] * 10)
    sender = sender_for(await start_gateway(aiohttp_server, gateway), attempts=3)
    try:
        with pytest.raises(SmsDeliveryError) as raised:
            await sender.send("+79990001122", "code 111111", now=NOW)
    finally:
        await sender.close()
    assert gateway.delivered == 3
    assert raised.value.status == 503


async def test_a_refusal_is_not_retried(aiohttp_server: AiohttpServer) -> None:
    """401/400 mean the configuration is wrong: retrying would only repeat it."""
    gateway = FakeGateway(statuses=[401])
    sender = sender_for(await start_gateway(aiohttp_server, gateway))
    try:
        with pytest.raises(SmsDeliveryError):
            await sender.send("+79990001122", "code 222222", now=NOW)
    finally:
        await sender.close()
    assert gateway.delivered == 1


async def test_an_unreachable_gateway_is_retried_then_reported(unused_tcp_port: int) -> None:
    sender = HttpSmsSender(f"http://127.0.0.1:{unused_tcp_port}/send", TOKEN, attempts=2, backoff_seconds=0.01)
    try:
        with pytest.raises(SmsDeliveryError):
            await sender.send("+79990001122", "code 333333", now=NOW)
    finally:
        await sender.close()
