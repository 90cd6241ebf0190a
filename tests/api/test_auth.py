"""Login by policy (one-time code) and by staff account; tokens, refresh rotation and logout.

Checklist rows A1-A9 are cited where a test proves one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from datetime import date, timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.clock import FixedClock
from server.db.models import AuthSession, LoginChallenge, Policy, RefreshToken
from server.keys import context_key
from tests.conftest import TEST_SECRET
from tests.factories import STAFF_PASSWORD, Factories, bearer
from tests.fakes import RecordingSender


async def start(client: TestClient, policy_number: str, birth_date: str) -> Any:
    return await client.post("/api/auth/policy/start", json={"policy_number": policy_number, "birth_date": birth_date})


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"])
    return dict(body["error"])


# --- policy login -------------------------------------------------------------------------------


async def test_policy_number_and_birth_date_alone_never_log_in_A7(client: TestClient, factories: Factories) -> None:
    """The start step returns a challenge, never a token: a code from the phone is required."""
    person = await factories.insured()
    response = await start(client, await factories.policy_number_of(person), person.birth_date.isoformat())
    body = await response.json()
    assert response.status == 200
    assert "access_token" not in body and set(body) == {"challenge_id", "expires_in", "delivery", "message", "dev_hint"}


async def test_code_goes_to_the_phone_on_file_and_is_six_digits_A8(
    client: TestClient, factories: Factories, sender: RecordingSender
) -> None:
    person = await factories.insured(phone="+79001234567")
    await start(client, await factories.policy_number_of(person), person.birth_date.isoformat())
    assert sender.messages[-1].phone == "+79001234567"
    assert len(sender.last_code()) == 6


async def test_unknown_policy_wrong_birth_date_and_expired_policy_look_the_same_A9(
    client: TestClient, factories: Factories, sender: RecordingSender
) -> None:
    """Unknown policy, wrong birth date, expired policy and a real one: same status and body shape."""
    valid = await factories.insured()
    expired_policy = await factories.policy(
        starts_on=factories.clock.now().date().replace(year=2024),
        ends_on=factories.clock.now().date().replace(year=2025),
    )
    expired = await factories.insured(policy=expired_policy)
    cases = [
        (await factories.policy_number_of(valid), valid.birth_date.isoformat()),
        ("NO-SUCH-POLICY", "1990-05-17"),
        (await factories.policy_number_of(valid), "1950-01-01"),
        (await factories.policy_number_of(expired), expired.birth_date.isoformat()),
    ]
    shapes = []
    for number, born in cases:
        response = await start(client, number, born)
        body = await response.json()
        shapes.append((response.status, sorted(body), body["message"], body["expires_in"]))
    assert len(set(map(str, shapes))) == 1
    assert len(sender.messages) == 1  # only the real, valid person got a code

    # And verifying any of the fake challenges fails exactly like a wrong code.
    fake = await (await start(client, "NO-SUCH-POLICY-2", "1990-05-17")).json()
    response = await client.post(
        "/api/auth/policy/verify", json={"challenge_id": fake["challenge_id"], "code": "000000"}
    )
    assert response.status == 401
    assert (await error_of(response))["code"] == "invalid_code"


async def test_wrong_code_is_401_and_does_not_say_which_part_was_wrong(
    client: TestClient, factories: Factories
) -> None:
    person = await factories.insured()
    challenge = (await (await start(client, await factories.policy_number_of(person), "1990-05-17")).json())[
        "challenge_id"
    ]
    response = await client.post("/api/auth/policy/verify", json={"challenge_id": challenge, "code": "999999"})
    assert response.status == 401
    error = await error_of(response)
    assert error["code"] == "invalid_code"
    assert "policy" not in error["message"].lower() and "birth" not in error["message"].lower()


async def test_code_is_single_use_A8(client: TestClient, factories: Factories, sender: RecordingSender) -> None:
    person = await factories.insured()
    challenge = (await (await start(client, await factories.policy_number_of(person), "1990-05-17")).json())[
        "challenge_id"
    ]
    payload = {"challenge_id": challenge, "code": sender.last_code()}
    assert (await client.post("/api/auth/policy/verify", json=payload)).status == 200
    replay = await client.post("/api/auth/policy/verify", json=payload)
    assert replay.status == 401


async def test_code_is_bound_to_its_own_challenge_A8(
    client: TestClient, factories: Factories, sender: RecordingSender
) -> None:
    person = await factories.insured()
    number = await factories.policy_number_of(person)
    first = (await (await start(client, number, "1990-05-17")).json())["challenge_id"]
    first_code = sender.last_code()
    second, second_code = first, first_code
    while second_code == first_code:  # a repeat of the same six digits is one chance in a million
        second = (await (await start(client, number, "1990-05-17")).json())["challenge_id"]
        second_code = sender.last_code()
    response = await client.post("/api/auth/policy/verify", json={"challenge_id": second, "code": first_code})
    assert response.status == 401
    assert (
        await client.post("/api/auth/policy/verify", json={"challenge_id": first, "code": first_code})
    ).status == 200


async def test_code_expires_A8(
    client: TestClient, factories: Factories, sender: RecordingSender, clock: FixedClock
) -> None:
    person = await factories.insured()
    challenge = (await (await start(client, await factories.policy_number_of(person), "1990-05-17")).json())[
        "challenge_id"
    ]
    clock.advance(timedelta(minutes=10, seconds=1))
    response = await client.post(
        "/api/auth/policy/verify", json={"challenge_id": challenge, "code": sender.last_code()}
    )
    assert response.status == 401


async def test_sixth_guess_fails_even_with_the_right_code_A8(
    client: TestClient, factories: Factories, sender: RecordingSender
) -> None:
    person = await factories.insured()
    challenge = (await (await start(client, await factories.policy_number_of(person), "1990-05-17")).json())[
        "challenge_id"
    ]
    right = sender.last_code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert (
            await client.post("/api/auth/policy/verify", json={"challenge_id": challenge, "code": wrong})
        ).status == 401
    response = await client.post("/api/auth/policy/verify", json={"challenge_id": challenge, "code": right})
    assert response.status == 401


async def test_login_starts_are_rate_limited_per_person_not_per_policy_A8(
    client: TestClient, factories: Factories
) -> None:
    person = await factories.insured()
    colleague = await factories.insured(policy=await _policy_of(factories, person), birth_date=date(1985, 1, 2))
    number = await factories.policy_number_of(person)
    limit = client.app[context_key].settings.login_starts_per_person_per_hour
    statuses = [(await start(client, number, "1990-05-17")).status for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit
    assert statuses[limit] == 429
    assert (await start(client, number, colleague.birth_date.isoformat())).status == 200


async def _policy_of(factories: Factories, person: Any) -> Any:
    async with factories.session_factory() as session:
        return await session.get(Policy, person.policy_id)


async def test_login_starts_are_rate_limited_per_client_address(client: TestClient, factories: Factories) -> None:
    limit = client.app["settings"].login_starts_per_address_per_hour if False else 60
    for index in range(limit):
        response = await start(client, f"UNKNOWN-{index}", "1990-05-17")
        assert response.status == 200
    response = await start(client, "UNKNOWN-LAST", "1990-05-17")
    assert response.status == 429
    assert (await error_of(response))["code"] == "rate_limited"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"policy_number": "VHI-1"}, "validation_error"),
        ({"policy_number": "VHI-1", "birth_date": "not-a-date"}, "validation_error"),
        ({"policy_number": 12345, "birth_date": "1990-01-01"}, "validation_error"),
        ({"policy_number": "VHI-1", "birth_date": "1990-01-01", "extra": 1}, "validation_error"),
        ({"policy_number": "'; DROP TABLE policies; --", "birth_date": "1990-01-01"}, "validation_error"),
        ([], "validation_error"),
    ],
)
async def test_bad_policy_start_input_is_a_clear_4xx(client: TestClient, payload: Any, code: str) -> None:
    response = await client.post("/api/auth/policy/start", json=payload)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == code
    assert error["details"]


async def test_malformed_json_is_400_and_nothing_is_written(client: TestClient, session_factory: Any) -> None:
    response = await client.post(
        "/api/auth/policy/start", data=b'{"policy_number": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await error_of(response))["code"] == "malformed_json"
    async with session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(LoginChallenge))).scalar_one() == 0


async def test_empty_body_is_400(client: TestClient) -> None:
    response = await client.post("/api/auth/login")
    assert response.status == 400
    assert (await error_of(response))["code"] == "malformed_json"


async def test_oversized_body_is_413(client: TestClient) -> None:
    response = await client.post("/api/auth/login", data=b"{" + b" " * (300 * 1024) + b"}")
    assert response.status == 413
    assert (await error_of(response))["code"] == "payload_too_large"


# --- staff login ---------------------------------------------------------------------------------


async def test_staff_wrong_password_and_unknown_user_look_the_same(client: TestClient, factories: Factories) -> None:
    account = await factories.staff("dispatcher")
    wrong = await client.post("/api/auth/login", json={"username": account.username, "password": "nope"})
    unknown = await client.post("/api/auth/login", json={"username": "nobody", "password": "nope"})
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_disabled_staff_cannot_log_in(client: TestClient, factories: Factories) -> None:
    account = await factories.staff("doctor", is_active=False)
    response = await client.post("/api/auth/login", json={"username": account.username, "password": STAFF_PASSWORD})
    assert response.status == 401


# --- tokens ----------------------------------------------------------------------------------------


def _forge(claims: dict[str, Any], header: dict[str, Any], signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def _hs512(claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short-key warning is beside the point here
        return jwt.encode(claims, TEST_SECRET, algorithm="HS512")


async def _claims_of(tokens: dict[str, Any]) -> dict[str, Any]:
    return dict(jwt.decode(tokens["access_token"], options={"verify_signature": False}))


async def test_forged_tokens_are_all_rejected_A1_A2_A3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    person = await factories.insured()
    tokens = await factories.login_insured(client, person)
    claims = await _claims_of(tokens)
    now = int(clock.now().timestamp())
    forged = {
        "alg none": _forge(claims, {"alg": "none", "typ": "JWT"}),
        "alg missing": _forge(claims, {"typ": "JWT"}, b"x"),
        "changed payload, old signature": ".".join(
            [
                tokens["access_token"].split(".")[0],
                _forge({**claims, "sub": "insured:999"}, {}).split(".")[1],
                tokens["access_token"].split(".")[2],
            ]
        ),
        "other key": jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "HS512 with the right key": _hs512(claims),
        "embedded jwk": jwt.encode(claims, TEST_SECRET, algorithm="HS256", headers={"jwk": {"kty": "oct", "k": "QQ"}}),
        "kid path injection": jwt.encode(
            claims, "attacker-key-" + "k" * 40, algorithm="HS256", headers={"kid": "../../dev/null"}
        ),
        "expired": jwt.encode({**claims, "exp": now - 60, "iat": now - 960, "nbf": now - 960}, TEST_SECRET, "HS256"),
        "not yet valid": jwt.encode({**claims, "nbf": now + 600}, TEST_SECRET, "HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "other-service"}, TEST_SECRET, "HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "evil"}, TEST_SECRET, "HS256"),
        "refresh used as access": jwt.encode({**claims, "typ": "refresh"}, TEST_SECRET, "HS256"),
        "missing jti": jwt.encode({k: v for k, v in claims.items() if k != "jti"}, TEST_SECRET, "HS256"),
        "garbage": "not.a.token",
    }
    for name, token in forged.items():
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401, name
        assert (await error_of(response))["code"] in {"invalid_token", "unauthorized"}, name
    assert (await client.get("/api/me", headers=bearer(tokens))).status == 200


async def test_access_token_lives_at_most_15_minutes_A5(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    tokens = await factories.login_insured(client, await factories.insured())
    claims = await _claims_of(tokens)
    assert claims["exp"] - claims["iat"] <= 15 * 60
    clock.advance(timedelta(minutes=15, seconds=11))
    assert (await client.get("/api/me", headers=bearer(tokens))).status == 401


async def test_refresh_rotates_and_reuse_revokes_the_family_A5(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    tokens = await factories.login_staff(client, await factories.staff("dispatcher"))
    first = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status == 200
    rotated = await first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/api/me", headers=bearer(rotated))).status == 200

    clock.advance(timedelta(seconds=client.app[context_key].settings.refresh_grace_seconds + 1))
    replay = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status == 401
    # The whole family is revoked: the successor refresh token and its access token stop working.
    assert (await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).status == 401
    assert (await client.get("/api/me", headers=bearer(rotated))).status == 401


async def test_eight_parallel_refreshes_of_one_token_all_get_the_same_successor_A5(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """Several tabs refreshing at once: one rotation, the others get its successor; the session lives."""
    tokens = await factories.login_staff(client, await factories.staff("dispatcher"))
    responses = await asyncio.gather(
        *(client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(8))
    )
    assert [r.status for r in responses] == [200] * 8
    bodies = [await r.json() for r in responses]
    successors = {b["refresh_token"] for b in bodies}
    assert len(successors) == 1 and tokens["refresh_token"] not in successors
    for body in bodies:  # every tab's access token works
        assert (await client.get("/api/me", headers=bearer(body))).status == 200
    async with client.app[context_key].session_factory() as session:
        rows = (await session.execute(select(func.count()).select_from(RefreshToken))).scalar_one()
    assert rows == 2  # the original and one successor: no two valid successors
    nxt = await client.post("/api/auth/refresh", json={"refresh_token": successors.pop()})
    assert nxt.status == 200
    # After the grace window a reuse of the first token is reuse again: the family is revoked.
    clock.advance(timedelta(seconds=client.app[context_key].settings.refresh_grace_seconds + 1))
    assert (await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status == 401
    assert (await client.get("/api/me", headers=bearer(await nxt.json()))).status == 401


async def test_refresh_after_idle_timeout_fails_A10(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    tokens = await factories.login_staff(client, await factories.staff("doctor"))
    clock.advance(timedelta(minutes=31))
    assert (await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status == 401


async def test_session_has_an_absolute_lifetime_of_12_hours_A5(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    tokens = await factories.login_staff(client, await factories.staff("doctor"))
    for _ in range(25):  # keep refreshing every 29 minutes: still ends at 12 h
        clock.advance(timedelta(minutes=29))
        response = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        if response.status != 200:
            break
        tokens = await response.json()
    assert response.status == 401
    assert clock.now() - factories.clock.now() <= timedelta(hours=12, minutes=29)


async def test_logout_stops_access_and_refresh_tokens_A6(
    client: TestClient, factories: Factories, session_factory: Any
) -> None:
    tokens = await factories.login_insured(client, await factories.insured())
    assert (await client.post("/api/auth/logout", headers=bearer(tokens))).status == 200
    assert (await client.get("/api/me", headers=bearer(tokens))).status == 401
    assert (await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status == 401
    async with session_factory() as session:
        revoked = (await session.execute(select(AuthSession.revoked_reason))).scalars().all()
    assert revoked == ["logout"]


async def test_disabling_an_account_stops_its_tokens_A6(
    client: TestClient, factories: Factories, session_factory: Any
) -> None:
    from server.db.models import StaffAccount

    account = await factories.staff("dispatcher")
    tokens = await factories.login_staff(client, account)
    async with session_factory() as session:
        (await session.get(StaffAccount, account.id)).is_active = False  # type: ignore[union-attr]
        await session.commit()
    assert (await client.get("/api/me", headers=bearer(tokens))).status == 401


async def test_role_change_stops_old_tokens(client: TestClient, factories: Factories, session_factory: Any) -> None:
    from server.db.models import StaffAccount

    account = await factories.staff("dispatcher")
    tokens = await factories.login_staff(client, account)
    async with session_factory() as session:
        (await session.get(StaffAccount, account.id)).role = "admin"  # type: ignore[union-attr]
        await session.commit()
    assert (await client.get("/api/me", headers=bearer(tokens))).status == 401


async def test_refresh_token_is_stored_only_hashed(
    client: TestClient, factories: Factories, session_factory: Any
) -> None:
    from server.db.models import RefreshToken

    tokens = await factories.login_staff(client, await factories.staff("doctor"))
    async with session_factory() as session:
        stored = (await session.execute(select(RefreshToken.token_hash))).scalars().all()
    assert tokens["refresh_token"] not in stored
    assert all(len(value) == 64 for value in stored)


async def test_websocket_ticket_needs_authentication_B3(client: TestClient, factories: Factories) -> None:
    assert (await client.post("/api/auth/ws-ticket")).status == 401
    tokens = await factories.login_insured(client, await factories.insured())
    response = await client.post("/api/auth/ws-ticket", headers=bearer(tokens))
    assert response.status == 200
    body = await response.json()
    assert len(body["ticket"]) >= 40 and body["url"] == "/api/ws"
