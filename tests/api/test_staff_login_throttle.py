"""Staff login: a per-address limit and a growing delay instead of a hard account lock (issue 11 item 8, A8).

Addresses come from ``X-Forwarded-For`` with the test client trusted as the proxy in front.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from server.clock import FixedClock
from server.domain.login_throttle import account_delay, pair_delay
from tests.factories import STAFF_PASSWORD, Factories

pytestmark = pytest.mark.settings(trusted_proxies=["127.0.0.1/32"])


async def _login(client: TestClient, username: str, password: str, address: str) -> tuple[int, str | None]:
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers={"X-Forwarded-For": address}
    )
    return response.status, response.headers.get("Retry-After")


async def test_one_address_trying_150_usernames_is_stopped_A8(client: TestClient) -> None:
    statuses = [(await _login(client, f"user{i}", "guess", "203.0.113.7"))[0] for i in range(150)]
    limit = 30
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    # Another address is not affected.
    assert (await _login(client, "user-x", "guess", "203.0.113.8"))[0] == 401


async def test_an_attacker_cannot_lock_a_doctor_out_but_slows_down_himself_A8(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    doctor = await factories.staff("doctor")
    attacker = "198.51.100.66"
    statuses = [(await _login(client, doctor.username, "wrong", attacker))[0] for _ in range(5)]
    assert statuses == [401] * 5
    waits = []
    for _ in range(4):  # each further failure doubles the attacker's wait: 1, 2, 4, 8 s
        status, retry_after = await _login(client, doctor.username, "wrong", attacker)
        assert status == 429 and retry_after is not None
        waits.append(int(retry_after))
        clock.advance(timedelta(seconds=int(retry_after)))
        assert (await _login(client, doctor.username, "wrong", attacker))[0] == 401
    assert waits == [1, 2, 4, 8]
    # 20 more failures from as many other addresses (a distributed attack) ...
    for i in range(20):
        assert (await _login(client, doctor.username, "wrong", f"192.0.2.{i + 1}"))[0] == 401
    # ... and the doctor, from the hospital's own address, logs in at once with the right password.
    assert (await _login(client, doctor.username, STAFF_PASSWORD, "10.20.30.40"))[0] == 200
    # The attacker's address still has to wait, even with the right password.
    assert (await _login(client, doctor.username, STAFF_PASSWORD, attacker))[0] == 429


async def test_a_doctor_who_mistypes_gets_past_the_delay_from_their_own_address_A8(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    doctor = await factories.staff("doctor")
    for _ in range(6):
        await _login(client, doctor.username, "typo", "10.1.1.1")
    status, retry_after = await _login(client, doctor.username, STAFF_PASSWORD, "10.1.1.1")
    assert status == 429
    clock.advance(timedelta(seconds=int(retry_after or 0)))
    assert (await _login(client, doctor.username, STAFF_PASSWORD, "10.1.1.1"))[0] == 200


def test_delays_grow_and_are_capped() -> None:
    assert [pair_delay(n).total_seconds() for n in (0, 4, 5, 6, 7, 30)] == [0, 0, 1, 2, 4, 900]
    assert account_delay(19) == timedelta(0)
    assert account_delay(20) == timedelta(seconds=1)
    assert account_delay(10_000) == timedelta(seconds=60)
