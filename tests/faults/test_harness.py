"""The fault suite's own services are private: a cluster and a Redis on free ports, and a proxy that can go silent."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import TimeoutError as RedisTimeout

from tests.faults.conftest import Scene
from tests.faults.harness import PgCluster, RedisServer, SilentProxy


async def test_the_suite_runs_its_own_postgres_and_redis_and_its_proxy_can_go_silent(
    pg_cluster: PgCluster, redis_server: RedisServer, scene: Scene
) -> None:
    assert pg_cluster.port != 5432 and redis_server.port != 6379
    assert f":{pg_cluster.port}/" in scene.database_url
    proxy = SilentProxy(redis_server.port)
    await proxy.start()
    client = redis_asyncio.Redis.from_url(proxy.url, socket_timeout=0.5)
    try:
        assert await client.ping()
        proxy.silent = True
        with pytest.raises((RedisTimeout, asyncio.TimeoutError)):
            await client.ping()
        assert proxy.dropped_bytes > 0
    finally:
        await client.aclose()
        await proxy.close()
