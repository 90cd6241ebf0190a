"""Which database and bus this run really used: CI's real run must hit PostgreSQL and Redis."""

from __future__ import annotations

import os

from aiohttp.test_utils import TestClient

from tests.backends import POSTGRES_URL, REDIS_URL, REQUIRE_REAL


async def test_the_running_app_uses_the_configured_backends(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["checks"] == {"database": "ok", "bus": "ok"}
    assert body["database_backend"] == ("postgresql" if POSTGRES_URL else "sqlite")
    assert body["bus_backend"] == ("redis" if REDIS_URL else "in-process")


def test_real_run_is_configured_with_postgresql_and_redis() -> None:
    """In CI's real run (TELEMED_TEST_REQUIRE_REAL=1) both services must be configured, not skipped."""
    if REQUIRE_REAL or os.environ.get("CI_EXPECT_REAL") == "1":
        assert POSTGRES_URL.startswith("postgresql")
        assert REDIS_URL.startswith("redis")
    else:
        assert not REQUIRE_REAL
