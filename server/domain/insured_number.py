"""The personal insured number printed on each person's card, unique across the insurer.

A corporate policy covers hundreds of employees under one policy number, and two of them often
share a birth date, so ``policy number + birth date`` cannot say who is logging in. Every insured
person therefore has their own number: 11 random digits (the first not zero) and a Luhn check
digit, so a mistyped digit or two swapped neighbours are caught before any lookup. It is an
identifier, not a secret (checklist A7): login still needs the one-time code.

This module is the one generator; the insured-list import and the demo call
:func:`new_insured_number`, the login and the card use :func:`normalize_insured_number` and
:func:`format_insured_number`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

INSURED_NUMBER_DIGITS = 12


def luhn_check_digit(body: str) -> str:
    """The Luhn digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def new_insured_number(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh 12-digit insured number (uniqueness is the database's unique index)."""
    body = str(1 + randbelow(9)) + "".join(str(randbelow(10)) for _ in range(INSURED_NUMBER_DIGITS - 2))
    return body + luhn_check_digit(body)


def normalize_insured_number(text: str) -> str | None:
    """The 12 digits of a typed number (spaces and dashes allowed), or ``None`` if it is not one."""
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != INSURED_NUMBER_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits if luhn_check_digit(digits[:-1]) == digits[-1] else None


def format_insured_number(number: str) -> str:
    """As printed on the card: ``1234 5678 9012``."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
