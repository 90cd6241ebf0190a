"""Case c: one of two server processes killed with SIGKILL mid-consultation (issue 11, item 12).

The patient is on A, the doctor on B. A is killed while a patient message is in flight; the
doctor goes on writing. The patient reconnects to B and resumes with ``after_seq``: no
acknowledged message is lost, none is duplicated, the in-flight one is resent with its
client_message_id and stored once, the consultation is still active with its doctor, and the
dead process's socket seat lapses (the cap is 1 socket per user here, so the patient gets a seat
on B only once A's has lapsed; the seat TTL is 3 s instead of production's 90 s).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import redis.asyncio as redis_asyncio

from tests.faults.conftest import Scene
from tests.faults.harness import Client, RedisServer, ServerProcess, counts_line, open_client, server_env, servers
from tests.faults.scenes import delivered_once, log_dir, open_chat, stored_counts

# Two server processes start in about 5 s on an idle machine, over 30 s on this shared one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

SEAT_TTL = 3.0


async def _reconnect(http: aiohttp.ClientSession, server: ServerProcess, token: str) -> tuple[Client, int]:
    """Open a socket, retrying while the user's seats are all taken (4029); the socket and the refusals."""
    refused = 0
    async with asyncio.timeout(SEAT_TTL * 5):
        while True:
            try:
                return await open_client(http, server, token, "patient-again"), refused
            except (AssertionError, TypeError, json.JSONDecodeError, aiohttp.ClientError):
                refused += 1
                await asyncio.sleep(0.2)


async def test_a_process_killed_mid_consultation_loses_and_duplicates_nothing(
    scene: Scene, redis_server: RedisServer
) -> None:
    env = server_env(
        scene.database_url,
        redis_server.url,
        scene.redis_prefix,
        scene.data_dir,
        TELEMED_WS_SEAT_TTL_SECONDS=str(SEAT_TTL),
        TELEMED_WS_MAX_CONNECTIONS_PER_SUBJECT="1",
    )
    logs = log_dir(scene)
    with servers(ServerProcess("a", env, logs / "a.log"), ServerProcess("b", env, logs / "b.log")) as (a, b):
        async with aiohttp.ClientSession() as http:
            chat = await open_chat(http, scene, a, b)
            await chat.exchange("before", 3)
            seen_before = chat.patient.messages(chat.cid)
            # A patient message in flight when A dies: sent, no answer awaited.
            chat.p.sent += 1
            await chat.patient.ws.send_str(
                json.dumps(
                    {
                        "id": 999,
                        "type": "chat.send",
                        "consultation_id": chat.cid,
                        "client_message_id": "in-flight",
                        "text": "sent as A died",
                    }
                )
            )
            a.kill()
            killed_at = time.monotonic()
            for n in range(3):
                await chat.d.send_until_stored(chat.doctor, chat.cid, f"away-d{n}", f"doctor while away {n}")
            patient, refused = await _reconnect(http, b, chat.patient_token)
            seat_wait = time.monotonic() - killed_at
            # The client's cursor: the highest seq up to which it knows every message (its own
            # acknowledgements and the events it got); a gap means "missed", so it resumes below it.
            have = {*chat.p.acks.values(), *(int(m["seq"]) for m in seen_before)}
            known = 0
            while known + 1 in have:
                known += 1
            resumed = await patient.ok("consultation.subscribe", consultation_id=chat.cid, after_seq=known)
            in_flight_seq = await chat.p.send_until_stored(patient, chat.cid, "in-flight", "sent as A died")
            in_flight_was_stored = chat.p.duplicate_acks == 1
            chat.patient = patient
            await chat.exchange("after", 2)
            patient_seqs, doctor_seqs = set(chat.p.acks.values()), set(chat.d.acks.values())
            to_doctor = await chat.doctor.wait_messages(chat.cid, len(patient_seqs))
            after_resume = await patient.wait_messages(chat.cid, len({s for s in doctor_seqs if s > known}))
            async with http.get(
                b.url + f"/api/consultations/{chat.cid}", headers={"Authorization": f"Bearer {chat.doctor_token}"}
            ) as response:
                assert response.status == 200, await response.text()
                consultation = await response.json()
            redis = redis_asyncio.Redis.from_url(redis_server.url)
            try:
                clock = await redis.time()
                now_ms = clock[0] * 1000 + clock[1] // 1000
                live_seats = await redis.zcount(
                    f"{scene.redis_prefix}:ws-seats:insured:{scene.patient_id}", now_ms, "+inf"
                )
            finally:
                await redis.aclose()
            await chat.close()
    stored, last_seq, status = await stored_counts(scene)
    acked = {**chat.p.acks, **chat.d.acks}
    to_patient = [m for m in seen_before if int(m["seq"]) <= known] + after_resume
    doctor_got, doctor_dups = delivered_once(to_doctor, patient_seqs)
    patient_got, patient_dups = delivered_once(to_patient, doctor_seqs)
    print(
        counts_line(
            "c process killed",
            sent=chat.p.sent + chat.d.sent,
            acknowledged=len(acked),
            stored=sum(stored.values()),
            delivered_to_doctor=f"{doctor_got}/{len(patient_seqs)}",
            delivered_to_patient=f"{patient_got}/{len(doctor_seqs)}",
            duplicates=doctor_dups + patient_dups,
            in_flight="stored before the kill" if in_flight_was_stored else "stored on resend",
            seat_refusals=refused,
            seat_lapsed_after_s=f"{seat_wait:.1f}",
        )
    )
    assert stored == dict.fromkeys(acked, 1) and len(acked) == 14  # patient 3 + 1 in flight + 2, doctor 3 + 3 + 2
    assert sorted(acked.values()) == list(range(1, 15)) and last_seq == 14
    assert acked["in-flight"] == in_flight_seq
    assert resumed["after_seq"] == known and resumed["last_seq"] >= known
    trail = {
        "known": known,
        "before": [m["seq"] for m in seen_before],
        "after_resume": [m["seq"] for m in after_resume],
        "doctor_acks": chat.d.acks,
        "patient_acks": chat.p.acks,
    }
    assert (doctor_got, patient_got) == (len(patient_seqs), len(doctor_seqs)), trail
    assert doctor_dups == patient_dups == 0, trail
    assert [int(m["seq"]) for m in after_resume] == sorted(int(m["seq"]) for m in after_resume)  # in order, no gap
    assert status == "active" and consultation["status"] == "active"
    assert live_seats == 1  # the patient's socket on B; A's seat lapsed
    assert refused >= 1 and seat_wait < SEAT_TTL * 4
