"""ICE servers for a call and TURN REST credentials (pure: pass ``now``).

coturn's ``use-auth-secret`` (the "TURN REST API" draft, draft-uberti-behave-turn-rest-00):
the username is ``<expiry unix time>:<user>`` and the password is
``base64(HMAC-SHA1(shared secret, username))``. coturn recomputes the password from the username
and refuses it once the expiry has passed, so a credential needs no storage and no revocation:
it is short-lived instead. Clients fetch fresh servers (``call.ice_servers``) before any reconnect;
a credential that expires during a call does not end it (coturn only checks on allocation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

MIN_TTL_SECONDS: Final = 60
DEFAULT_TTL_SECONDS: Final = 600


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """One TURN REST credential."""

    username: str
    password: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IceConfig:
    """What the settings say about ICE: STUN and TURN URLs, the shared secret, credential lifetime."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[
        str, ...
    ] = ()  # e.g. turn:turn.example:3478?transport=udp, ...tcp, turns:turn.example:443?transport=tcp
    turn_secret: str = ""
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    @property
    def has_turn(self) -> bool:
        """Whether TURN is configured (URLs and a secret)."""
        return bool(self.turn_urls) and bool(self.turn_secret)


def turn_credential(secret: str, user: str, now: datetime, ttl_seconds: int) -> TurnCredential:
    """A TURN REST credential for ``user`` valid ``ttl_seconds`` from ``now``.

    ``user`` must not contain ``:`` (coturn splits the username at the first one it finds from the
    left for the timestamp); callers pass an opaque per-call id, never a name or a policy number.
    """
    if ":" in user:
        raise ValueError("the TURN user part may not contain ':'")
    expires = int(now.timestamp()) + max(MIN_TTL_SECONDS, ttl_seconds)
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode("ascii")
    return TurnCredential(username, password, datetime.fromtimestamp(expires, tz=UTC))


def ice_servers(config: IceConfig, user: str, now: datetime, *, relay_only: bool = False) -> dict[str, Any]:
    """The ``iceServers`` list (RTCConfiguration form) and when its credentials expire.

    ``relay_only`` (the second step down) leaves STUN out: the client also sets
    ``iceTransportPolicy: "relay"``.
    """
    servers: list[dict[str, Any]] = []
    expires_at: datetime | None = None
    if config.stun_urls and not relay_only:
        servers.append({"urls": list(config.stun_urls)})
    if config.has_turn:
        credential = turn_credential(config.turn_secret, user, now, config.ttl_seconds)
        servers.append(
            {"urls": list(config.turn_urls), "username": credential.username, "credential": credential.password}
        )
        expires_at = credential.expires_at
    return {
        "ice_servers": servers,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
        "ice_transport_policy": "relay" if relay_only else "all",
    }
