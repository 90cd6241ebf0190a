"""The per-user socket cap across server processes (checklist B8: a user holds at most N sockets in all)."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as redis_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.keys import settings_key
from server.realtime.seats import RedisSeats
from tests.backends import REDIS_URL, require_real_services
from tests.conftest import RecordingSender
from tests.realtime.conftest import ORIGIN, WAIT, ChatSetup, WsClient, connect, ticket_for


@pytest.fixture
def redis_url() -> str:
    """Seats are only shared through Redis; the embedded run has one process and its own count."""
    if not REDIS_URL:
        require_real_services("Redis (socket seats shared by several processes)")
    return REDIS_URL


async def _refused(client: TestClient, tokens: dict[str, object]) -> int:
    ws = await client.ws_connect("/api/ws", headers={"Origin": ORIGIN})
    await ws.receive(timeout=WAIT)
    await ws.send_str(json.dumps({"type": "auth", "ticket": await ticket_for(client, tokens)}))  # type: ignore[arg-type]
    reply = json.loads((await ws.receive(timeout=WAIT)).data)
    assert reply["type"] == "auth_invalid"
    code = int((await ws.receive(timeout=WAIT)).data)
    await ws.close()
    return code


async def test_the_socket_cap_counts_a_users_sockets_on_every_process_B8(
    redis_url: str,
    client: TestClient,
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: FixedClock,
    chat_setup: ChatSetup,
) -> None:
    """Two server processes (two apps on one database and one Redis): 5 sockets in all, not 5 each."""
    second: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(
            settings.model_copy(update={"data_dir": settings.data_dir.parent / "second"}),
            clock=clock,
            code_sender=RecordingSender(),
        )
    )
    limit = client.app[settings_key].ws_max_connections_per_subject
    tokens = chat_setup.doctor_tokens
    on_first = [await connect(client, tokens) for _ in range(limit - 2)]
    on_second = [await connect(second, tokens) for _ in range(2)]
    assert await _refused(second, tokens) == 4029
    assert await _refused(client, tokens) == 4029
    await on_first[0].close()
    replacement: WsClient | None = None
    async with asyncio.timeout(WAIT):
        while replacement is None:  # the seat is given back asynchronously after the close
            try:
                replacement = await connect(second, tokens)
            except AssertionError:
                await asyncio.sleep(0.05)
    assert (await replacement.request("ping"))["type"] == "pong"
    for socket in [*on_first[1:], *on_second, replacement]:
        await socket.close()


async def test_a_crashed_processs_seats_lapse_and_renewed_ones_do_not(redis_url: str, redis_prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        crashed = RedisSeats(client, redis_prefix, ttl_ms=300)
        alive = RedisSeats(client, redis_prefix, ttl_ms=300)
        assert await crashed.take("insured:1", "crashed-socket", 2)
        assert await alive.take("insured:1", "alive-socket", 2)
        assert not await alive.take("insured:1", "third-socket", 2)
        async with asyncio.timeout(WAIT):
            while not await alive.take("insured:1", "third-socket", 2):
                await alive.renew([("insured:1", "alive-socket")])  # only the live process renews
                await asyncio.sleep(0.05)
        # The crashed process's seat lapsed; the renewed one and the new one hold the two seats.
        assert not await alive.take("insured:1", "fourth-socket", 2)
        members = await client.zrange(f"{redis_prefix}:ws-seats:insured:1", 0, -1)
        assert sorted(members) == ["alive-socket", "third-socket"]
    finally:
        await client.aclose()


async def test_an_unreachable_redis_leaves_the_per_process_cap_in_force(redis_prefix: str) -> None:
    client = redis_asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        seats = RedisSeats(client, redis_prefix)
        assert await seats.take("insured:1", "socket", 5) is True  # the hub's local count still caps it
        await seats.release("insured:1", "socket")  # and giving back does not raise
    finally:
        await client.aclose()
