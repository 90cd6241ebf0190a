"""The roles a caller can have; the access rules of every area are written in these terms."""

from __future__ import annotations

from typing import Final

ROLE_INSURED: Final = "insured"
ROLE_DOCTOR: Final = "doctor"
ROLE_DISPATCHER: Final = "dispatcher"
ROLE_HR: Final = "hr"
ROLE_ADMIN: Final = "admin"
STAFF_ROLES: Final = frozenset({ROLE_DOCTOR, ROLE_DISPATCHER, ROLE_HR, ROLE_ADMIN})
