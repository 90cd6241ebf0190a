"""JWT access tokens (PyJWT, HS256 pinned) and opaque refresh tokens / tickets stored hashed.

Checklist A1-A3: the algorithm list is fixed in code and never read from the token, every
claim we rely on is required, and ``typ`` separates access tokens from anything else.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from server.domain.errors import Unauthorized

ALGORITHM: Final = "HS256"
ACCESS_TOKEN_TYPE: Final = "access"  # noqa: S105 - a claim value, not a secret
LEEWAY_SECONDS: Final = 10
REQUIRED_CLAIMS: Final = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid", "role", "typ"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    subject_type: str
    subject_id: int
    role: str
    session_id: str
    jti: str
    issued_at: datetime
    expires_at: datetime


class TokenService:
    """Issues and verifies access JWTs with one secret from configuration (A2)."""

    def __init__(self, secret: str, issuer: str, audience: str, ttl: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("JWT secret too short")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl

    def issue_access(
        self, *, subject_type: str, subject_id: int, role: str, session_id: str, now: datetime
    ) -> tuple[str, datetime]:
        """A signed access token and its expiry."""
        expires = now + self.ttl
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": f"{subject_type}:{subject_id}",
            "role": role,
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "typ": ACCESS_TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"typ": "JWT"})
        return token, expires

    def verify_access(self, token: str, *, now: datetime) -> AccessClaims:
        """Verify signature first, then claims; any failure is the same 401 (A1, A3)."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM or any(k in header for k in ("jwk", "jku", "x5u", "x5c")):
                raise jwt.InvalidTokenError("unexpected header")
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False},
            )
            # exp/nbf checked against the injected clock so tests can move time.
            timestamp = now.timestamp()
            if claims["exp"] + LEEWAY_SECONDS < timestamp or claims["nbf"] - LEEWAY_SECONDS > timestamp:
                raise jwt.InvalidTokenError("outside validity")
            if claims["typ"] != ACCESS_TOKEN_TYPE:
                raise jwt.InvalidTokenError("not an access token")
            subject_type, _, subject_id = str(claims["sub"]).partition(":")
            return AccessClaims(
                subject_type=subject_type,
                subject_id=int(subject_id),
                role=str(claims["role"]),
                session_id=str(claims["sid"]),
                jti=str(claims["jti"]),
                issued_at=datetime.fromtimestamp(claims["iat"], tz=now.tzinfo),
                expires_at=datetime.fromtimestamp(claims["exp"], tz=now.tzinfo),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("invalid or expired token", code="invalid_token") from exc


def new_opaque_token() -> str:
    """A random bearer secret (refresh token, WebSocket ticket): 256 bits from the OS CSPRNG."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of an opaque token; only the hash is stored, so a database leak reveals no tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def _successor_pad(old_token: str) -> bytes:
    return hashlib.sha512(b"telemed-refresh-successor:" + old_token.encode()).digest()


def seal_successor(old_token: str, successor: str) -> str:
    """The successor refresh token, readable only by whoever presents ``old_token``.

    Kept beside the spent token for the refresh grace window, so that a second tab refreshing the
    same token at the same moment gets the same successor (checklist A5). The database holds only
    the old token's hash, so a database leak does not reveal the successor.
    """
    raw = successor.encode()
    pad = _successor_pad(old_token)
    if len(raw) > len(pad):
        raise ValueError("successor token too long to seal")
    return bytes(a ^ b for a, b in zip(raw, pad, strict=False)).hex()


def open_successor(old_token: str, sealed: str) -> str:
    """Inverse of :func:`seal_successor`."""
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _successor_pad(old_token), strict=False)).decode()
