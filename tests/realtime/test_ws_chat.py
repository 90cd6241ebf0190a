"""Chat over the socket: sequence numbers, persist-before-ack, resend, resume, receipts (checklist B4, G1-G6)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from server.bus import RESYNC
from server.channels import EVENT_CONSULTATION_UPDATED, consultation_channel, user_channel
from server.db.models import AuditEvent, Consultation, ConsultationMessage
from server.keys import context_key, realtime_hub_key
from server.services import chat
from server.services.chat import ChatWriter
from server.services.identity import Principal
from tests.factories import Factories
from tests.realtime.conftest import ChatSetup, WsClient, connect


async def _rows(factories: Factories, consultation_id: int) -> list[tuple[int, str, str]]:
    async with factories.session_factory() as session:
        result = await session.execute(
            select(ConsultationMessage.seq, ConsultationMessage.sender_key, ConsultationMessage.body)
            .where(ConsultationMessage.consultation_id == consultation_id)
            .order_by(ConsultationMessage.seq)
        )
        return [tuple(row) for row in result]  # type: ignore[misc]


async def _pair(client: TestClient, setup: ChatSetup) -> tuple[WsClient, int, WsClient, int]:
    patient = await connect(client, setup.patient_tokens)
    doctor = await connect(client, setup.doctor_tokens)
    patient_sub, reply = await patient.subscribe(setup.consultation.id)
    assert reply["success"], reply
    doctor_sub, reply = await doctor.subscribe(setup.consultation.id)
    assert reply["success"], reply
    return patient, patient_sub, doctor, doctor_sub


async def test_patient_and_doctor_chat_with_per_consultation_sequence_numbers(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    patient, patient_sub, doctor, doctor_sub = await _pair(client, chat_setup)
    sent = await patient.send_text(cid, "I have a rash on my arm")
    assert sent["success"] and sent["result"]["seq"] == 1 and sent["result"]["duplicate"] is False
    received = await doctor.event(doctor_sub, "chat.message")
    assert received["text"] == "I have a rash on my arm"
    assert received["sender"] == f"insured:{chat_setup.patient.id}" and received["sender_role"] == "insured"
    reply = await doctor.send_text(cid, "Please send a photo")
    assert reply["result"]["seq"] == 2
    [theirs] = await patient.messages(patient_sub, 1)  # one's own message is acknowledged, not echoed
    assert theirs["seq"] == 2 and theirs["sender"] == f"staff:{chat_setup.doctor.id}"
    await patient.no_message(patient_sub)
    await patient.close()
    await doctor.close()


async def test_subscribe_result_describes_the_consultation(client: TestClient, chat_setup: ChatSetup) -> None:
    patient = await connect(client, chat_setup.patient_tokens)
    _, reply = await patient.subscribe(chat_setup.consultation.id)
    result = reply["result"]
    assert result["status"] == "active" and result["last_seq"] == 0 and result["after_seq"] == 0
    assert result["participants"] == {
        "patient": f"insured:{chat_setup.patient.id}",
        "doctor": f"staff:{chat_setup.doctor.id}",
    }
    await patient.close()


async def test_message_is_stored_before_it_is_acknowledged_G1(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    patient = await connect(client, chat_setup.patient_tokens)
    reply = await patient.send_text(chat_setup.consultation.id, "stored first")
    assert reply["success"]
    # The ack has arrived: the row is committed and visible to any other connection.
    assert await _rows(factories, chat_setup.consultation.id) == [
        (1, f"insured:{chat_setup.patient.id}", "stored first")
    ]
    async with factories.session_factory() as session:
        consultation = await session.get(Consultation, chat_setup.consultation.id)
        assert consultation is not None and consultation.last_seq == 1
    await patient.close()


async def test_resend_with_the_same_client_message_id_is_not_duplicated_G2(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    patient, _, doctor, doctor_sub = await _pair(client, chat_setup)
    first = await patient.send_text(cid, "only once", client_message_id="msg-1")
    again = await patient.send_text(cid, "only once", client_message_id="msg-1")
    assert first["result"]["seq"] == again["result"]["seq"] == 1
    assert first["result"]["id"] == again["result"]["id"]
    assert again["result"]["duplicate"] is True
    # Five more resends at once, in one batch, plus a resend after reconnecting.
    ids = [patient.next_id() for _ in range(5)]
    for msg_id in ids:
        await patient.send_json(
            {"id": msg_id, "type": "chat.send", "consultation_id": cid, "client_message_id": "msg-2", "text": "x"}
        )
    results = [await patient.result(msg_id) for msg_id in ids]
    assert {r["result"]["seq"] for r in results} == {2}
    assert sum(not r["result"]["duplicate"] for r in results) == 1
    await patient.close()
    patient = await connect(client, chat_setup.patient_tokens)
    assert (await patient.send_text(cid, "x", client_message_id="msg-2"))["result"]["seq"] == 2
    assert [row[0] for row in await _rows(factories, cid)] == [1, 2]
    delivered = await doctor.messages(doctor_sub, 2)
    assert [m["seq"] for m in delivered] == [1, 2]
    await doctor.no_message(doctor_sub)
    await patient.close()
    await doctor.close()


async def test_a_second_socket_of_the_same_user_receives_messages_sent_from_the_first(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    """Multi-device: only the sending socket skips its own message (it has the acknowledgement)."""
    cid = chat_setup.consultation.id
    phone = await connect(client, chat_setup.patient_tokens)
    laptop = await connect(client, chat_setup.patient_tokens)
    phone_sub, _ = await phone.subscribe(cid)
    laptop_sub, _ = await laptop.subscribe(cid)
    reply = await phone.send_text(cid, "sent from the phone", client_message_id="dev-1")
    event = await laptop.event(laptop_sub, "chat.message")
    assert event["seq"] == reply["result"]["seq"] and event["client_message_id"] == "dev-1"
    await phone.no_message(phone_sub)
    await phone.close()
    await laptop.close()


async def test_the_same_client_message_id_from_the_other_participant_is_a_new_message_G2(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    patient, _, doctor, _ = await _pair(client, chat_setup)
    assert (await patient.send_text(cid, "a", client_message_id="same"))["result"]["seq"] == 1
    reply = await doctor.send_text(cid, "b", client_message_id="same")
    assert reply["result"]["seq"] == 2 and reply["result"]["duplicate"] is False
    await patient.close()
    await doctor.close()


async def test_disconnect_then_resume_after_seq_gets_exactly_the_missed_messages_G3(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    patient, patient_sub, doctor, _ = await _pair(client, chat_setup)
    for n in range(3):
        await doctor.send_text(cid, f"before {n}")
    seen = await patient.messages(patient_sub, 3)
    last_seen = seen[-1]["seq"]
    await patient.close()
    for n in range(5):
        await doctor.send_text(cid, f"while away {n}")
    patient = await connect(client, chat_setup.patient_tokens)
    patient_sub, reply = await patient.subscribe(cid, after_seq=last_seen)
    assert reply["result"]["last_seq"] == 8
    missed = await patient.messages(patient_sub, 5)
    assert [m["seq"] for m in missed] == [4, 5, 6, 7, 8]
    assert [m["text"] for m in missed] == [f"while away {n}" for n in range(5)]
    await patient.no_message(patient_sub)
    # Then live, with no gap and no duplicate.
    await doctor.send_text(cid, "welcome back")
    live = await patient.event(patient_sub, "chat.message")
    assert live["seq"] == 9
    await patient.close()
    await doctor.close()


@pytest.mark.settings(ws_message_burst=1000)  # a burst far beyond a person's typing
async def test_messages_sent_during_a_replay_are_neither_lost_nor_duplicated_G4(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    doctor = await connect(client, chat_setup.doctor_tokens)
    for start in range(0, 450, 150):  # more than two replay pages, in windows below the in-flight cap
        ids = []
        for n in range(start, start + 150):
            ids.append(doctor.next_id())
            await doctor.send_json(
                {
                    "id": ids[-1],
                    "type": "chat.send",
                    "consultation_id": cid,
                    "client_message_id": f"m{n}",
                    "text": str(n),
                }
            )
        for msg_id in ids:
            assert (await doctor.result(msg_id, timeout=30))["success"]
    patient = await connect(client, chat_setup.patient_tokens)
    subscription = patient.next_id()
    await patient.send_json({"id": subscription, "type": "consultation.subscribe", "consultation_id": cid})
    for n in range(450, 480):  # live traffic while the replay runs
        await doctor.send_text(cid, str(n), client_message_id=f"m{n}")
    received = await patient.messages(subscription, 480, timeout=30)
    assert [m["seq"] for m in received] == list(range(1, 481))
    await patient.no_message(subscription)
    await patient.close()
    await doctor.close()


async def test_resume_cursor_beyond_the_last_message_starts_from_the_head(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    patient = await connect(client, chat_setup.patient_tokens)
    await patient.send_text(cid, "one")
    subscription, reply = await patient.subscribe(cid, after_seq=999)
    assert reply["result"]["after_seq"] == 1
    doctor = await connect(client, chat_setup.doctor_tokens)
    await doctor.send_text(cid, "two")
    assert (await patient.event(subscription, "chat.message"))["seq"] == 2
    await doctor.close()
    await patient.close()


async def test_typing_indicator_and_read_receipts_reach_the_other_participant(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    patient, patient_sub, doctor, doctor_sub = await _pair(client, chat_setup)
    assert (await doctor.request("chat.typing", consultation_id=cid, typing=True))["success"]
    typing = await patient.event(patient_sub, "chat.typing")
    assert typing == {
        "type": "chat.typing",
        "consultation_id": cid,
        "sender": f"staff:{chat_setup.doctor.id}",
        "typing": True,
    }
    await doctor.send_text(cid, "hello")
    await patient.event(patient_sub, "chat.message")
    read = await patient.request("chat.read", consultation_id=cid, seq=1)
    assert read["result"] == {"consultation_id": cid, "seq": 1}
    receipt = await doctor.event(doctor_sub, "chat.read")
    assert receipt["reader"] == f"insured:{chat_setup.patient.id}" and receipt["seq"] == 1
    # A read mark never moves back, and never beyond the last message.
    assert (await patient.request("chat.read", consultation_id=cid, seq=0))["result"]["seq"] == 1
    beyond = await patient.request("chat.read", consultation_id=cid, seq=5)
    assert beyond["error"]["code"] == "invalid_format"
    # A later subscriber learns the read marks.
    again = await connect(client, chat_setup.doctor_tokens)
    _, reply = await again.subscribe(cid)
    assert reply["result"]["read_marks"] == {f"insured:{chat_setup.patient.id}": 1}
    for socket in (patient, doctor, again):
        await socket.close()


async def test_presence_announces_participants_online_and_offline(client: TestClient, chat_setup: ChatSetup) -> None:
    cid = chat_setup.consultation.id
    patient = await connect(client, chat_setup.patient_tokens)
    patient_sub, _ = await patient.subscribe(cid)
    doctor = await connect(client, chat_setup.doctor_tokens)
    doctor_sub, _ = await doctor.subscribe(cid)
    online = await patient.event(patient_sub, "presence")
    assert online == {
        "type": "presence",
        "consultation_id": cid,
        "who": f"staff:{chat_setup.doctor.id}",
        "online": True,
    }
    # The doctor learns that the patient was already there (answer to the doctor's probe).
    answer = await doctor.event(doctor_sub, "presence")
    assert answer["who"] == f"insured:{chat_setup.patient.id}" and answer["online"] is True
    await doctor.close()
    offline = await patient.event(patient_sub, "presence")
    assert offline["who"] == f"staff:{chat_setup.doctor.id}" and offline["online"] is False
    await patient.close()


async def test_history_command_pages_through_stored_messages(client: TestClient, chat_setup: ChatSetup) -> None:
    cid = chat_setup.consultation.id
    patient = await connect(client, chat_setup.patient_tokens)
    for n in range(5):
        await patient.send_text(cid, f"m{n}")
    page = await patient.request("chat.history", consultation_id=cid, after_seq=1, limit=2)
    assert [m["seq"] for m in page["result"]["messages"]] == [2, 3]
    assert page["result"]["has_more"] is True and page["result"]["last_seq"] == 5
    rest = await patient.request("chat.history", consultation_id=cid, after_seq=3)
    assert [m["seq"] for m in rest["result"]["messages"]] == [4, 5] and rest["result"]["has_more"] is False
    await patient.close()


async def test_bad_message_content_gets_the_chat_rules_codes(client: TestClient, chat_setup: ChatSetup) -> None:
    cid = chat_setup.consultation.id
    patient = await connect(client, chat_setup.patient_tokens)
    cases = [
        ({"client_message_id": "a", "text": "   "}, "empty_message"),
        ({"client_message_id": "a", "text": "x" * 4001}, "message_too_long"),
        ({"client_message_id": "a", "text": "nul \x00 byte"}, "control_characters"),
        ({"client_message_id": "has space", "text": "hi"}, "invalid_client_message_id"),
        ({"client_message_id": 5, "text": "hi"}, "invalid_format"),
        ({"client_message_id": "a"}, "invalid_format"),
        ({"client_message_id": "a", "text": ["hi"]}, "invalid_format"),
        ({"client_message_id": "a", "attachment_id": "7"}, "invalid_format"),
    ]
    for fields, code in cases:
        reply = await patient.request("chat.send", consultation_id=cid, **fields)
        assert reply["success"] is False and reply["error"]["code"] == code, (fields, reply)
    assert (await patient.send_text(cid, "still fine"))["result"]["seq"] == 1
    await patient.close()


# -- who may read and write (B4, C1, C5) -----------------------------------------------------------


async def test_a_non_participant_cannot_subscribe_send_read_or_type_and_receives_nothing_B4(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    patient, _, _, _ = await _pair(client, chat_setup)
    stranger = await factories.insured()
    other_doctor = await factories.staff("doctor")
    admin = await factories.staff("admin")
    for person, login in (
        (stranger, factories.login_insured),
        (other_doctor, factories.login_staff),
        (admin, factories.login_staff),
    ):
        socket = await connect(client, await login(client, person))  # type: ignore[operator]
        subscription, reply = await socket.subscribe(cid)
        assert reply["success"] is False and reply["error"]["code"] == "not_found"
        for type_, fields in (
            ("chat.send", {"client_message_id": "intrude", "text": "let me in"}),
            ("chat.history", {}),
            ("chat.read", {"seq": 0}),
            ("chat.typing", {"typing": True}),
        ):
            reply = await socket.request(type_, consultation_id=cid, **fields)
            assert reply["success"] is False and reply["error"]["code"] == "not_found", (type_, reply)
        await patient.send_text(cid, f"private for {person.id}")
        await socket.no_message(subscription, wait=0.2)
        assert not [f for f in socket.frames if f.get("type") == "event"]
        await socket.close()
    assert all(sender == f"insured:{chat_setup.patient.id}" for _, sender, _ in await _rows(factories, cid))
    async with factories.session_factory() as session:
        denials = await session.scalar(select(func.count()).where(AuditEvent.result == "denied"))
    assert denials is not None and denials >= 15
    await patient.close()


async def test_who_may_write_in_each_status(client: TestClient, factories: Factories) -> None:
    """The patient may add details while waiting; the doctor writes once active; nobody after the end."""
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    patient_tokens = await factories.login_insured(client, patient)
    doctor_tokens = await factories.login_staff(client, doctor)
    queued = await factories.consultation(patient, None, status="queued")
    offered = await factories.consultation(patient, None, status="offered", offered_to_id=doctor.id)
    done = await factories.consultation(patient, doctor, status="completed")
    cancelled = await factories.consultation(patient, None, status="cancelled")
    patient_socket = await connect(client, patient_tokens)
    doctor_socket = await connect(client, doctor_tokens)
    assert (await patient_socket.send_text(queued.id, "more details"))["success"]
    assert (await patient_socket.send_text(offered.id, "more details"))["success"]
    reply = await doctor_socket.send_text(offered.id, "not yet mine")
    assert reply["error"]["code"] == "not_found"
    for consultation in (done, cancelled):
        reply = await patient_socket.send_text(consultation.id, "too late")
        assert reply["error"]["code"] == "consultation_closed"
    assert (await doctor_socket.send_text(done.id, "too late"))["error"]["code"] == "consultation_closed"
    # Reading stays possible after the end.
    _, reply = await doctor_socket.subscribe(done.id)
    assert reply["success"] and reply["result"]["status"] == "completed"
    await patient_socket.close()
    await doctor_socket.close()


async def test_a_reassigned_doctor_loses_the_subscription_at_once_C5(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    patient, _, doctor, doctor_sub = await _pair(client, chat_setup)
    successor = await factories.staff("doctor")
    async with factories.session_factory() as session:
        await session.execute(update(Consultation).where(Consultation.id == cid).values(doctor_id=successor.id))
        await session.commit()
    ctx = client.app[context_key]
    await ctx.bus.publish(
        consultation_channel(cid), {"type": EVENT_CONSULTATION_UPDATED, "consultation_id": cid, "status": "active"}
    )
    assert (await doctor.event(doctor_sub, "consultation.updated"))["status"] == "active"
    ended = await doctor.event(doctor_sub, "subscription.ended")
    assert ended["reason"] == "no_access"
    await patient.send_text(cid, "for the new doctor only")
    await doctor.no_message(doctor_sub)
    assert (await doctor.send_text(cid, "still here?"))["error"]["code"] == "not_found"
    await patient.close()
    await doctor.close()


async def test_unsubscribe_stops_delivery(client: TestClient, chat_setup: ChatSetup) -> None:
    cid = chat_setup.consultation.id
    patient, patient_sub, doctor, _ = await _pair(client, chat_setup)
    assert (await patient.request("consultation.unsubscribe", subscription=patient_sub))["success"]
    await doctor.send_text(cid, "anyone?")
    await patient.no_message(patient_sub)
    again = await patient.request("consultation.unsubscribe", subscription=patient_sub)
    assert again["error"]["code"] == "not_found"
    await patient.close()
    await doctor.close()


# -- notifications and bus resync (G6) -------------------------------------------------------------


async def test_notifications_forward_the_callers_events_only(client: TestClient, chat_setup: ChatSetup) -> None:
    doctor = await connect(client, chat_setup.doctor_tokens)
    reply = await doctor.request("notifications.subscribe")
    assert reply["success"]
    subscription = reply["id"]
    bus = client.app[context_key].bus
    await bus.publish(
        user_channel(f"staff:{chat_setup.doctor.id}"), {"type": "consultation.offered", "consultation_id": 7}
    )
    await bus.publish(user_channel("staff:999999"), {"type": "consultation.offered", "consultation_id": 8})
    await bus.publish("doctors:queue", {"type": "queue.changed", "specialty": "general_practice"})
    offered = await doctor.event(subscription, "consultation.offered")
    assert offered["consultation_id"] == 7
    assert (await doctor.event(subscription, "queue.changed"))["specialty"] == "general_practice"
    patient = await connect(client, chat_setup.patient_tokens)
    patient_reply = await patient.request("notifications.subscribe")
    await bus.publish("doctors:queue", {"type": "queue.changed", "specialty": "general_practice"})
    await bus.publish(user_channel(f"insured:{chat_setup.patient.id}"), {"type": "consultation.updated"})
    assert (await patient.event(patient_reply["id"]))["type"] == "consultation.updated"
    await doctor.close()
    await patient.close()


async def test_after_a_bus_resync_every_feed_catches_up_from_the_database_G6(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    """Messages whose wake-up hint was lost (another process wrote them while Redis was away) still arrive."""
    cid = chat_setup.consultation.id
    patient = await connect(client, chat_setup.patient_tokens)
    subscription, _ = await patient.subscribe(cid)
    ctx = client.app[context_key]

    class SilentBus:
        """Another process whose hints never reach us."""

        async def publish(self, channel: str, message: dict[str, object]) -> None:
            return None

    other_ctx = type(ctx)(**{**{f: getattr(ctx, f) for f in ctx.__dataclass_fields__}, "bus": SilentBus()})  # type: ignore[arg-type]
    other_process = ChatWriter(other_ctx)
    other_process.start()
    doctor = Principal("staff", chat_setup.doctor.id, "doctor", "s", ctx.clock.now())
    for n in range(3):
        await chat.post_message(other_ctx, other_process, doctor, chat.make_draft(cid, f"lost-{n}", f"lost {n}", None))
    await other_process.stop()
    await patient.no_message(subscription, wait=0.2)
    hub = client.app[realtime_hub_key]
    hub._subscription.deliver(RESYNC, {"reason": "redis reconnected"})
    caught_up = await patient.messages(subscription, 3)
    assert [m["seq"] for m in caught_up] == [1, 2, 3]
    await patient.close()


@pytest.mark.settings(ws_message_burst=1000)  # a burst far beyond a person's typing
async def test_many_senders_get_contiguous_sequences_G5(client: TestClient, chat_setup: ChatSetup) -> None:
    cid = chat_setup.consultation.id
    patient, patient_sub, doctor, _ = await _pair(client, chat_setup)
    pending = []
    for n in range(40):
        for socket in (patient, doctor):
            msg_id = socket.next_id()
            pending.append((socket, msg_id))
            await socket.send_json(
                {
                    "id": msg_id,
                    "type": "chat.send",
                    "consultation_id": cid,
                    "client_message_id": uuid.uuid4().hex,
                    "text": str(n),
                }
            )
    acks = [((await socket.result(msg_id))["result"]["seq"], socket) for socket, msg_id in pending]
    assert sorted(seq for seq, _ in acks) == list(range(1, 81))
    received = await patient.messages(patient_sub, 40)
    # The patient sees the doctor's messages as events and its own as acknowledgements: all 80, in order.
    assert [m["seq"] for m in received] == sorted(seq for seq, socket in acks if socket is doctor)
    await patient.no_message(patient_sub)
    await asyncio.gather(patient.close(), doctor.close())
