"""Real aiortc peers through the server (R11.1: audio and video consultations), media only on loopback.

Two aiortc clients play the patient and the doctor over the real client WebSocket; audio and
video frames must arrive at each side, a renegotiation (audio to video) and a recovery after one
side's transport is cut must keep the call going, and the echo peer must return frames and grade
the link. ``iceServers`` come from the server's settings, which here have none: no public STUN.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from signaling.peers.client import CallError, CallPeer, SocketClient
from signaling.peers.media import FrameCounter, PatternVideoTrack, silence
from signaling.peers.net import pin_host_addresses
from tests.factories import Factories

pytestmark = [pytest.mark.slow, pytest.mark.settings(rtc_host_addresses=["127.0.0.1"])]

ORIGIN = "http://testserver"


@dataclass
class Parties:
    patient: SocketClient
    doctor: SocketClient
    consultation_id: int


@pytest.fixture
async def parties(client: TestClient, factories: Factories) -> AsyncIterator[Parties]:
    pin_host_addresses(["127.0.0.1"])  # the peers in this process too
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(patient, doctor, status="active", channel="video")
    patient_tokens = await factories.login_insured(client, patient)
    doctor_tokens = await factories.login_staff(client, doctor)
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        sockets = Parties(
            await SocketClient.connect(session, base, patient_tokens["access_token"], origin=ORIGIN),
            await SocketClient.connect(session, base, doctor_tokens["access_token"], origin=ORIGIN),
            consultation.id,
        )
        yield sockets
        await sockets.patient.close()
        await sockets.doctor.close()
    pin_host_addresses([])


async def test_audio_and_video_reach_both_sides_then_audio_to_video_then_recovery_after_a_cut(
    parties: Parties,
) -> None:
    doctor = CallPeer(parties.doctor, parties.consultation_id, audio=True, video=True)
    patient = CallPeer(parties.patient, parties.consultation_id, audio=True, video=False)
    try:
        joined = await doctor.join()
        assert joined["ice_servers"] == []  # nothing configured: no public STUN in tests
        await patient.join()
        await asyncio.wait_for(patient.connected.wait(), 15)
        await asyncio.wait_for(doctor.connected.wait(), 15)
        assert await patient.counter.wait_for("audio", 10) >= 10
        assert await patient.counter.wait_for("video", 5) >= 5
        assert await doctor.counter.wait_for("audio", 10) >= 10
        assert doctor.counter.frames.get("video", 0) == 0  # the patient's camera is not on yet

        patient.add_video()  # renegotiation from the polite side: audio to video
        assert await doctor.counter.wait_for("video", 5, within=15) >= 5
        assert await doctor.counter.wait_for("audio", 5) >= 5

        await patient.cut_transport()  # the patient's media transport dies; signalling survives
        record = await patient.recover()
        assert record["step"] == "ice_restart"
        await asyncio.wait_for(patient.connected.wait(), 15)
        assert patient.generation == 2 and doctor.generation >= 2  # both rebuilt (aiortc cannot restart ICE)
        assert await doctor.counter.wait_for("audio", 10, within=15) > 0
        assert await patient.counter.wait_for("video", 5, within=15) > 0
        assert any(event["type"] == "call.step_down" for event in doctor.events)
        assert (await doctor.hang_up())["ended"] is True
    finally:
        await doctor.close()
        await patient.close()


async def test_the_echo_peer_returns_frames_and_grades_the_link(parties: Parties) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter()
    pc.on("track", counter.consume)
    pc.addTrack(silence())
    pc.addTrack(PatternVideoTrack())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer: dict[str, Any] = await parties.patient.request("echo.offer", sdp=pc.localDescription.sdp, v=1)
        with pytest.raises(CallError) as busy:
            await parties.patient.request("echo.offer", sdp=pc.localDescription.sdp)
        assert busy.value.code == "echo_busy"  # one device check per socket
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        assert await counter.wait_for("video", 10) >= 10  # our own camera, returned
        assert await counter.wait_for("audio", 10) >= 10
        stats: dict[str, Any] = {}
        for _ in range(50):
            stats = await parties.patient.request("echo.stats", session=answer["session"])
            if stats["rtt_ms"] is not None:
                break
            await counter.wait_for("audio", 10)
        assert stats["rtt_ms"] is not None and stats["rtt_ms"] < 1000
        assert stats["grade"] in ("good", "fair", "poor") and stats["loss_pct"] >= 0 and stats["jitter_ms"] >= 0
        assert stats["frames_returned"]["video"] > 0 and stats["packets_received"] > 0
        await parties.patient.request("echo.stop", session=answer["session"])
        with pytest.raises(CallError) as gone:
            await parties.patient.request("echo.stats", session=answer["session"])
        assert gone.value.code == "not_found"
        with pytest.raises(CallError) as bad:
            not_webrtc = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 X 0\r\n"
            await parties.doctor.request("echo.offer", sdp=not_webrtc)
        assert bad.value.code == "echo_failed"
    finally:
        await counter.close()
        await pc.close()
