"""THE single place where an imported person gets their personal insured identifier.

ISSUE 11 (hardening) adds a personal identifier to every insured person, unique across the insurer and
used at login. Until their generator is on main this returns no extra columns; after it lands, call
their generator here (and nowhere else) so that every person created by a list import gets one.
"""

from __future__ import annotations

from typing import Any

from server.domain.insured_list import ListEntry


def identifier_columns(entry: ListEntry) -> dict[str, Any]:
    """Extra ``insured_persons`` columns for a new person: their personal identifier (issue 11; none yet)."""
    del entry
    return {}
