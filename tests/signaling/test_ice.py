"""TURN REST credentials and the ICE server list (R11.1: calls must get through corporate firewalls)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from signaling import ice

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = ice.IceConfig(
    stun_urls=("stun:turn.example:3478",),
    turn_urls=(
        "turn:turn.example:3478?transport=udp",
        "turn:turn.example:3478?transport=tcp",
        "turns:turn.example:443?transport=tcp",
    ),
    turn_secret="north-secret",
    ttl_seconds=600,
)


def test_credential_is_expiry_colon_user_and_base64_hmac_sha1_as_coturn_expects() -> None:
    credential = ice.turn_credential("north-secret", "call-9", NOW, 600)
    expiry = int(NOW.timestamp()) + 600
    assert credential.username == f"{expiry}:call-9"
    expected = base64.b64encode(hmac.new(b"north-secret", credential.username.encode(), hashlib.sha1).digest()).decode()
    assert credential.password == expected
    assert credential.expires_at == datetime.fromtimestamp(expiry, tz=UTC)


def test_lifetime_has_a_floor_and_the_user_may_not_contain_a_colon() -> None:
    assert ice.turn_credential("s", "u", NOW, 1).expires_at.timestamp() == NOW.timestamp() + ice.MIN_TTL_SECONDS
    with pytest.raises(ValueError, match="may not contain"):
        ice.turn_credential("s", "a:b", NOW, 600)


def test_ice_servers_carry_stun_and_turn_over_udp_tcp_and_tls_443() -> None:
    result = ice.ice_servers(CONFIG, "call-9", NOW)
    stun, turn = result["ice_servers"]
    assert stun == {"urls": ["stun:turn.example:3478"]}
    assert "turns:turn.example:443?transport=tcp" in turn["urls"] and len(turn["urls"]) == 3
    assert turn["username"].endswith(":call-9") and turn["credential"]
    assert result["ice_transport_policy"] == "all" and result["expires_at"].startswith("2026-12-01T12:10")


def test_relay_only_leaves_stun_out_and_fresh_credentials_differ_later() -> None:
    first = ice.ice_servers(CONFIG, "call-9", NOW, relay_only=True)
    assert [server.get("username") is not None for server in first["ice_servers"]] == [True]
    assert first["ice_transport_policy"] == "relay"
    later = ice.ice_servers(CONFIG, "call-9", NOW.replace(minute=5), relay_only=True)
    assert later["ice_servers"][0]["credential"] != first["ice_servers"][0]["credential"]


def test_without_turn_there_are_no_credentials() -> None:
    assert ice.ice_servers(ice.IceConfig(), "c", NOW) == {
        "ice_servers": [],
        "expires_at": None,
        "ice_transport_policy": "all",
    }
