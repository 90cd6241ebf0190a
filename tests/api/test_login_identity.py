"""One person must not lock out, or log in as, another (issue 11 items 6 and 7; checklist A7, A8).

A corporate policy covers hundreds of employees under one number, and several share a birth
date, so login uses each person's own insured number (on their card); the policy number still
works when it names one person, and asks for the phone's last digits when it names several.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.domain.insured_number import format_insured_number, new_insured_number, normalize_insured_number
from tests.factories import Factories, bearer

TWIN_BIRTH_DATE = date(1988, 3, 14)


async def _verify(client: TestClient, factories: Factories, started: Any, phone: str) -> dict[str, Any]:
    assert started.status == 200, await started.text()
    challenge = (await started.json())["challenge_id"]
    response = await client.post(
        "/api/auth/policy/verify", json={"challenge_id": challenge, "code": factories.sender.last_code(phone)}
    )
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _me(client: TestClient, tokens: dict[str, Any]) -> dict[str, Any]:
    return dict(await (await client.get("/api/me", headers=bearer(tokens))).json())


async def test_two_persons_on_one_policy_with_one_birth_date_both_log_in_as_themselves(
    client: TestClient, factories: Factories
) -> None:
    policy = await factories.policy()
    first = await factories.insured(policy=policy, birth_date=TWIN_BIRTH_DATE, phone="+79001112233")
    second = await factories.insured(policy=policy, birth_date=TWIN_BIRTH_DATE, phone="+79004445566")
    assert first.insured_number != second.insured_number
    for person in (first, second):
        started = await client.post(
            "/api/auth/policy/start",
            json={"insured_number": format_insured_number(person.insured_number), "birth_date": "1988-03-14"},
        )
        me = await _me(client, await _verify(client, factories, started, person.phone))
        assert me["id"] == person.id
        assert me["details"]["insured_number"] == format_insured_number(person.insured_number)

    # The policy number alone is ambiguous here: the server asks instead of picking the lowest id.
    sent_before = len(factories.sender.messages)
    ambiguous = await client.post(
        "/api/auth/policy/start", json={"policy_number": policy.number, "birth_date": "1988-03-14"}
    )
    assert ambiguous.status == 409
    assert (await ambiguous.json())["error"]["code"] == "phone_digits_required"
    assert len(factories.sender.messages) == sent_before  # nobody got a code they did not ask for
    for person, digits in ((first, "2233"), (second, "5566")):
        started = await client.post(
            "/api/auth/policy/start",
            json={"policy_number": policy.number, "birth_date": "1988-03-14", "phone_last_digits": digits},
        )
        assert (await _me(client, await _verify(client, factories, started, person.phone)))["id"] == person.id
    wrong_digits = await client.post(
        "/api/auth/policy/start",
        json={"policy_number": policy.number, "birth_date": "1988-03-14", "phone_last_digits": "0000"},
    )
    assert wrong_digits.status == 200  # same answer as an unknown person; no code sent
    assert len(factories.sender.messages) == sent_before + 2


async def test_a_flood_of_starts_against_a_corporate_policy_does_not_lock_out_its_employees_A8(
    client: TestClient, factories: Factories
) -> None:
    policy = await factories.policy()
    employees = [await factories.insured(policy=policy) for _ in range(10)]
    for day in range(1, 21):  # 20 starts with wrong birth dates, as the old per-policy limit allowed 10
        response = await client.post(
            "/api/auth/policy/start", json={"policy_number": policy.number, "birth_date": f"1970-01-{day:02d}"}
        )
        assert response.status == 200
    employee = employees[3]
    started = await client.post(
        "/api/auth/policy/start",
        json={"policy_number": policy.number, "birth_date": employee.birth_date.isoformat()},
    )
    # Ten employees share a birth date in the factory: this one answers with their own number instead.
    assert started.status == 409
    started = await client.post(
        "/api/auth/policy/start",
        json={"insured_number": employee.insured_number, "birth_date": employee.birth_date.isoformat()},
    )
    assert (await _me(client, await _verify(client, factories, started, employee.phone)))["id"] == employee.id


@pytest.mark.settings(login_starts_per_address_per_hour=1000)  # a distributed flood, as from many addresses
async def test_the_per_policy_ceiling_grows_with_the_persons_on_it_A8(client: TestClient, factories: Factories) -> None:
    """Ceiling = per-person limit (10) x (persons + 1): 20 for one person, 40 for three."""
    for persons, ceiling in ((1, 20), (3, 40)):
        policy = await factories.policy()
        for _ in range(persons):
            await factories.insured(policy=policy)
        statuses = []
        for attempt in range(ceiling + 1):
            day = date(1950, 1, 1).toordinal() + attempt
            response = await client.post(
                "/api/auth/policy/start",
                json={"policy_number": policy.number, "birth_date": date.fromordinal(day).isoformat()},
            )
            statuses.append(response.status)
        assert statuses == [200] * ceiling + [429], (persons, statuses)


def test_insured_numbers_carry_a_check_digit() -> None:
    """Every mistyped digit and every swap of two neighbours is refused (A7), over many numbers."""
    for _ in range(300):
        number = new_insured_number()
        assert len(number) == 12 and number.isdigit() and number[0] != "0"
        assert normalize_insured_number(format_insured_number(number)) == number
        for position in range(12):
            typo = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]
            assert normalize_insured_number(typo) is None, (number, typo)
        for position in range(11):
            swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
            assert swapped == number or normalize_insured_number(swapped) is None, (number, swapped)


def test_the_generator_skips_the_one_swap_luhn_cannot_see() -> None:
    """Luhn accepts ``09`` swapped for ``90``; a body that would hold either pair is drawn again."""
    draws = iter([4, 0, 9] + [1] * 8 + [4] + [1] * 10)  # first body 5 0 9 ... holds "09": redrawn

    number = new_insured_number(lambda _bound: next(draws))
    assert "09" not in number and "90" not in number
    assert number.startswith("5111") and normalize_insured_number(number) == number
    assert normalize_insured_number("\u0661" * 12) is None
