"""Client addresses behind trusted proxies (aiohttp-remotes), 429 with Retry-After.

The aiohttp test client connects from 127.0.0.1, so "trusted" here means 127.0.0.0/8 is listed
in ``trusted_proxies``; the deploy tests (tests/deploy) check the same through real nginx.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient


async def start_from(client: TestClient, forwarded_for: str | None) -> Any:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return await client.post(
        "/api/auth/policy/start", json={"policy_number": "UNKNOWN-1", "birth_date": "1990-05-17"}, headers=headers
    )


@pytest.mark.settings(login_starts_per_address_per_hour=1, trusted_proxies=["10.0.0.0/8"])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(client: TestClient) -> None:
    """A client at an app port cannot dodge the per-address limit by inventing addresses."""
    assert (await start_from(client, "203.0.113.1")).status == 200
    refused = await start_from(client, "203.0.113.2")
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "rate_limited"


@pytest.mark.settings(login_starts_per_address_per_hour=1, trusted_proxies=["127.0.0.0/8"])
async def test_behind_a_trusted_proxy_each_client_has_its_own_allowance(client: TestClient) -> None:
    """The right-most untrusted address is the client: a forged left part does not help."""
    assert (await start_from(client, "203.0.113.1")).status == 200
    # The same client again, with a forged entry on the left: still 203.0.113.1, still limited.
    assert (await start_from(client, "198.51.100.7, 203.0.113.1")).status == 429
    # Another client behind the same proxy is not affected.
    assert (await start_from(client, "203.0.113.2")).status == 200
    # Behind two trusted hops (terminator, balancer) the client is still found.
    assert (await start_from(client, "203.0.113.3, 127.0.0.5")).status == 200
    assert (await start_from(client, "203.0.113.3")).status == 429


@pytest.mark.settings(trusted_proxies=["127.0.0.0/8"])
async def test_the_access_log_carries_the_resolved_client_address(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="telemed.access"):
        await client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "caller-7"})
    record = next(r for r in caplog.records if r.name == "telemed.access")
    assert record.remote == "203.0.113.9"  # type: ignore[attr-defined]
    # The caller's request id is kept apart; the request's own id is the server's.
    assert record.client_request_id == "caller-7"  # type: ignore[attr-defined]


@pytest.mark.settings(trusted_proxies=["127.0.0.0/8"])
async def test_a_malformed_forwarded_for_is_a_json_400(client: TestClient) -> None:
    response = await client.get("/healthz", headers={"X-Forwarded-For": "not-an-address"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_forwarded_header"


async def test_a_client_request_id_never_becomes_the_request_id(client: TestClient) -> None:
    """Two requests naming the same X-Request-Id still get two ids of their own."""
    first = await client.get("/healthz", headers={"X-Request-Id": "same"})
    second = await client.get("/healthz", headers={"X-Request-Id": "same"})
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2 and "same" not in ids
