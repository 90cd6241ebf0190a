"""The client WebSocket's transport: Origin check, ticket auth phase, bad frames, session end (checklist B2-B9, A6)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from server.clock import FixedClock
from server.config import Settings
from server.db.models import AuthSession, ConsultationMessage
from server.keys import metrics_key, settings_key
from tests.factories import Factories, bearer
from tests.realtime.conftest import ORIGIN, WAIT, ChatSetup, WsClient, connect, ticket_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short auth timeout and session re-check interval, so those paths run in milliseconds."""
    return settings.model_copy(update={"ws_auth_timeout_seconds": 0.5, "ws_session_check_seconds": 0.5})


async def _raw(client: TestClient) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/api/ws", headers={"Origin": ORIGIN})
    first = await ws.receive(timeout=WAIT)
    assert json.loads(first.data) == {"type": "auth_required"}
    return ws


async def _expect_auth_refused(ws: aiohttp.ClientWebSocketResponse) -> str:
    reply = json.loads((await ws.receive(timeout=WAIT)).data)
    assert reply["type"] == "auth_invalid"
    closing = await ws.receive(timeout=WAIT)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == 4001
    return str(reply["message"])


# -- Origin (B2) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},  # suffix/prefix match must not pass
        {"Origin": "http://testserve"},
        {"Origin": "HTTP://TESTSERVER"},
    ],
    ids=["missing", "evil", "null", "suffix", "prefix", "case"],
)
async def test_origin_outside_the_allowlist_is_refused_before_upgrade_B2(
    client: TestClient, headers: dict[str, str]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/ws", headers=headers)
    assert refused.value.status == 403
    response = await client.get("/api/ws", headers={**headers, "Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "origin_not_allowed"


async def test_plain_http_get_is_told_to_upgrade(client: TestClient) -> None:
    response = await client.get("/api/ws", headers={"Origin": ORIGIN})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "websocket_upgrade_required"


# -- auth phase (B3) -------------------------------------------------------------------------------


async def test_valid_ticket_authenticates_and_names_the_user_B3(client: TestClient, chat_setup: ChatSetup) -> None:
    ticket = await ticket_for(client, chat_setup.patient_tokens)
    ws = await _raw(client)
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    reply = json.loads((await ws.receive(timeout=WAIT)).data)
    assert reply == {"type": "auth_ok", "user": {"key": f"insured:{chat_setup.patient.id}", "role": "insured"}}
    await ws.close()


@pytest.mark.parametrize(
    "first_frame",
    [
        {"type": "auth"},
        {"type": "auth", "ticket": ""},
        {"type": "auth", "ticket": 12345},
        {"type": "auth", "ticket": "x" * 500},
        {"type": "ping", "id": 1},
        ["auth"],
    ],
    ids=["no-ticket", "empty", "number", "huge", "not-auth", "array"],
)
async def test_first_frame_without_a_ticket_is_refused_with_4001_B3(client: TestClient, first_frame: object) -> None:
    ws = await _raw(client)
    await ws.send_str(json.dumps(first_frame))
    await _expect_auth_refused(ws)


async def test_unknown_ticket_is_refused_B3(client: TestClient) -> None:
    ws = await _raw(client)
    await ws.send_str(json.dumps({"type": "auth", "ticket": "not-a-ticket-" + "a" * 40}))
    assert "not valid" in await _expect_auth_refused(ws)


async def test_reused_ticket_is_refused_B3(client: TestClient, chat_setup: ChatSetup) -> None:
    ticket = await ticket_for(client, chat_setup.patient_tokens)
    first = await _raw(client)
    await first.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    assert json.loads((await first.receive(timeout=WAIT)).data)["type"] == "auth_ok"
    second = await _raw(client)
    await second.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    await _expect_auth_refused(second)
    await first.close()


async def test_expired_ticket_is_refused_B3(client: TestClient, chat_setup: ChatSetup, clock: FixedClock) -> None:
    ticket = await ticket_for(client, chat_setup.patient_tokens)
    clock.advance(timedelta(seconds=client.app[settings_key].ws_ticket_seconds + 1))
    ws = await _raw(client)
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    await _expect_auth_refused(ws)


async def test_binary_first_frame_is_refused(client: TestClient) -> None:
    ws = await _raw(client)
    await ws.send_bytes(b"\x00\x01")
    await _expect_auth_refused(ws)


async def test_silence_during_auth_times_out_with_4001(client: TestClient) -> None:
    ws = await _raw(client)
    assert "timed out" in await _expect_auth_refused(ws)


async def test_client_closing_during_auth_leaves_the_server_healthy(client: TestClient, chat_setup: ChatSetup) -> None:
    ws = await _raw(client)
    await ws.close()
    socket = await connect(client, chat_setup.patient_tokens)
    assert (await socket.request("ping"))["type"] == "pong"
    await socket.close()


# -- bad frames after auth (B6, B7) ----------------------------------------------------------------


@pytest.fixture
async def patient_socket(client: TestClient, chat_setup: ChatSetup) -> WsClient:
    """An authenticated patient socket."""
    socket = await connect(client, chat_setup.patient_tokens)
    yield socket  # type: ignore[misc]
    await socket.close()


async def _error_for_raw(socket: WsClient, raw: str | bytes) -> dict[str, object]:
    if isinstance(raw, bytes):
        await socket.ws.send_bytes(raw)
    else:
        await socket.ws.send_str(raw)
    return await socket.result(None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[" * 100_000 + "]" * 100_000, "invalid_json"),
        ("[1, 2]", "invalid_format"),
        ('"hello"', "invalid_format"),
        ('{"type": "ping"}', "invalid_format"),
        ('{"id": "1", "type": "ping"}', "invalid_format"),
        ('{"id": 0, "type": "ping"}', "invalid_format"),
        ('{"id": true, "type": "ping"}', "invalid_format"),
        (b"\x89PNG binary", "invalid_format"),
    ],
    ids=["malformed", "deep-nesting-over-64k", "array", "string", "no-id", "string-id", "zero-id", "bool-id", "binary"],
)
async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_up_B7(
    patient_socket: WsClient, raw: str | bytes, code: str
) -> None:
    if len(raw) > 64 * 1024:
        raw = "[" * 30_000 + "]" * 30_000  # deep but within the frame limit
    reply = await _error_for_raw(patient_socket, raw)
    assert reply["success"] is False and reply["id"] is None
    assert reply["error"]["code"] == code  # type: ignore[index]
    assert (await patient_socket.request("ping"))["type"] == "pong"


async def test_unknown_command_is_an_error_with_its_id_B7(patient_socket: WsClient) -> None:
    reply = await patient_socket.request("chat.delete_everything", consultation_id=1)
    assert reply["success"] is False and reply["error"]["code"] == "unknown_command"
    assert (await patient_socket.request("ping"))["type"] == "pong"


async def test_unknown_fields_are_refused_B7(patient_socket: WsClient, chat_setup: ChatSetup) -> None:
    reply = await patient_socket.request("chat.typing", consultation_id=chat_setup.consultation.id, typing=True, x=1)
    assert reply["error"]["code"] == "invalid_format"
    assert "x" in reply["error"]["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"consultation_id": "1"},
        {"consultation_id": -1},
        {"consultation_id": True},
        {"consultation_id": 1, "after_seq": -5},
        {"consultation_id": 1, "after_seq": 1.5},
    ],
)
async def test_missing_or_invalid_fields_are_invalid_format(
    patient_socket: WsClient, fields: dict[str, object]
) -> None:
    reply = await patient_socket.request("consultation.subscribe", **fields)
    assert reply["success"] is False and reply["error"]["code"] == "invalid_format"


async def test_request_ids_must_increase(patient_socket: WsClient) -> None:
    await patient_socket.send_json({"id": 10, "type": "ping"})
    assert (await patient_socket.result(10))["type"] == "pong"
    await patient_socket.send_json({"id": 10, "type": "ping"})
    reply = await patient_socket.result(10)
    assert reply["type"] == "result" and reply["error"]["code"] == "id_reuse"
    await patient_socket.send_json({"id": 11, "type": "ping"})
    assert (await patient_socket.result(11))["type"] == "pong"


async def test_oversized_frame_closes_1009_and_the_server_stays_up_B6(
    client: TestClient, chat_setup: ChatSetup, patient_socket: WsClient
) -> None:
    await patient_socket.ws.send_str(json.dumps({"id": 1, "type": "ping", "pad": "x" * (65 * 1024)}))
    closing = await patient_socket.ws.receive(timeout=WAIT)
    assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1009
    again = await connect(client, chat_setup.patient_tokens)
    assert (await again.request("ping"))["type"] == "pong"
    await again.close()


# -- session end (A6, B5, B8) ----------------------------------------------------------------------


async def _closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> int:
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return int(msg.data or 0)


async def test_logout_closes_the_socket_with_4001_within_a_second_A6_B5(
    client: TestClient, chat_setup: ChatSetup, patient_socket: WsClient
) -> None:
    started = time.monotonic()
    response = await client.post("/api/auth/logout", headers=bearer(chat_setup.patient_tokens))
    assert response.status == 200
    assert await _closed_with(patient_socket.ws, 1.0) == 4001
    assert time.monotonic() - started < 1.0


async def test_revocation_without_a_bus_message_is_caught_by_the_periodic_recheck_B5(
    client: TestClient, chat_setup: ChatSetup, patient_socket: WsClient, factories: Factories, clock: FixedClock
) -> None:
    """A missed revocation message must not keep a socket alive: the session is re-checked."""
    async with factories.session_factory() as session:
        await session.execute(update(AuthSession).values(revoked_at=clock.now(), revoked_reason="admin"))
        await session.commit()
    assert await _closed_with(patient_socket.ws, 3.0) == 4001


async def test_session_expiry_closes_the_socket_A10(
    chat_setup: ChatSetup, patient_socket: WsClient, clock: FixedClock
) -> None:
    clock.advance(timedelta(hours=13))
    assert await _closed_with(patient_socket.ws, 3.0) == 4001


async def test_a_user_may_hold_only_a_few_sockets_B8(client: TestClient, chat_setup: ChatSetup) -> None:
    limit = client.app[settings_key].ws_max_connections_per_subject
    sockets = [await connect(client, chat_setup.doctor_tokens) for _ in range(limit)]
    ws = await _raw(client)
    await ws.send_str(json.dumps({"type": "auth", "ticket": await ticket_for(client, chat_setup.doctor_tokens)}))
    reply = json.loads((await ws.receive(timeout=WAIT)).data)
    assert reply["type"] == "auth_invalid"
    assert (await ws.receive(timeout=WAIT)).data == 4029
    await sockets[0].close()
    await asyncio.sleep(0.05)
    replacement = await connect(client, chat_setup.doctor_tokens)
    for socket in [*sockets[1:], replacement]:
        await socket.close()


@pytest.mark.settings(ws_message_burst=5, ws_messages_per_minute=1)
async def test_a_socket_over_its_message_rate_is_told_to_wait_and_nothing_is_processed_B8(
    client: TestClient, chat_setup: ChatSetup, patient_socket: WsClient, factories: Factories
) -> None:
    """Frames past the burst get ``rate_limited`` with the wait; the refused request did nothing."""
    cid = chat_setup.consultation.id
    # The auth frame is not counted: the whole burst of 5 is there.
    for _ in range(5):
        assert (await patient_socket.request("ping"))["type"] == "pong"
    refused_id = patient_socket.next_id()
    await patient_socket.send_json(
        {"id": refused_id, "type": "chat.send", "consultation_id": cid, "client_message_id": "m-1", "text": "hello"}
    )
    reply = await patient_socket.result(refused_id)
    assert reply["success"] is False
    assert reply["error"]["code"] == "rate_limited"
    assert 0 < reply["error"]["retry_after_ms"] <= 60_000
    async with factories.session_factory() as session:
        stored = await session.scalar(
            select(func.count()).select_from(ConsultationMessage).where(ConsultationMessage.consultation_id == cid)
        )
    assert stored == 0
    # Other users are not slowed down by this one.
    doctor = await connect(client, chat_setup.doctor_tokens)
    assert (await doctor.request("ping"))["type"] == "pong"
    await doctor.close()


@pytest.mark.settings(ws_message_burst=1, ws_messages_per_minute=600)
async def test_a_refused_request_can_be_sent_again_unchanged_after_the_wait_B8(
    chat_setup: ChatSetup, patient_socket: WsClient
) -> None:
    assert (await patient_socket.request("ping"))["type"] == "pong"
    msg_id = patient_socket.next_id()
    send = {"id": msg_id, "type": "chat.send", "consultation_id": chat_setup.consultation.id}
    send |= {"client_message_id": "m-1", "text": "hello"}
    await patient_socket.send_json(send)
    refused = await patient_socket.result(msg_id)
    assert refused["error"]["code"] == "rate_limited"
    await asyncio.sleep(refused["error"]["retry_after_ms"] / 1000)  # the wait the server asked for
    await patient_socket.send_json(send)  # same id: a refused request does not use its id up
    stored = await patient_socket.result(msg_id)
    assert stored["success"] is True and stored["result"]["seq"] == 1


@pytest.mark.settings(ws_message_burst=3, ws_messages_per_minute=1)
async def test_a_client_that_keeps_flooding_is_disconnected_with_1008_and_the_server_stays_up_B8(
    client: TestClient, chat_setup: ChatSetup, patient_socket: WsClient
) -> None:
    for _ in range(200):
        await patient_socket.ws.send_str('{"id": 1, "type": "ping"}')
    assert await _closed_with(patient_socket.ws, 5.0) == 1008
    again = await connect(client, chat_setup.patient_tokens)
    assert (await again.request("ping"))["type"] == "pong"
    await again.close()


async def test_open_sockets_are_counted_in_metrics(client: TestClient, chat_setup: ChatSetup) -> None:
    gauge = client.app[metrics_key].websocket_connections
    before = gauge._value.get()
    socket = await connect(client, chat_setup.patient_tokens)
    assert gauge._value.get() == before + 1
    await socket.close()
    async with asyncio.timeout(WAIT):
        while gauge._value.get() != before:
            await asyncio.sleep(0.01)
