"""The personal insured number printed on each person's card, unique across the insurer.

A corporate policy covers hundreds of employees under one policy number, and two of them often
share a birth date, so ``policy number + birth date`` cannot say who is logging in. Every insured
person therefore has their own number: 11 random digits (the first not zero) and a Luhn check
digit (python-stdnum's), so a mistyped digit is caught before any lookup. Luhn misses exactly one
swap of neighbours, ``09`` <-> ``90``; the generator never issues a number holding either pair,
so every swap of two neighbours in an issued number is caught too. It is an identifier, not a
secret (checklist A7): login still needs the one-time code.

This module is the one generator; the insured-list import and the demo call
:func:`new_insured_number`, the login and the card use :func:`normalize_insured_number` and
:func:`format_insured_number`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from stdnum import luhn

INSURED_NUMBER_DIGITS = 12
_SWAPS_LUHN_MISSES = ("09", "90")


def new_insured_number(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh 12-digit insured number (uniqueness is the database's unique index)."""
    while True:
        body = str(1 + randbelow(9)) + "".join(str(randbelow(10)) for _ in range(INSURED_NUMBER_DIGITS - 2))
        number = body + luhn.calc_check_digit(body)
        if not any(pair in number for pair in _SWAPS_LUHN_MISSES):
            return number


def normalize_insured_number(text: str) -> str | None:
    """The 12 digits of a typed number (spaces and dashes allowed), or ``None`` if it is not one."""
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != INSURED_NUMBER_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits if luhn.is_valid(digits) else None


def format_insured_number(number: str) -> str:
    """As printed on the card: ``1234 5678 9012``."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
