"""Case d: a Redis link that goes silent without closing, between two server processes (issue 11, item 12).

Each process reaches the suite's private Redis through its own :class:`SilentProxy`. First A's
link (the patient's process) goes silent: A's commit hints cannot be published, so only the
resync broadcast after the link returns tells B (the doctor's) to catch up. Then B's link goes
silent: A's hints are published but B never hears them, so only B's heartbeat check notices.
Seen before the fix (2026-12-01): 3 of 8 messages never reached the doctor's socket, writes stalled
about 5 s per batch and /readyz hung.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sqlalchemy import func, select

from server.db.models import Consultation, ConsultationMessage
from tests.factories import STAFF_PASSWORD
from tests.faults.conftest import Scene
from tests.faults.harness import (
    Client,
    Ledger,
    RedisServer,
    ServerProcess,
    SilentProxy,
    counts_line,
    open_client,
    patient_token,
    readyz,
    server_env,
    servers,
    staff_token,
)

# Two server processes start in about 5 s on an idle machine, over 30 s on this shared one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

SILENCE = 2.0  # the bus's silence limit in these servers (production: 5 s); everything else as in production
READINESS_LIMIT = 2.0


async def _silent_phase(
    http: aiohttp.ClientSession,
    proxy: SilentProxy,
    silent_server: ServerProcess,
    sends: list[tuple[Ledger, Client, str]],
    consultation_id: int,
) -> tuple[float, float, int]:
    """Silence one link, send, check /readyz, wait past the silence limit, restore. (max ack s, readyz s, status)"""
    proxy.silent = True
    slowest = 0.0
    for ledger, client, cmid in sends:
        started = time.monotonic()
        frame = await ledger.send(client, consultation_id, cmid, f"{ledger.sender} {cmid}")
        slowest = max(slowest, time.monotonic() - started)
        assert frame["success"], frame  # the database is fine: stored and acknowledged
    started = time.monotonic()
    status = await readyz(http, silent_server, timeout=READINESS_LIMIT + 3)
    readyz_seconds = time.monotonic() - started
    await asyncio.sleep(SILENCE + 1.0)
    proxy.silent = False
    return slowest, readyz_seconds, status


async def test_a_silent_redis_link_loses_no_message_and_stalls_nothing(
    scene: Scene, redis_server: RedisServer
) -> None:
    cid = scene.consultation_id
    proxies = [SilentProxy(redis_server.port), SilentProxy(redis_server.port)]
    for proxy in proxies:
        await proxy.start()
    extra = {"TELEMED_BUS_SILENCE_SECONDS": str(SILENCE), "TELEMED_READINESS_TIMEOUT_SECONDS": str(READINESS_LIMIT)}
    env_a = server_env(scene.database_url, proxies[0].url, scene.redis_prefix, scene.data_dir, **extra)
    env_b = server_env(scene.database_url, proxies[1].url, scene.redis_prefix, scene.data_dir, **extra)
    logs = scene.data_dir.parent
    try:
        with servers(ServerProcess("a", env_a, logs / "a.log"), ServerProcess("b", env_b, logs / "b.log")) as (a, b):
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(a.wait_ready(http), b.wait_ready(http))
                patient = await open_client(
                    http, a, await patient_token(http, a, scene.data_dir, scene.policy_number, scene.birth_date), "p"
                )
                doctor = await open_client(
                    http, b, await staff_token(http, b, scene.doctor_username, STAFF_PASSWORD), "d"
                )
                await patient.ok("consultation.subscribe", consultation_id=cid, after_seq=0)
                await doctor.ok("consultation.subscribe", consultation_id=cid, after_seq=0)
                p_ledger, d_ledger = Ledger("patient"), Ledger("doctor")
                await p_ledger.send_until_stored(patient, cid, "warm-p", "hello")
                await d_ledger.send_until_stored(doctor, cid, "warm-d", "hello back")
                await doctor.wait_messages(cid, 1)

                # Phase 1: A's link silent. A's hints are lost on the way; B's link is fine.
                phase1 = [(p_ledger, patient, f"a-silent-{n}") for n in range(4)]
                slow1, ready1_s, ready1 = await _silent_phase(http, proxies[0], a, phase1, cid)
                # Phase 2: B's link silent. A's hints reach Redis, B's subscription hears nothing.
                phase2 = [(p_ledger, patient, f"b-silent-{n}") for n in range(4)]
                phase2 += [(d_ledger, doctor, f"b-silent-d{n}") for n in range(2)]
                slow2, ready2_s, ready2 = await _silent_phase(http, proxies[1], b, phase2, cid)

                patient_seqs = set(p_ledger.acks.values())
                doctor_seqs = set(d_ledger.acks.values())
                got_by_doctor = await doctor.wait_messages(cid, len(patient_seqs))
                got_by_patient = await patient.wait_messages(cid, len(doctor_seqs))
                await asyncio.gather(a.wait_ready(http, timeout=15), b.wait_ready(http, timeout=15))
                await patient.close()
                await doctor.close()

        async with scene.factories.session_factory() as session:
            stored = (
                await session.execute(
                    select(ConsultationMessage.client_message_id, func.count())
                    .where(ConsultationMessage.consultation_id == cid)
                    .group_by(ConsultationMessage.client_message_id)
                )
            ).all()
            last_seq = await session.scalar(select(Consultation.last_seq).where(Consultation.id == cid))
    finally:
        for proxy in proxies:
            await proxy.close()

    acked = {**p_ledger.acks, **d_ledger.acks}
    doctor_got = [m["seq"] for m in got_by_doctor]
    patient_got = [m["seq"] for m in got_by_patient]
    print(
        counts_line(
            "d silent Redis link",
            sent=p_ledger.sent + d_ledger.sent,
            acknowledged=len(acked),
            stored=sum(count for _, count in stored),
            delivered_to_doctor=f"{len(set(doctor_got))}/{len(patient_seqs)}",
            delivered_to_patient=f"{len(set(patient_got))}/{len(doctor_seqs)}",
            slowest_ack_s=f"{max(slow1, slow2):.2f}",
            readyz_s=f"{max(ready1_s, ready2_s):.2f}",
            dropped_bytes=sum(p.dropped_bytes for p in proxies),
        )
    )
    assert len(acked) == p_ledger.sent + d_ledger.sent == 12
    assert {cmid: count for cmid, count in stored} == dict.fromkeys(acked, 1)  # stored exactly once each
    assert sorted(acked.values()) == list(range(1, 13)) and last_seq == 12
    assert sorted(doctor_got) == sorted(patient_seqs), "every patient message reaches the doctor, once"
    assert sorted(patient_got) == sorted(doctor_seqs), "every doctor message reaches the patient, once"
    assert max(slow1, slow2) < 1.5, "acknowledgements never wait for the silent bus"
    assert (ready1, ready2) == (503, 503) and max(ready1_s, ready2_s) < READINESS_LIMIT + 1.5
    assert all(p.dropped_bytes > 0 for p in proxies)  # the links really were silent
