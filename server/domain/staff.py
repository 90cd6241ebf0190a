"""Rules for staff accounts (checklist A6): who may hold which role, and what a password must be."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from server.domain.roster import SPECIALTY_CODES

STAFF_ROLES: Final = ("doctor", "dispatcher", "hr", "admin")
MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 128
_USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{2,79}")
Problem = tuple[str, str]


def check_account(
    *, username: str | None, role: str, specialties: Sequence[str], hr_policyholder_id: int | None
) -> list[Problem]:
    """A doctor has known specialties, an HR user is bound to exactly one policyholder, nobody else is."""
    problems: list[Problem] = []
    if username is not None and _USERNAME.fullmatch(username) is None:
        problems.append(("username", "3-80 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"))
    if role not in STAFF_ROLES:
        problems.append(("role", f"one of {', '.join(STAFF_ROLES)}"))
    if role == "doctor" and not specialties:
        problems.append(("specialties", "a doctor needs at least one specialty"))
    unknown = sorted(set(specialties) - SPECIALTY_CODES)
    if unknown:
        problems.append(("specialties", f"unknown: {', '.join(unknown)}"))
    if role != "doctor" and specialties:
        problems.append(("specialties", "only doctors have specialties"))
    if role == "hr" and hr_policyholder_id is None:
        problems.append(("hr_policyholder_id", "an HR user is bound to one policyholder"))
    if role != "hr" and hr_policyholder_id is not None:
        problems.append(("hr_policyholder_id", "only HR users are bound to a policyholder"))
    return problems


def check_new_password(password: str, username: str) -> list[Problem]:
    """Length is what protects a password (NIST SP 800-63B): at least 12 characters, not the username."""
    problems: list[Problem] = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(("password", f"at least {MIN_PASSWORD_CHARS} characters"))
    if len(password) > MAX_PASSWORD_CHARS:
        problems.append(("password", f"at most {MAX_PASSWORD_CHARS} characters"))
    if username.casefold() in password.casefold():
        problems.append(("password", "must not contain the username"))
    return problems
