"""THE single place where an imported person gets their personal insured identifier.

Every insured person has their own insured number, printed on the card and used at login with
the birth date (issue 11): on a corporate policy the policy number is shared and birth dates
collide. The generator is :func:`server.domain.insured_number.new_insured_number`; this hook
gives each person a list import creates one (the unique index catches the rare collision).
"""

from __future__ import annotations

from typing import Any

from server.domain.insured_list import ListEntry
from server.domain.insured_number import new_insured_number


def identifier_columns(entry: ListEntry) -> dict[str, Any]:
    """Extra ``insured_persons`` columns for a new person: their personal insured number."""
    del entry
    return {"insured_number": new_insured_number()}
