"""The fault suite's own services are private: a cluster and a Redis on free ports, proxied Redis, a server on them."""

from __future__ import annotations

import aiohttp
import pytest
import redis.asyncio as redis_asyncio

from tests.faults.conftest import Scene
from tests.faults.harness import PgCluster, RedisServer, ServerProcess, SilentProxy, readyz, server_env, servers

# Two server processes start in about 5 s on an idle machine, over 30 s on this shared one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


async def test_the_suite_runs_its_own_postgres_and_redis_and_a_server_on_them(
    pg_cluster: PgCluster, redis_server: RedisServer, scene: Scene
) -> None:
    assert pg_cluster.port != 5432 and redis_server.port != 6379
    assert f":{pg_cluster.port}/" in scene.database_url
    proxy = SilentProxy(redis_server.port)
    await proxy.start()
    client = redis_asyncio.Redis.from_url(proxy.url, socket_timeout=1)
    try:
        assert await client.ping()
        env = server_env(scene.database_url, proxy.url, scene.redis_prefix, scene.data_dir)
        with servers(ServerProcess("a", env, scene.data_dir.parent / "a.log")) as (server,):
            async with aiohttp.ClientSession() as http:
                await server.wait_ready(http)
                assert await readyz(http, server) == 200
    finally:
        await client.aclose()
        await proxy.close()
