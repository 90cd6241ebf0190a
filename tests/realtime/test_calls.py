"""Call signalling over the client WebSocket (R11.1 audio/video consultations): authorization, relay, record.

Signalling-only peers (no media): tests/signaling/test_media.py runs real aiortc peers through the server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.clock import FixedClock
from tests.factories import Factories, bearer
from tests.realtime.conftest import ChatSetup, WsClient, connect
from tests.signaling.sdp_samples import HOST_CANDIDATE, OFFER


async def join(ws: WsClient, consultation_id: int, **fields: Any) -> tuple[int, dict[str, Any]]:
    msg_id = ws.next_id()
    await ws.send_json({"id": msg_id, "type": "call.join", "consultation_id": consultation_id, **fields})
    return msg_id, await ws.result(msg_id)


def error_code(frame: dict[str, Any]) -> str:
    assert frame["success"] is False, frame
    return str(frame["error"]["code"])


async def start_call(client: TestClient, setup: ChatSetup) -> tuple[WsClient, int, WsClient, int, int]:
    """Doctor calls, the patient's notifications ring, the patient answers."""
    doctor = await connect(client, setup.doctor_tokens)
    patient = await connect(client, setup.patient_tokens)
    notifications = patient.next_id()
    await patient.send_json({"id": notifications, "type": "notifications.subscribe"})
    await patient.result(notifications)
    doctor_sub, doctor_join = await join(doctor, setup.consultation.id)
    assert doctor_join["success"], doctor_join
    result = doctor_join["result"]
    assert result["role"] == "doctor" and result["polite"] is False and result["status"] == "ringing"
    assert result["peer"]["present"] is False
    ringing = await patient.event(notifications, "call.ringing")
    assert ringing["call_id"] == result["call_id"] and ringing["consultation_id"] == setup.consultation.id
    patient_sub, patient_join = await join(patient, setup.consultation.id, v=1, media={"audio": True, "video": False})
    assert patient_join["success"], patient_join
    assert patient_join["result"]["polite"] is True and patient_join["result"]["peer"]["present"] is True
    assert patient_join["result"]["status"] == "active"
    joined = await doctor.event(doctor_sub, "call.peer_joined")
    assert joined == {
        "type": "call.peer_joined",
        "call_id": result["call_id"],
        "who": "patient",
        "rejoin": False,
        "media": {"audio": True, "video": False},
    }
    return doctor, doctor_sub, patient, patient_sub, int(result["call_id"])


async def test_doctor_calls_patient_rings_and_signals_are_relayed_both_ways_in_order(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    doctor, doctor_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    # The present side re-announces its media state to the newcomer.
    assert (await patient.event(patient_sub, "call.media"))["from"] == "doctor"
    offer = await patient.request("call.offer", call_id=call_id, sdp=OFFER, generation=1)
    assert offer["success"], offer
    for index in range(5):
        candidate = {**HOST_CANDIDATE, "candidate": HOST_CANDIDATE["candidate"].replace("50000", str(50000 + index))}
        assert (await patient.request("call.candidate", call_id=call_id, candidate=candidate))["success"]
    assert (await patient.request("call.end_of_candidates", call_id=call_id, generation=1))["success"]
    relayed = await doctor.event(doctor_sub, "call.description")
    assert relayed["description"] == {"type": "offer", "sdp": OFFER} and relayed["from"] == "patient"
    ports = [(await doctor.event(doctor_sub, "call.candidate"))["candidate"]["candidate"].split()[5] for _ in range(5)]
    assert ports == [str(50000 + index) for index in range(5)]  # in order
    assert (await doctor.event(doctor_sub, "call.end_of_candidates"))["generation"] == 1
    answer = await doctor.request("call.answer", call_id=call_id, sdp=OFFER.replace("actpass", "active"))
    assert answer["success"], answer
    assert (await patient.event(patient_sub, "call.description"))["description"]["type"] == "answer"
    assert (await doctor.request("call.media", call_id=call_id, audio=False, video=True))["success"]
    media = await patient.event(patient_sub, "call.media")
    assert media["audio"] is False and media["from"] == "doctor"
    # Renegotiation from the impolite side (audio to video), with an ICE restart flag.
    assert (await doctor.request("call.offer", call_id=call_id, sdp=OFFER, generation=1, restart=True))["success"]
    renegotiation = await patient.event(patient_sub, "call.description")
    assert renegotiation["restart"] is True and renegotiation["description"]["type"] == "offer"
    hangup = await doctor.request("call.hangup", call_id=call_id)
    assert hangup["success"] and hangup["result"]["ended"] is True
    ended = await patient.event(patient_sub, "call.ended")
    assert ended["reason"] == "hangup" and ended["ended_by"] == "doctor"
    assert error_code(await patient.request("call.offer", call_id=call_id, sdp=OFFER)) == "not_joined"


@pytest.mark.settings(ws_message_burst=1000, ws_messages_per_minute=100_000)
async def test_out_of_order_and_malformed_signals_get_codes_and_the_socket_stays_up(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    doctor, _doctor_sub, _patient, _patient_sub, call_id = await start_call(client, chat_setup)
    assert error_code(await doctor.request("call.answer", call_id=call_id, sdp=OFFER)) == "no_offer_to_answer"
    assert error_code(await doctor.request("call.candidate", call_id=call_id, candidate=HOST_CANDIDATE)) == (
        "no_description"
    )
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp="v=0\r\nhello")) == "invalid_sdp"
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp="v=0\r\n" + "a=x\r\n" * 7000)) == (
        "message_too_large"
    )
    bad = {**HOST_CANDIDATE, "candidate": "candidate:x 1 udp 1 1.2.3.4 5 typ bogus"}
    assert (await doctor.request("call.offer", call_id=call_id, sdp=OFFER))["success"]
    assert error_code(await doctor.request("call.candidate", call_id=call_id, candidate=bad)) == "invalid_candidate"
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp=OFFER, extra=1)) == "invalid_format"
    assert error_code(await doctor.request("call.offer", call_id=call_id + 99, sdp=OFFER)) == "not_joined"
    _second_sub, second = await join(doctor, chat_setup.consultation.id)
    assert error_code(second) == "already_joined"
    assert error_code(await doctor.request("call.join", consultation_id=chat_setup.consultation.id, v=9)) == (
        "unsupported_version"
    )
    # A flood of candidates stops at the per-connection cap; the socket's rate limit applies as well.
    codes = []
    for index in range(70):
        candidate = {**HOST_CANDIDATE, "candidate": HOST_CANDIDATE["candidate"].replace("50000", str(40000 + index))}
        frame = await doctor.request("call.candidate", call_id=call_id, candidate=candidate)
        codes.append("ok" if frame["success"] else frame["error"]["code"])
    assert codes == ["ok"] * 64 + ["too_many_candidates"] * 6  # 64 per connection generation, then refused
    assert (await doctor.request("ping"))["type"] == "pong"


async def test_only_the_consultations_patient_and_doctor_may_join_and_only_while_active(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    stranger_doctor = await factories.staff("doctor")
    other_patient = await factories.insured()
    for tokens in (
        await factories.login_staff(client, stranger_doctor),
        await factories.login_insured(client, other_patient),
    ):
        ws = await connect(client, tokens)
        _, refused = await join(ws, chat_setup.consultation.id)
        assert error_code(refused) == "not_found"
    patient = await connect(client, chat_setup.patient_tokens)
    _, early = await join(patient, chat_setup.consultation.id)
    assert error_code(early) == "call_not_started"  # the doctor starts the call
    queued = await factories.consultation(chat_setup.patient, chat_setup.doctor, status="completed")
    doctor = await connect(client, chat_setup.doctor_tokens)
    _, closed = await join(doctor, queued.id)
    assert error_code(closed) == "consultation_not_active"
    # Joining another consultation's call by its call id: not joined there, nothing relayed.
    _, mine = await join(doctor, chat_setup.consultation.id)
    other = await factories.consultation(other_patient, stranger_doctor, status="active")
    stranger = await connect(client, await factories.login_staff(client, stranger_doctor))
    _, theirs = await join(stranger, other.id)
    assert error_code(await doctor.request("call.offer", call_id=theirs["result"]["call_id"], sdp=OFFER)) == (
        "not_joined"
    )
    assert mine["success"]


async def test_a_dropped_patient_rejoins_within_the_grace_and_the_doctor_is_told(
    client: TestClient, chat_setup: ChatSetup, clock: FixedClock
) -> None:
    doctor, doctor_sub, patient, _patient_sub, call_id = await start_call(client, chat_setup)
    await patient.close()  # the patient's network drops
    away = await doctor.event(doctor_sub, "call.peer_away")
    assert away["who"] == "patient" and away["rejoin_deadline"]
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp=OFFER)) == "peer_not_present"
    clock.advance(timedelta(seconds=20))
    again = await connect(client, chat_setup.patient_tokens)
    _, rejoined = await join(again, chat_setup.consultation.id)
    assert rejoined["result"]["rejoined"] is True and rejoined["result"]["call_id"] == call_id
    back = await doctor.event(doctor_sub, "call.peer_joined")
    assert back["rejoin"] is True
    # Another socket of the same patient takes the call over; the first one is told.
    third = await connect(client, chat_setup.patient_tokens)
    _, moved = await join(third, chat_setup.consultation.id)
    assert moved["success"] and moved["result"]["rejoined"] is True
    replaced_sub = rejoined["id"]
    assert (await again.event(replaced_sub, "call.replaced"))["call_id"] == call_id


async def test_after_the_grace_the_call_ends_as_peer_lost_and_is_recorded(
    client: TestClient, chat_setup: ChatSetup, clock: FixedClock
) -> None:
    doctor, doctor_sub, patient, _patient_sub, call_id = await start_call(client, chat_setup)
    await patient.close()
    await doctor.event(doctor_sub, "call.peer_away")
    clock.advance(timedelta(seconds=31))
    from server.realtime.calls import call_relay_key

    await client.app[call_relay_key].check_expiry(call_id)
    ended = await doctor.event(doctor_sub, "call.ended")
    assert ended["reason"] == "peer_lost" and ended["ended_by"] is None
    late = await connect(client, chat_setup.patient_tokens)
    _, refused = await join(late, chat_setup.consultation.id)
    assert error_code(refused) == "call_not_started"  # that call is over; the doctor may call again
    records = await client.get(
        f"/api/consultations/{chat_setup.consultation.id}/calls", headers=bearer(chat_setup.patient_tokens)
    )
    record = (await records.json())["calls"][0]
    assert record["end_reason"] == "peer_lost" and record["status"] == "ended"


async def test_step_downs_are_recorded_shown_to_both_and_end_in_text_chat(
    client: TestClient, chat_setup: ChatSetup, clock: FixedClock, factories: Factories
) -> None:
    doctor, doctor_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    clock.advance(timedelta(seconds=90))
    first = await patient.request("call.step_down", call_id=call_id, step="ice_restart", reason="disconnected")
    assert first["success"] and first["result"]["step"] == "ice_restart" and first["result"]["ended"] is False
    assert (await doctor.event(doctor_sub, "call.step_down"))["step"] == "ice_restart"
    relay = await patient.request("call.step_down", call_id=call_id, step="relay_only", reason="restart failed")
    assert relay["success"]
    assert (await doctor.event(doctor_sub, "call.step_down"))["by"] == "patient"
    fresh = await patient.request("call.ice_servers", call_id=call_id)
    assert fresh["result"]["ice_transport_policy"] == "relay"
    assert error_code(await doctor.request("call.step_down", call_id=call_id, step="ice_restart")) == (
        "step_out_of_order"
    )
    quality = await doctor.request("call.quality", call_id=call_id, rtt_ms=480, loss_pct=2.5, jitter_ms=12)
    assert quality["result"] == {"grade": "poor"}
    assert (await doctor.request("call.step_down", call_id=call_id, step="audio_only"))["success"]
    text = await doctor.request("call.step_down", call_id=call_id, step="text_chat", reason="audio keeps failing")
    assert text["result"]["ended"] is True
    assert (await patient.event(patient_sub, "call.step_down"))["step"] == "audio_only"
    assert (await patient.event(patient_sub, "call.step_down"))["step"] == "text_chat"
    assert (await patient.event(patient_sub, "call.ended"))["reason"] == "stepped_down"
    response = await client.get(
        f"/api/consultations/{chat_setup.consultation.id}/calls", headers=bearer(chat_setup.doctor_tokens)
    )
    assert response.status == 200
    (record,) = (await response.json())["calls"]
    assert [step["step"] for step in record["step_downs"]] == ["ice_restart", "relay_only", "audio_only", "text_chat"]
    assert record["ended_by"] == "doctor" and record["duration_seconds"] == 90.0 and record["channel"] == "video"
    assert record["quality"]["doctor"]["grade"] == "poor"
    stranger = await factories.login_staff(client, await factories.staff("doctor"))
    hidden = await client.get(f"/api/consultations/{chat_setup.consultation.id}/calls", headers=bearer(stranger))
    assert hidden.status == 404


async def test_a_call_back_step_puts_a_request_in_the_dispatchers_live_queue_once(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    """Issue 13 item 6, the last rung: ``callback_request`` ends the call, reaches the dispatcher's
    socket live and lists a ``call_back`` item for the consultation's patient in the queue (one
    item, however many times the step is sent)."""
    dispatcher_tokens = await factories.login_staff(client, await factories.staff("dispatcher"))
    dispatcher = await connect(client, dispatcher_tokens)
    notifications = (await dispatcher.request("notifications.subscribe"))["id"]
    doctor, doctor_sub, patient, _patient_sub, call_id = await start_call(client, chat_setup)
    assert (await patient.request("call.step_down", call_id=call_id, step="audio_only"))["success"]
    back = await patient.request("call.step_down", call_id=call_id, step="callback_request", reason="audio failed")
    assert back["success"] and back["result"]["ended"] is True and back["result"]["by"] == "patient"
    step = await doctor.event(doctor_sub, "call.step_down")
    while step["step"] != "callback_request":
        step = await doctor.event(doctor_sub, "call.step_down")
    assert (await doctor.event(doctor_sub, "call.ended"))["reason"] == "stepped_down"
    live = await dispatcher.event(notifications, "dispatch.queue_changed")
    assert live["source"] == "call_back"
    queue = await client.get("/api/dispatch/requests", headers=bearer(dispatcher_tokens))
    assert queue.status == 200
    items = [item for item in await queue.json() if item["source"] == "call_back"]
    assert len(items) == 1
    (item,) = items
    assert item["id"] == live["dispatch_request_id"]
    assert item["consultation_id"] == chat_setup.consultation.id
    assert item["insured_person_id"] == chat_setup.patient.id and item["status"] == "open"
    assert item["complaints"] == chat_setup.consultation.complaints
    # The doctor's late repeat of the last rung finds the call ended and adds no second item.
    assert error_code(await doctor.request("call.step_down", call_id=call_id, step="callback_request")) in (
        "call_ended",
        "not_joined",
    )
    again = await client.get("/api/dispatch/requests", headers=bearer(dispatcher_tokens))
    assert [i["source"] for i in await again.json()].count("call_back") == 1
    records = await client.get(
        f"/api/consultations/{chat_setup.consultation.id}/calls", headers=bearer(chat_setup.patient_tokens)
    )
    (record,) = (await records.json())["calls"]
    assert [s["step"] for s in record["step_downs"]] == ["audio_only", "callback_request"]


async def test_a_call_ends_when_its_consultation_stops_being_active(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    doctor, doctor_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    from sqlalchemy import update

    from server.channels import consultation_channel
    from server.db.models import Consultation
    from server.keys import context_key

    async with factories.session_factory() as session:
        await session.execute(
            update(Consultation).where(Consultation.id == chat_setup.consultation.id).values(status="completed")
        )
        await session.commit()
    await client.app[context_key].bus.publish(
        consultation_channel(chat_setup.consultation.id),
        {"type": "consultation.updated", "consultation_id": chat_setup.consultation.id, "status": "completed"},
    )
    for ws, sub in ((doctor, doctor_sub), (patient, patient_sub)):
        ended = await ws.event(sub, "call.ended")
        assert ended["reason"] == "consultation_ended" and ended["call_id"] == call_id
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp=OFFER)) == "not_joined"
    _, again = await join(doctor, chat_setup.consultation.id)
    assert error_code(again) == "consultation_not_active"


async def test_the_sockets_rate_limit_applies_to_call_messages(client: TestClient, chat_setup: ChatSetup) -> None:
    """A candidate flood at the default limit (burst 40): refused with retry_after_ms, the socket stays up."""
    doctor, _doctor_sub, patient, _patient_sub, call_id = await start_call(client, chat_setup)
    assert (await patient.request("call.offer", call_id=call_id, sdp=OFFER))["success"]
    refusals = []
    for index in range(45):
        candidate = {**HOST_CANDIDATE, "candidate": HOST_CANDIDATE["candidate"].replace("50000", str(30000 + index))}
        frame = await patient.request("call.candidate", call_id=call_id, candidate=candidate)
        if not frame["success"]:
            refusals.append(frame["error"])
    assert refusals and {error["code"] for error in refusals} == {"rate_limited"}
    await asyncio.sleep(refusals[-1]["retry_after_ms"] / 1000 + 0.1)
    assert (await patient.request("ping"))["type"] == "pong"
    assert (await doctor.request("ping"))["type"] == "pong"


async def _announce(client: TestClient, consultation_id: int, status: str) -> None:
    from server.channels import consultation_channel
    from server.keys import context_key

    await client.app[context_key].bus.publish(
        consultation_channel(consultation_id),
        {"type": "consultation.updated", "consultation_id": consultation_id, "status": status},
    )


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


def _described(ws: WsClient) -> list[dict[str, Any]]:
    return [f for f in ws.frames if f.get("type") == "event" and f["event"].get("type") == "call.description"]


async def test_an_ended_consultation_stops_relaying_at_once_before_the_database_confirms(
    client: TestClient, chat_setup: ChatSetup, factories: Factories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R11.1 (only while active): the join's authorization is cached in the leg; the bus event invalidates it
    synchronously, so not one signal passes while the database is asked and the call record is closed."""
    from sqlalchemy import update

    from server.db.models import Consultation
    from server.realtime.calls import call_relay_key

    doctor, doctor_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    relay = client.app[call_relay_key]
    release = asyncio.Event()
    confirm = relay.store.consultation_active

    async def slow_confirm(consultation_id: int) -> bool:
        await release.wait()
        return await confirm(consultation_id)

    monkeypatch.setattr(relay.store, "consultation_active", slow_confirm)
    async with factories.session_factory() as session:
        await session.execute(
            update(Consultation).where(Consultation.id == chat_setup.consultation.id).values(status="completed")
        )
        await session.commit()
    await _announce(client, chat_setup.consultation.id, "completed")
    await _until(lambda: all(leg.suspended for leg in relay.by_call.get(call_id, [])))
    assert error_code(await doctor.request("call.offer", call_id=call_id, sdp=OFFER)) == "call_ended"
    assert error_code(await patient.request("call.media", call_id=call_id, audio=False, video=False)) == "call_ended"
    release.set()
    for ws, sub in ((doctor, doctor_sub), (patient, patient_sub)):
        ended = await ws.event(sub, "call.ended")
        assert ended["reason"] == "consultation_ended"
    assert _described(patient) == [] and _described(doctor) == []


async def test_a_wrong_announcement_suspends_the_call_only_until_the_database_says_active(
    client: TestClient, chat_setup: ChatSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed, then recover: the consultation is still active in the database, so the call goes on."""
    from server.realtime.calls import call_relay_key

    doctor, doctor_sub, patient, _patient_sub, call_id = await start_call(client, chat_setup)
    relay = client.app[call_relay_key]
    confirm = relay.store.consultation_active
    suspended_while_asking: list[bool] = []

    async def watched_confirm(consultation_id: int) -> bool:
        suspended_while_asking.append(all(leg.suspended for leg in relay.by_call.get(call_id, [])))
        return await confirm(consultation_id)

    monkeypatch.setattr(relay.store, "consultation_active", watched_confirm)
    await _announce(client, chat_setup.consultation.id, "completed")  # the database still says active
    await _until(lambda: bool(suspended_while_asking))
    assert suspended_while_asking == [True] * len(suspended_while_asking)
    await _until(lambda: not any(leg.suspended for leg in relay.by_call.get(call_id, [])))
    assert (await patient.request("call.offer", call_id=call_id, sdp=OFFER))["success"]
    assert (await doctor.event(doctor_sub, "call.description"))["description"]["type"] == "offer"


async def test_a_revoked_session_relays_nothing_more_even_before_its_socket_is_closed(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    """Revocation takes effect at once: a frame the closing socket still had in hand is refused, not relayed."""
    from server.channels import session_channel
    from server.domain.errors import DomainError
    from server.keys import context_key, realtime_hub_key, ws_commands_key

    _doctor, _doctor_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    hub = client.app[realtime_hub_key]
    (connection,) = [c for c in hub.connections if c.principal.role == "doctor"]
    await client.app[context_key].bus.publish(
        session_channel(connection.principal.session_id), {"type": "session.revoked"}
    )
    await _until(lambda: connection.closing)
    command = client.app[ws_commands_key].get("call.offer")
    assert command is not None
    with pytest.raises(DomainError) as refused:
        await command.handler(connection, {"id": 10_000, "type": "call.offer", "call_id": call_id, "sdp": OFFER})
    assert refused.value.code == "not_joined"
    with pytest.raises(TimeoutError):
        await patient.event(patient_sub, "call.description", timeout=0.3)


async def test_a_handed_over_doctor_is_removed_from_the_call_and_the_new_doctor_may_join(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    """Issue 13 item 2, checklist B5/C5: only the patient and the CURRENT assigned doctor are in the call.

    The hand-over's bus event (status still active) makes the relay re-check who takes part: the old
    doctor's leg gets ``call.ended`` (reason ``reassigned``) and relays nothing more, the patient sees the
    doctor leave (``call.peer_away``), and the new doctor joins the same call within the grace period.
    """
    from sqlalchemy import update

    from server.channels import consultation_channel
    from server.db.models import Consultation
    from server.keys import context_key

    old, old_sub, patient, patient_sub, call_id = await start_call(client, chat_setup)
    await patient.event(patient_sub, "call.media")  # the doctor's media state, announced on the patient's join
    successor = await factories.staff("doctor")
    async with factories.session_factory() as session:
        await session.execute(
            update(Consultation).where(Consultation.id == chat_setup.consultation.id).values(doctor_id=successor.id)
        )
        await session.commit()
    await client.app[context_key].bus.publish(
        consultation_channel(chat_setup.consultation.id),
        {
            "type": "consultation.updated",
            "consultation_id": chat_setup.consultation.id,
            "status": "active",
            "reason": "handover",
        },
    )
    removed = await old.event(old_sub, "call.ended")
    assert removed["reason"] == "reassigned" and removed["call_id"] == call_id
    away = await patient.event(patient_sub, "call.peer_away")
    assert away["who"] == "doctor" and away["rejoin_deadline"]
    assert error_code(await old.request("call.offer", call_id=call_id, sdp=OFFER)) == "not_joined"
    assert error_code(await old.request("call.media", call_id=call_id, audio=False, video=False)) == "not_joined"
    _again, rejoin = await join(old, chat_setup.consultation.id)
    assert error_code(rejoin) == "not_found"  # no longer this consultation's doctor
    assert _described(patient) == []
    with pytest.raises(TimeoutError):
        await patient.event(patient_sub, "call.media", timeout=0.3)
    new = await connect(client, await factories.login_staff(client, successor))
    new_sub, new_join = await join(new, chat_setup.consultation.id)
    assert new_join["success"], new_join
    assert new_join["result"]["call_id"] == call_id and new_join["result"]["peer"]["present"] is True
    joined = await patient.event(patient_sub, "call.peer_joined")
    assert joined["who"] == "doctor" and joined["rejoin"] is True
    assert (await new.request("call.offer", call_id=call_id, sdp=OFFER))["success"]
    assert (await patient.event(patient_sub, "call.description"))["description"]["type"] == "offer"
    assert (await new.event(new_sub, "call.media"))["from"] == "patient"  # re-announced to the newcomer
