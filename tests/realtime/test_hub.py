"""``server/realtime/hub.py`` on its own: cursors (checklist G3, G4), feeds, bus routing and access rechecks (C5),
with the running app's hub, chat writer, bus and database; only the socket's transport is recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from server.domain.participation import ConsultationAccess
from server.keys import chat_writer_key, realtime_hub_key
from server.realtime.hub import Listener, RealtimeHub
from server.services import chat
from server.services.chat import ChatMessage
from server.services.context import ServiceContext
from tests.factories import Factories
from tests.realtime.modules import RecordingTransport, connection, principal, turn


def _message(consultation_id: int, seq: int, origin: object = None) -> ChatMessage:
    message = ChatMessage(
        id=seq,
        consultation_id=consultation_id,
        seq=seq,
        sender_key="insured:1",
        sender_role="insured",
        client_message_id=f"m-{seq}",
        kind="text",
        body=f"message {seq}",
        attachment_id=None,
        created_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    )
    message.origin = origin
    return message


def _seqs(transport: RecordingTransport) -> list[int]:
    return [frame["event"]["seq"] for frame in transport.frames() if frame.get("type") == "event"]


async def test_a_listener_delivers_in_order_and_never_twice(client: TestClient[Any, Any]) -> None:
    hub = client.app[realtime_hub_key]
    conn, transport = connection(hub)
    listener = Listener(conn, subscription_id=3, last_seq=2)
    listener.push(_message(1, 3))  # still replaying: the replay sends it
    listener.replaying = False
    for seq in (2, 3, 4, 4):
        listener.push(_message(1, seq))
    listener.push(_message(1, 5, origin=conn))  # the sender gets its acknowledgement instead
    listener.push(_message(1, 6))
    await turn()
    assert _seqs(transport) == [3, 4, 6] and listener.last_seq == 6
    assert {frame["id"] for frame in transport.frames()} == {3}


async def test_a_feed_delivers_what_continues_it_and_fetches_on_a_gap(client: TestClient[Any, Any]) -> None:
    hub = client.app[realtime_hub_key]
    feed = hub.acquire_feed(9_001)
    assert hub.acquire_feed(9_001) is feed  # one feed per consultation, shared by its subscribers
    conn, transport = connection(hub)
    listener = Listener(conn, 1, last_seq=0)
    listener.replaying = False
    feed.listeners.append(listener)
    feed.add_messages([_message(9_001, 1)])  # head unknown yet: not delivered before a replay read it
    assert feed.delivered_seq is None
    feed.delivered_seq = 0
    feed.add_messages([_message(9_001, 1), _message(9_001, 2), _message(9_001, 4)])
    await turn()
    assert _seqs(transport) == [1, 2] and feed.delivered_seq == 2 and feed.heard_seq == 4
    feed.listeners.clear()
    hub.release_feed(feed)
    assert 9_001 not in hub.feeds


async def test_catch_up_replays_from_the_database_then_goes_live(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    """G4: a subscriber from cursor 1 gets 2 and 3 from the database, then live 4, with no gap or duplicate."""
    person = await factories.insured()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(person, doctor)
    patient = principal("insured", person.id)
    writer = client.app[chat_writer_key]
    for number in range(1, 4):
        draft = chat.make_draft(consultation.id, f"c-{number}", f"text {number}", None)
        await chat.post_message(ctx, writer, patient, draft)
    hub: RealtimeHub = client.app[realtime_hub_key]
    feed = hub.acquire_feed(consultation.id)
    conn, transport = connection(hub, who=principal("doctor", doctor.id))
    listener = Listener(conn, 7, last_seq=1)
    feed.listeners.append(listener)
    await feed.catch_up(listener)
    assert not listener.replaying and listener.last_seq == 3 and feed.delivered_seq == 3
    await chat.post_message(ctx, writer, patient, chat.make_draft(consultation.id, "c-4", "text 4", None))
    for _ in range(100):
        if listener.last_seq == 4:
            break
        await asyncio.sleep(0.01)
    await turn()
    assert _seqs(transport) == [2, 3, 4]
    feed.listeners.clear()
    hub.release_feed(feed)


async def test_bus_events_reach_listeners_without_echoing_ones_own_typing(client: TestClient[Any, Any]) -> None:
    hub = client.app[realtime_hub_key]
    feed = hub.acquire_feed(9_002)
    patient_conn, patient_out = connection(hub, who=principal("insured", 1))
    doctor_conn, doctor_out = connection(hub, who=principal("doctor", 2))
    for number, conn in enumerate((patient_conn, doctor_conn), start=1):
        listener = Listener(conn, number, last_seq=0)
        listener.replaying = False
        feed.listeners.append(listener)
    feed.on_bus({"type": "chat.typing", "consultation_id": 9_002, "sender": "insured:1", "typing": True})
    await turn()
    assert patient_out.frames() == []
    assert [frame["event"]["sender"] for frame in doctor_out.frames()] == ["insured:1"]
    feed.listeners.clear()
    hub.release_feed(feed)


async def test_hub_routes_bus_channels_to_handlers_until_unlistened(
    client: TestClient[Any, Any], ctx: ServiceContext
) -> None:
    hub = client.app[realtime_hub_key]
    received: list[dict[str, Any]] = []
    unlisten = hub.listen("test:hub-routing", received.append)
    await asyncio.sleep(0.05)  # let a Redis subscription settle
    await ctx.bus.publish("test:hub-routing", {"type": "probe", "n": 1})
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.01)
    assert received == [{"type": "probe", "n": 1}]
    unlisten()
    unlisten()  # idempotent
    await ctx.bus.publish("test:hub-routing", {"type": "probe", "n": 2})
    await asyncio.sleep(0.1)
    assert received == [{"type": "probe", "n": 1}]


async def test_an_unassigned_doctor_loses_the_subscription_at_the_recheck(client: TestClient[Any, Any]) -> None:
    """C5: the access recheck ends the subscription of whoever no longer takes part."""
    hub = client.app[realtime_hub_key]
    feed = hub.acquire_feed(9_003)
    conn, transport = connection(hub, who=principal("doctor", 2))
    listener = Listener(conn, 4, last_seq=0)
    listener.replaying = False
    feed.listeners.append(listener)
    ended: list[int] = []
    conn.subscriptions[4] = lambda: ended.append(4)
    feed.recheck_access(ConsultationAccess(9_003, "active", insured_person_id=1, doctor_id=2, last_seq=0))
    assert ended == []
    feed.recheck_access(ConsultationAccess(9_003, "active", insured_person_id=1, doctor_id=3, last_seq=0))
    await turn()
    assert ended == [4] and 4 not in conn.subscriptions
    assert transport.frames()[-1]["event"] == {
        "type": "subscription.ended",
        "consultation_id": 9_003,
        "reason": "no_access",
    }
    feed.listeners.clear()
    hub.release_feed(feed)
