"""The Redis bus adapter against a link that goes silent without closing (issue 11, item 12, case d).

Two buses (two processes' worth) on the suite's private Redis, each through its own
:class:`SilentProxy`. Before the fix a publish on a silent link waited about 5 s (redis-py's
retries), ``ping`` hung, and nothing ever told the other process that a hint had been lost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from server.bus import RESYNC, BusUnavailable, RedisBus
from tests.faults.harness import RedisServer, SilentProxy

TIMEOUT = 0.5
HEARTBEAT = 0.2
SILENCE = 1.0


@pytest.fixture
async def linked(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBus, SilentProxy, RedisBus, SilentProxy]]:
    """Bus A behind proxy A, bus B behind proxy B, one prefix."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    prefix = f"faults-bus-{uuid.uuid4().hex[:8]}"
    proxies = [SilentProxy(redis_server.port), SilentProxy(redis_server.port)]
    for proxy in proxies:
        await proxy.start()
    buses = [RedisBus(p.url, prefix, timeout=TIMEOUT, heartbeat=HEARTBEAT, silence=SILENCE) for p in proxies]
    for bus in buses:
        await bus.start()
    try:
        yield buses[0], proxies[0], buses[1], proxies[1]
    finally:
        for bus in buses:
            await bus.close()
        for proxy in proxies:
            await proxy.close()




async def _until(channel: str, subscription: object, deadline: float) -> list[tuple[str, dict[str, object]]]:
    seen: list[tuple[str, dict[str, object]]] = []
    async with asyncio.timeout(deadline):
        while True:
            item = await subscription.get()  # type: ignore[attr-defined]
            seen.append(item)
            if item[0] == channel:
                return seen


async def test_a_publish_on_a_silent_link_fails_within_the_timeout_and_ping_says_no(
    linked: tuple[RedisBus, SilentProxy, RedisBus, SilentProxy],
) -> None:
    bus_a, proxy_a, _, _ = linked
    proxy_a.silent = True
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        await bus_a.publish("x", {"n": 1})
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + 0.5, elapsed
    started = time.monotonic()
    assert await bus_a.ping() is False
    assert time.monotonic() - started < TIMEOUT + 0.5


async def test_a_silent_subscription_is_noticed_by_its_heartbeat_and_resyncs_when_the_link_returns(
    linked: tuple[RedisBus, SilentProxy, RedisBus, SilentProxy],
) -> None:
    bus_a, _, bus_b, proxy_b = linked
    subscription = bus_b.subscribe(["chat"])
    proxy_b.silent = True
    await bus_a.publish("chat", {"lost": True})  # A's link is fine: B's subscription just never hears it
    await asyncio.sleep(SILENCE + 3 * HEARTBEAT)
    assert not await bus_b.ping()  # B knows its link is dead (it heard no heartbeat, not even its own)
    proxy_b.silent = False
    seen = await _until(RESYNC, subscription, deadline=10)
    assert seen[-1][0] == RESYNC and bus_b.resyncs >= 1
    await bus_a.publish("chat", {"after": True})
    assert (await _until("chat", subscription, deadline=5))[-1] == ("chat", {"after": True})
    assert await bus_b.ping()
    subscription.close()


async def test_a_failed_publish_makes_every_process_resync_once_the_link_works_again(
    linked: tuple[RedisBus, SilentProxy, RedisBus, SilentProxy],
) -> None:
    bus_a, proxy_a, bus_b, _ = linked
    subscription = bus_b.subscribe(["chat"])
    proxy_a.silent = True
    with pytest.raises(BusUnavailable):
        await bus_a.publish("chat", {"hint": 1})  # B's link is fine, but this never reaches it
    proxy_a.silent = False
    seen = await _until(RESYNC, subscription, deadline=10)
    assert ("chat", {"hint": 1}) not in seen
    assert bus_b.resyncs >= 1
    subscription.close()
