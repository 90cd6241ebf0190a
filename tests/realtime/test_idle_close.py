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
from tests.realtime.test_calls import start_call

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


@pytest.mark.settings(ws_idle_seconds=IDLE)
async def test_a_second_tab_of_a_session_in_use_is_not_idle_A10(client: TestClient, chat_setup: ChatSetup) -> None:
    """Two tabs share one session: the one left in the background stays open while the other is used,
    and both close at the limit once the person stops."""
    background = await connect(client, chat_setup.patient_tokens)
    used = await connect(client, chat_setup.patient_tokens)
    for _ in range(8):  # 3.2 s of use in one tab, twice the idle limit
        reply = await used.request("chat.history", consultation_id=chat_setup.consultation.id)
        assert reply["success"], reply
        await asyncio.sleep(0.4)
    assert not background.ws.closed
    started = time.monotonic()
    elapsed, _ = await _closed_after(background, started)
    assert background.ws.close_code == CLOSE_IDLE
    assert elapsed <= IDLE + 2.5
    await _closed_after(used, started)
    assert used.ws.close_code == CLOSE_IDLE


@pytest.mark.settings(ws_idle_seconds=IDLE)
async def test_a_socket_in_a_call_is_not_idle_and_is_idle_again_once_it_leaves_A10(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    """In a call media flows and no frame needs to: a long video consultation is not cut for idleness."""
    doctor, _, patient, _, call_id = await start_call(client, chat_setup)
    await asyncio.sleep(IDLE + 2.0)  # nobody sends a frame
    assert not doctor.ws.closed and not patient.ws.closed
    reply = await patient.request("call.leave", call_id=call_id)
    assert reply["success"], reply
    started = time.monotonic()
    elapsed, _ = await _closed_after(patient, started)
    assert patient.ws.close_code == CLOSE_IDLE
    assert elapsed <= IDLE + 2.5
