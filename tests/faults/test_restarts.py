"""Cases a and b: PostgreSQL, then Redis, restarted mid-chat between two server processes (issue 11, item 12).

a. While PostgreSQL is down every write is refused with ``unavailable`` (nothing saved) and
   /readyz is 503; the clients resend with the same client_message_id; once it is back every
   acknowledged message is stored exactly once and delivered to the other side exactly once.
b. While Redis is down the messages are stored and acknowledged (the database is the truth),
   /readyz is 503; once it is back every process resyncs: the feeds catch up, the notification
   subscriptions are told ``resync`` and the doctor reloads the queue over HTTP.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.faults.conftest import Scene
from tests.faults.harness import PgCluster, RedisServer, ServerProcess, counts_line, readyz, server_env, servers
from tests.faults.scenes import delivered_once, log_dir, open_chat, stored_counts

# Two server processes start in about 5 s on an idle machine, over 30 s on this shared one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


async def _all_503(http: aiohttp.ClientSession, *processes: ServerProcess, within: float = 10) -> list[int]:
    """Poll /readyz until every process says 503 (or the time is up); the last statuses."""
    statuses: list[int] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        statuses = list(await asyncio.gather(*(readyz(http, p) for p in processes)))
        if statuses == [503] * len(processes):
            break
        await asyncio.sleep(0.2)
    return statuses


async def test_postgres_restarted_mid_chat_refuses_then_stores_each_message_once(
    scene: Scene, pg_cluster: PgCluster, redis_server: RedisServer
) -> None:
    env = server_env(scene.database_url, redis_server.url, scene.redis_prefix, scene.data_dir)
    logs = log_dir(scene)
    with servers(ServerProcess("a", env, logs / "a.log"), ServerProcess("b", env, logs / "b.log")) as (a, b):
        async with aiohttp.ClientSession() as http:
            chat = await open_chat(http, scene, a, b)
            await chat.exchange("before", 2)
            await asyncio.to_thread(pg_cluster.stop, "fast")
            try:
                during = await _all_503(http, a, b)
                outage: list[tuple[str, str]] = []  # (who, cmid) refused during the outage
                for n in range(3):
                    for who, ledger, client in (("p", chat.p, chat.patient), ("d", chat.d, chat.doctor)):
                        cmid = f"outage-{who}{n}"
                        frame = await ledger.send(client, chat.cid, cmid, f"{who} during the outage {n}")
                        assert not frame["success"] and frame["error"]["code"] == "unavailable", frame
                        outage.append((who, cmid))
            finally:
                await asyncio.to_thread(pg_cluster.start)
            for who, cmid in outage:  # the clients resend with the same client_message_id
                ledger, client = (chat.p, chat.patient) if who == "p" else (chat.d, chat.doctor)
                await ledger.send_until_stored(client, chat.cid, cmid, f"{who} during the outage resent")
            await chat.exchange("after", 2)
            await asyncio.gather(a.wait_ready(http, timeout=20), b.wait_ready(http, timeout=20))
            patient_seqs, doctor_seqs = set(chat.p.acks.values()), set(chat.d.acks.values())
            to_doctor = await chat.doctor.wait_messages(chat.cid, len(patient_seqs))
            to_patient = await chat.patient.wait_messages(chat.cid, len(doctor_seqs))
            await chat.close()
    stored, last_seq, status = await stored_counts(scene)
    acked = {**chat.p.acks, **chat.d.acks}
    doctor_got, doctor_dups = delivered_once(to_doctor, patient_seqs)
    patient_got, patient_dups = delivered_once(to_patient, doctor_seqs)
    print(
        counts_line(
            "a PostgreSQL restart",
            sent=chat.p.sent + chat.d.sent,
            refused_unavailable=chat.p.refused.get("unavailable", 0) + chat.d.refused.get("unavailable", 0),
            acknowledged=len(acked),
            stored=sum(stored.values()),
            delivered_to_doctor=f"{doctor_got}/{len(patient_seqs)}",
            delivered_to_patient=f"{patient_got}/{len(doctor_seqs)}",
            duplicates=doctor_dups + patient_dups,
            readyz_during=during,
        )
    )
    assert during == [503, 503]
    assert len(acked) == 14 and stored == dict.fromkeys(acked, 1)  # every acknowledged message once
    assert sorted(acked.values()) == list(range(1, 15)) and last_seq == 14 and status == "active"
    assert (doctor_got, patient_got) == (len(patient_seqs), len(doctor_seqs)) == (7, 7)
    assert doctor_dups == patient_dups == 0


async def test_redis_restarted_mid_chat_stores_everything_and_every_process_resyncs(
    scene: Scene, redis_server: RedisServer
) -> None:
    env = server_env(scene.database_url, redis_server.url, scene.redis_prefix, scene.data_dir)
    logs = log_dir(scene)
    with servers(ServerProcess("a", env, logs / "a.log"), ServerProcess("b", env, logs / "b.log")) as (a, b):
        async with aiohttp.ClientSession() as http:
            chat = await open_chat(http, scene, a, b)
            notifications = await chat.doctor.request("notifications.subscribe")
            assert notifications["success"], notifications
            await chat.exchange("before", 2)
            redis_server.stop()
            try:
                during = await _all_503(http, a, b)
                slowest = 0.0
                for n in range(3):  # stored and acknowledged: the database does not need Redis
                    for ledger, client, who in ((chat.p, chat.patient, "p"), (chat.d, chat.doctor, "d")):
                        started = time.monotonic()
                        frame = await ledger.send(client, chat.cid, f"outage-{who}{n}", f"{who} without Redis {n}")
                        slowest = max(slowest, time.monotonic() - started)
                        assert frame["success"], frame
            finally:
                redis_server.start()
            await asyncio.gather(a.wait_ready(http, timeout=20), b.wait_ready(http, timeout=20))
            await chat.exchange("after", 2)
            patient_seqs, doctor_seqs = set(chat.p.acks.values()), set(chat.d.acks.values())
            to_doctor = await chat.doctor.wait_messages(chat.cid, len(patient_seqs))
            to_patient = await chat.patient.wait_messages(chat.cid, len(doctor_seqs))
            resyncs = [e for e in chat.doctor.events if e.get("type") == "resync"]
            async with http.get(
                b.url + "/api/doctor/queue", headers={"Authorization": f"Bearer {chat.doctor_token}"}
            ) as response:
                queue_status = response.status  # what the doctor's page does on "resync": reload the queue
            await chat.close()
    stored, last_seq, status = await stored_counts(scene)
    acked = {**chat.p.acks, **chat.d.acks}
    doctor_got, doctor_dups = delivered_once(to_doctor, patient_seqs)
    patient_got, patient_dups = delivered_once(to_patient, doctor_seqs)
    print(
        counts_line(
            "b Redis restart",
            sent=chat.p.sent + chat.d.sent,
            acknowledged=len(acked),
            stored=sum(stored.values()),
            delivered_to_doctor=f"{doctor_got}/{len(patient_seqs)}",
            delivered_to_patient=f"{patient_got}/{len(doctor_seqs)}",
            duplicates=doctor_dups + patient_dups,
            doctor_resync_events=len(resyncs),
            slowest_ack_s=f"{slowest:.2f}",
            readyz_during=during,
        )
    )
    assert during == [503, 503]
    assert chat.p.sent + chat.d.sent == len(acked) == 14 and stored == dict.fromkeys(acked, 1)
    assert sorted(acked.values()) == list(range(1, 15)) and last_seq == 14 and status == "active"
    assert (doctor_got, patient_got) == (7, 7) and doctor_dups == patient_dups == 0
    assert resyncs, "the doctor's notification subscription is told to reload after the bus came back"
    assert queue_status == 200
    assert slowest < 1.5
