"""The bus: in-process and Redis deliver to every subscriber; RESYNC after a Redis reconnect."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from server.bus import RESYNC, Bus, InProcessBus, RedisBus
from tests.backends import REDIS_URL, require_real_services


async def _exchange(publisher: Bus, receiver: Bus) -> None:
    subscription = receiver.subscribe(["consultation:1"])
    other = receiver.subscribe(["consultation:2"])
    try:
        await publisher.publish("consultation:1", {"type": "chat.message", "seq": 1})
        channel, message = await asyncio.wait_for(subscription.get(), 5)
        assert (channel, message) == ("consultation:1", {"type": "chat.message", "seq": 1})
        subscription.add("consultation:3")
        subscription.remove("consultation:1")
        await publisher.publish("consultation:1", {"seq": 2})
        await publisher.publish("consultation:3", {"seq": 3})
        channel, message = await asyncio.wait_for(subscription.get(), 5)
        assert (channel, message) == ("consultation:3", {"seq": 3})
        assert other._queue.empty()
    finally:
        subscription.close()
        other.close()


async def test_in_process_bus_delivers_to_subscribers_of_the_channel_only() -> None:
    bus = InProcessBus()
    await bus.start()
    await _exchange(bus, bus)
    assert await bus.ping()


async def test_overflow_turns_into_a_resync_marker_not_silent_loss() -> None:
    bus = InProcessBus()
    subscription = bus.subscribe(["c"])
    for index in range(1100):
        await bus.publish("c", {"i": index})
    received = [await subscription.get() for _ in range(1001)]
    assert received[-1][0] == RESYNC
    assert [m["i"] for _, m in received[:-1]] == list(range(1000))


@pytest.fixture
async def redis_buses(redis_prefix: str) -> tuple[RedisBus, RedisBus]:
    if not REDIS_URL:
        require_real_services("Redis")
    first, second = RedisBus(REDIS_URL, redis_prefix), RedisBus(REDIS_URL, redis_prefix)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def test_redis_bus_carries_messages_between_two_processes_worth_of_buses(
    redis_buses: tuple[RedisBus, RedisBus],
) -> None:
    first, second = redis_buses
    await _exchange(first, second)
    assert await first.ping() and await second.ping()


async def test_redis_bus_prefix_isolates_tests(redis_buses: tuple[RedisBus, RedisBus]) -> None:
    first, _ = redis_buses
    stranger = RedisBus(REDIS_URL, f"other-{uuid.uuid4().hex[:8]}")
    await stranger.start()
    try:
        subscription = first.subscribe(["c"])
        await stranger.publish("c", {"x": 1})
        await first.publish("c", {"x": 2})
        _, message = await asyncio.wait_for(subscription.get(), 5)
        assert message == {"x": 2}
    finally:
        await stranger.close()


async def test_redis_reconnect_tells_subscribers_to_resync(redis_buses: tuple[RedisBus, RedisBus]) -> None:
    """Pub/sub drops messages while disconnected, so a reconnect must say "catch up from the DB"."""
    first, second = redis_buses
    subscription = second.subscribe(["c"])
    # Kill the listener's connection from the server side.
    await first.client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    channel, _ = await asyncio.wait_for(subscription.get(), 10)
    assert channel == RESYNC
    await asyncio.wait_for(_wait_connected(second), 10)
    await first.publish("c", {"after": True})
    while True:
        channel, message = await asyncio.wait_for(subscription.get(), 5)
        if channel != RESYNC:
            break
    assert message == {"after": True}


async def _wait_connected(bus: RedisBus) -> None:
    while not await bus.ping():
        await asyncio.sleep(0.05)


async def test_publish_many_keeps_the_order_in_process() -> None:
    bus = InProcessBus()
    subscription = bus.subscribe(["call:1"])
    await bus.publish_many([("call:1", {"n": n}) for n in range(5)])
    assert [(await subscription.get())[1]["n"] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_publish_many_is_one_ordered_pipeline_across_redis_buses(redis_buses: tuple[RedisBus, RedisBus]) -> None:
    sender, receiver = redis_buses
    subscription = receiver.subscribe(["call:7"])
    await sender.publish_many([("call:7", {"n": n}) for n in range(50)])
    async with asyncio.timeout(5):
        assert [(await subscription.get())[1]["n"] for _ in range(50)] == list(range(50))
