"""A call across two real server processes on PostgreSQL and Redis (R11.1 audio/video consultations).

The patient's socket is on process A, the doctor's on B; signalling crosses the Redis bus. Two
aiortc clients prove audio and video arrive both ways, a renegotiation (audio to video) and a
recovery after the patient's transport is cut keep the call going, and a patient who drops and
comes back on the other process within the grace period rejoins the same call.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from signaling.peers.client import CallPeer, SocketClient
from signaling.peers.net import pin_host_addresses
from tests.backends import REDIS_URL
from tests.factories import STAFF_PASSWORD, Factories
from tests.fakes import RecordingSender, outbox_code
from tests.test_multiprocess import ORIGIN, SECRET, ServerProcess, real_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two server processes start on a shared 2-core machine
__all__ = ["real_database"]  # the fixture, imported for this module


async def test_patient_on_a_doctor_on_b_media_both_ways_renegotiation_recovery_and_rejoin(
    real_database: str, redis_prefix: str, tmp_path: Path
) -> None:
    engine = make_engine(real_database)
    factories = Factories(make_session_factory(engine), FixedClock(datetime.now(UTC)), RecordingSender())
    try:
        patient = await factories.insured()
        doctor = await factories.staff("doctor")
        consultation = await factories.consultation(patient, doctor, status="active", channel="video")
        policy_number = await factories.policy_number_of(patient)
    finally:
        await engine.dispose()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "TELEMED_DATABASE_URL": real_database,
        "TELEMED_REDIS_URL": REDIS_URL,
        "TELEMED_REDIS_PREFIX": redis_prefix,
        "TELEMED_JWT_SECRET": SECRET,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": str(data_dir),
        "TELEMED_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        "TELEMED_LOG_JSON": "false",
        "TELEMED_LOG_LEVEL": "WARNING",
        "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
        "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
        "TELEMED_RTC_HOST_ADDRESSES": "127.0.0.1",
    }
    server_a = ServerProcess(env, tmp_path / "a.log")
    server_b = ServerProcess(env, tmp_path / "b.log")
    pin_host_addresses(["127.0.0.1"])
    peers: list[CallPeer] = []
    sockets: list[SocketClient] = []
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(server_a.wait_ready(http), server_b.wait_ready(http))
            async with http.post(
                server_a.url + "/api/auth/policy/start",
                json={"policy_number": policy_number, "birth_date": patient.birth_date.isoformat()},
            ) as response:
                challenge = (await response.json())["challenge_id"]
            code = await outbox_code(data_dir / "outbox.jsonl")
            async with http.post(
                server_a.url + "/api/auth/policy/verify", json={"challenge_id": challenge, "code": code}
            ) as response:
                patient_token = (await response.json())["access_token"]
            async with http.post(
                server_b.url + "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}
            ) as response:
                doctor_token = (await response.json())["access_token"]

            on_a = await SocketClient.connect(http, server_a.url, patient_token, origin=ORIGIN)
            on_b = await SocketClient.connect(http, server_b.url, doctor_token, origin=ORIGIN)
            sockets += [on_a, on_b]
            doctor_peer = CallPeer(on_b, consultation.id)
            patient_peer = CallPeer(on_a, consultation.id, video=False)
            peers += [doctor_peer, patient_peer]
            await doctor_peer.join()
            await patient_peer.join()
            await asyncio.wait_for(patient_peer.connected.wait(), 20)
            await asyncio.wait_for(doctor_peer.connected.wait(), 20)
            assert await patient_peer.counter.wait_for("audio", 10) > 0
            assert await patient_peer.counter.wait_for("video", 5) > 0
            assert await doctor_peer.counter.wait_for("audio", 10) > 0

            patient_peer.add_video()  # audio to video, across the bus
            assert await doctor_peer.counter.wait_for("video", 5, within=15) > 0

            await patient_peer.cut_transport()
            await patient_peer.recover()
            await asyncio.wait_for(patient_peer.connected.wait(), 20)
            assert await doctor_peer.counter.wait_for("video", 5, within=15) > 0
            assert await patient_peer.counter.wait_for("audio", 10, within=15) > 0

            # The patient's socket drops; they come back on process B and rejoin the same call.
            call_id = patient_peer.call_id
            await patient_peer.close()
            await on_a.close()
            async with asyncio.timeout(10):
                while not any(e["type"] == "call.peer_away" for e in doctor_peer.events):
                    await asyncio.sleep(0.05)
            again = await SocketClient.connect(http, server_b.url, patient_token, origin=ORIGIN)
            sockets.append(again)
            rejoined_peer = CallPeer(again, consultation.id)
            peers.append(rejoined_peer)
            result = await rejoined_peer.join()
            assert result["rejoined"] is True and result["call_id"] == call_id
            await asyncio.wait_for(rejoined_peer.connected.wait(), 20)
            assert await rejoined_peer.counter.wait_for("video", 5, within=15) > 0
            assert await doctor_peer.counter.wait_for("video", 5, within=15) > 0
            await doctor_peer.hang_up()
            async with http.get(
                server_a.url + f"/api/consultations/{consultation.id}/calls",
                headers={"Authorization": f"Bearer {patient_token}"},
            ) as response:
                (record,) = (await response.json())["calls"]
            assert record["ended_by"] == "doctor" and [s["step"] for s in record["step_downs"]] == ["ice_restart"]
    finally:
        for peer in peers:
            await peer.close()
        for socket in sockets:
            await socket.close()
        pin_host_addresses([])
        server_a.stop()
        server_b.stop()
