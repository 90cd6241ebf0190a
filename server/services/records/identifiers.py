"""THE single place where an imported person gets their personal insured identifier.

Every insured person has their own insured number, printed on the card and used at login with
the birth date (issue 11): on a corporate policy the policy number is shared and birth dates
collide. The generator is :func:`server.domain.insured_number.new_insured_numbers` (the bulk form of
:func:`~server.domain.insured_number.new_insured_number`); this hook gives each person a list import
creates one (the import draws again the rare one already taken; the unique index is the last guard).
"""

from __future__ import annotations

from server.domain.insured_number import new_insured_numbers


def insured_numbers(count: int) -> list[str]:
    """The personal insured numbers of ``count`` new persons, drawn at once (the caller checks they are free)."""
    return new_insured_numbers(count)
