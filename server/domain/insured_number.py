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
_BODY_LOW = 10 ** (INSURED_NUMBER_DIGITS - 2)  # 11 digits, the first not zero
_BODY_SPAN = 9 * _BODY_LOW
_DRAW_BYTES = 8
_DRAW_LIMIT = (1 << (8 * _DRAW_BYTES)) // _BODY_SPAN * _BODY_SPAN  # draws at or above are redrawn (no modulo bias)
_DOUBLED = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}


def new_insured_number(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh 12-digit insured number (uniqueness is the database's unique index)."""
    while True:
        body = str(1 + randbelow(9)) + "".join(str(randbelow(10)) for _ in range(INSURED_NUMBER_DIGITS - 2))
        number = body + luhn.calc_check_digit(body)
        if not any(pair in number for pair in _SWAPS_LUHN_MISSES):
            return number


def new_insured_numbers(count: int, token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> list[str]:
    """``count`` fresh numbers at once, drawn as :func:`new_insured_number` draws one (uniform body, no 09/90).

    A list import needs 100,000 of them: one read of the OS's random source per batch instead of eleven
    per number, and the Luhn digit computed inline (the tests check it against python-stdnum's).
    """
    numbers: list[str] = []
    while len(numbers) < count:
        need = count - len(numbers)
        pool = token_bytes(_DRAW_BYTES * need)
        for start in range(0, len(pool), _DRAW_BYTES):
            value = int.from_bytes(pool[start : start + _DRAW_BYTES])
            if value >= _DRAW_LIMIT:
                continue
            body = str(_BODY_LOW + value % _BODY_SPAN)
            number = body + luhn_check_digit(body)
            if "09" not in number and "90" not in number:
                numbers.append(number)
    return numbers


def luhn_check_digit(body: str) -> str:
    """The Luhn check digit of a string of digits (same as ``stdnum.luhn.calc_check_digit``, faster)."""
    total = sum(_DOUBLED[ch] for ch in body[-1::-2]) + sum(ord(ch) - 48 for ch in body[-2::-2])
    return str(-total % 10)


def normalize_insured_number(text: str) -> str | None:
    """The 12 digits of a typed number (spaces and dashes allowed), or ``None`` if it is not one."""
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != INSURED_NUMBER_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits if luhn.is_valid(digits) else None


def format_insured_number(number: str) -> str:
    """As printed on the card: ``1234 5678 9012``."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
