"""The list import's fast paths give exactly what the slow ones give (issue 16, import throughput).

The bulk insured-number generator keeps issue 11's guarantees (Luhn digit, first digit not zero, no
``09``/``90``), and the compiled RU phone check never calls valid a number ``phonenumbers`` refuses.
"""

from __future__ import annotations

import random

import phonenumbers
from stdnum import luhn

from server.domain.insured_list import _ru_valid, normalise_phone
from server.domain.insured_number import luhn_check_digit, new_insured_numbers, normalize_insured_number


def test_bulk_insured_numbers_keep_the_check_digit_and_skip_09_90() -> None:
    numbers = new_insured_numbers(5000)
    assert len(numbers) == 5000 and len(set(numbers)) == 5000
    for number in numbers:
        assert len(number) == 12 and number.isdigit() and number[0] != "0"
        assert "09" not in number and "90" not in number
        assert luhn.is_valid(number) and normalize_insured_number(number) == number


def test_the_inline_luhn_digit_is_python_stdnums() -> None:
    rnd = random.Random(16)
    for _ in range(5000):
        body = str(rnd.randrange(10**10, 10**11))
        assert luhn_check_digit(body) == luhn.calc_check_digit(body)


def test_bulk_draws_are_redrawn_when_over_the_unbiased_limit_or_holding_09() -> None:
    """Draws at the top of the 64-bit range (modulo bias) and bodies with 09 are skipped, not kept."""
    top = b"\xff" * 8
    body_09 = (9 * 10**9).to_bytes(8, "big")  # body 19000000000: holds "90"
    plain = (1234567).to_bytes(8, "big")  # body 10001234567
    pools = iter([top + body_09 + plain, plain, plain])
    numbers = new_insured_numbers(3, token_bytes=lambda _size: next(pools))
    expected = "10001234567" + luhn.calc_check_digit("10001234567")
    assert numbers == [expected] * 3


def test_the_compiled_ru_check_never_accepts_what_phonenumbers_refuses() -> None:
    """Over random +7 numbers (Russian and Kazakh ranges, short and long) the fast answer matches the library."""
    rnd = random.Random(7)
    for _ in range(20000):
        national = rnd.randrange(10**8, 10**10)
        library = phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=7, national_number=national))
        if _ru_valid(str(national)):
            assert library, national
        office = f"8 ({str(national)[:3]}) {str(national)[3:]}"
        expected = f"+7{national}" if library else None
        if len(str(national)) == 10:
            assert normalise_phone(office) == expected, office


def test_kazakh_and_toll_free_numbers_still_go_through_the_library() -> None:
    assert normalise_phone("8 (701) 123-45-67") == "+77011234567"  # KZ mobile, +7 too
    assert normalise_phone("8 800 555-35-35") == "+78005553535"
    assert normalise_phone("+7 (000) 000-00-00") is None
