"""TURN with short-lived credentials through a real coturn (R11.1: calls behind firewalls still connect).

The test starts its own coturn on free loopback ports with the production peer rules plus
``allowed-peer-ip=127.0.0.1``; the server issues TURN REST credentials from the same secret.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from server.clock import FixedClock
from server.config import Settings
from signaling import ice
from signaling.peers.client import CallPeer, SocketClient
from signaling.peers.net import pin_host_addresses
from tests.factories import Factories
from tests.signaling.coturn import Coturn, start_coturn

pytestmark = pytest.mark.slow
ORIGIN = "http://testserver"


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    server = start_coturn(tmp_path / "coturn", allow_loopback=True)
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, coturn: Coturn) -> Settings:
    """The server issues credentials for this coturn: UDP and TCP on one port, TLS on another."""
    from pydantic import SecretStr

    return settings.model_copy(
        update={
            "rtc_host_addresses": ["127.0.0.1"],
            "rtc_turn_urls": [
                f"turn:127.0.0.1:{coturn.port}?transport=udp",
                f"turn:127.0.0.1:{coturn.port}?transport=tcp",
                f"turns:127.0.0.1:{coturn.tls_port}?transport=tcp",
            ],
            "rtc_turn_secret": SecretStr(coturn.secret),
        }
    )


class _Sink:
    def connection_made(self, transport: Any) -> None:
        pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        pass

    def connection_lost(self, exc: Any) -> None:
        pass


async def allocate(coturn: Coturn, username: str, password: str, *, transport: str = "udp", tls: bool = False) -> Any:
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context(cafile=str(coturn.cert))
    port = coturn.tls_port if tls else coturn.port
    turn, _ = await create_turn_endpoint(
        _Sink, ("127.0.0.1", port), username, password, ssl=context, transport=transport
    )
    return turn


async def test_a_relay_only_call_connects_through_coturn_with_credentials_the_server_issued(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    clock.set(datetime.now(UTC))  # coturn checks the expiry against real time
    pin_host_addresses(["127.0.0.1"])
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(patient, doctor, status="active", channel="video")
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        p_socket = await SocketClient.connect(
            session, base, (await factories.login_insured(client, patient))["access_token"], origin=ORIGIN
        )
        d_socket = await SocketClient.connect(
            session, base, (await factories.login_staff(client, doctor))["access_token"], origin=ORIGIN
        )
        doctor_peer = CallPeer(d_socket, consultation.id, relay_only=True)
        patient_peer = CallPeer(p_socket, consultation.id, relay_only=True, video=False)
        try:
            joined = await doctor_peer.join()
            (turn,) = joined["ice_servers"]
            assert turn["username"].endswith(f":call{joined['call_id']}") and len(turn["urls"]) == 3
            await patient_peer.join()
            await asyncio.wait_for(patient_peer.connected.wait(), 20)
            await asyncio.wait_for(doctor_peer.connected.wait(), 20)
            assert await patient_peer.counter.wait_for("video", 5, within=15) >= 5
            assert await doctor_peer.counter.wait_for("audio", 5, within=15) >= 5
            for peer in (doctor_peer, patient_peer):
                assert peer.pc is not None
                lines = [line for line in peer.pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
                assert lines and all(" typ relay " in line for line in lines), lines
        finally:
            await doctor_peer.close()
            await patient_peer.close()
            await p_socket.close()
            await d_socket.close()
            pin_host_addresses([])


async def test_server_issued_credentials_work_over_udp_tcp_and_tls_and_expired_ones_get_401(coturn: Coturn) -> None:
    now = datetime.now(UTC)
    fresh = ice.turn_credential(coturn.secret, "call1", now, 600)
    for transport, tls in (("udp", False), ("tcp", False), ("tcp", True)):
        turn = await allocate(coturn, fresh.username, fresh.password, transport=transport, tls=tls)
        assert turn.get_extra_info("sockname")[0] == "127.0.0.1"  # a relayed address was allocated
        turn.close()
    expired = ice.turn_credential(coturn.secret, "call1", now - timedelta(hours=1), 600)
    with pytest.raises(TransactionFailed) as refused:
        await allocate(coturn, expired.username, expired.password)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    forged = ice.turn_credential("not-the-secret", "call1", now, 600)
    with pytest.raises(TransactionFailed) as wrong:
        await allocate(coturn, forged.username, forged.password)
    assert wrong.value.response.attributes["ERROR-CODE"][0] == 401


@pytest.mark.parametrize("peer", ["10.0.0.5", "169.254.169.254", "192.168.1.10", "172.16.0.1", "100.64.0.1"])
async def test_the_production_peer_rules_refuse_private_and_metadata_addresses(coturn: Coturn, peer: str) -> None:
    credential = ice.turn_credential(coturn.secret, "call1", datetime.now(UTC), 600)
    turn = await allocate(coturn, credential.username, credential.password)
    try:
        inner = turn._TurnTransport__inner_protocol
        with pytest.raises(TransactionFailed) as denied:
            await inner.channel_bind(0x4000, (peer, 9))
        assert denied.value.response.attributes["ERROR-CODE"][0] == 403
    finally:
        turn.close()


def test_the_production_config_denies_every_internal_range_and_tcp_relays() -> None:
    import ipaddress

    from tests.signaling.coturn import PRODUCTION_CONF

    text = PRODUCTION_CONF.read_text()
    assert "no-tcp-relay" in text.splitlines() and "use-auth-secret" in text and "allowed-peer-ip" not in text
    ranges = []
    for line in text.splitlines():
        if line.startswith("denied-peer-ip="):
            low, _, high = line.split("=", 1)[1].partition("-")
            ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))

    def denied(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(type(low) is type(ip) and low <= ip <= high for low, high in ranges)  # type: ignore[operator]

    for address in (
        "127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.0.1", "169.254.169.254", "100.100.100.200",  # Alibaba metadata
        "0.0.0.0", "224.0.0.1", "::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
        "64:ff9b:1::1", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1",
    ):  # fmt: skip
        assert denied(address), address
    for address in ("8.8.8.8", "77.88.8.8", "2a02:6b8::feed:0ff"):
        assert not denied(address), address
