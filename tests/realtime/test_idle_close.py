"""Idle sockets are closed at the idle limit (checklist A10, issue 11).

Activity is a frame the user sent: a ``ping`` command and the protocol's heartbeats do not count.
Before, the idle limit was checked only at refresh, so an idle socket lived until the 12-hour limit.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.realtime.messages import CLOSE_IDLE
from tests.realtime.conftest import ChatSetup, WsClient, connect

IDLE = 1.5


async def _closed_after(ws: WsClient, started: float, timeout: float = 6.0) -> tuple[float, aiohttp.WSMessage]:
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return time.monotonic() - started, msg


@pytest.mark.settings(ws_idle_seconds=IDLE)
async def test_pings_do_not_keep_an_idle_socket_open_A10(client: TestClient, chat_setup: ChatSetup) -> None:
    ws = await connect(client, chat_setup.patient_tokens)
    started = time.monotonic()
    closing = asyncio.create_task(_closed_after(ws, started))
    while not closing.done():  # a keep-alive every 0.3 s, nothing else
        await ws.send_json({"id": ws.next_id(), "type": "ping"})
        await asyncio.sleep(0.3)
    elapsed, msg = await closing
    assert ws.ws.close_code == CLOSE_IDLE, (msg, ws.ws.close_code)
    assert IDLE - 0.1 <= elapsed <= IDLE + 2.5  # at the limit (the check runs every second)


@pytest.mark.settings(ws_idle_seconds=IDLE)
async def test_frames_from_the_user_keep_the_socket_open_then_it_closes_at_the_limit_A10(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    ws = await connect(client, chat_setup.patient_tokens)
    for _ in range(8):  # 3.2 s of real use, twice the idle limit
        reply = await ws.request("chat.history", consultation_id=chat_setup.consultation.id)
        assert reply["success"], reply
        await asyncio.sleep(0.4)
    started = time.monotonic()
    elapsed, _ = await _closed_after(ws, started)
    assert ws.ws.close_code == CLOSE_IDLE
    assert IDLE - 0.5 <= elapsed <= IDLE + 2.5
    assert ws.ws.closed
