"""Argon2id password hashing (argon2-cffi), with rehash-on-login and a dummy hash for unknown users."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Hash a password with the library's current Argon2id parameters."""
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not-a-real-password-used-for-timing")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; an unknown user still costs one verification (no timing enumeration)."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash uses outdated parameters and should be upgraded after login."""
    return _hasher.check_needs_rehash(password_hash)
