"""The message bus: ``publish(channel, message)`` / ``subscribe(channels)``, in-process or Redis.

The database is the source of truth. The bus only says "something new happened on this
channel" quickly; Redis pub/sub silently drops what is published while a process is
disconnected, so after a reconnect (or a local queue overflow) every subscription receives
``RESYNC`` and its owner catches up from the database before trusting the bus again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Final, Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RESYNC: Final = "__resync__"
"""Pseudo-channel delivered to every subscription when messages may have been missed."""

SUBSCRIPTION_QUEUE_SIZE: Final = 1000

Message = dict[str, Any]


class Subscription:
    """A local subscriber's queue of ``(channel, message)``; channels can change while it lives."""

    def __init__(self, fanout: _Fanout, channels: Iterable[str]) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue(SUBSCRIPTION_QUEUE_SIZE)
        self.channels: set[str] = set()
        self._overflowed = False
        self.closed = False
        for channel in channels:
            self.add(channel)

    def add(self, channel: str) -> None:
        """Start receiving ``channel``."""
        if channel not in self.channels:
            self.channels.add(channel)
            self._fanout.register(channel, self)

    def remove(self, channel: str) -> None:
        """Stop receiving ``channel``."""
        if channel in self.channels:
            self.channels.discard(channel)
            self._fanout.unregister(channel, self)

    def close(self) -> None:
        """Unsubscribe from everything; pending ``get`` calls see the subscription end."""
        for channel in list(self.channels):
            self.remove(channel)
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((RESYNC, {"closed": True}))

    def deliver(self, channel: str, message: Message) -> None:
        """Queue a message; on overflow drop it and ask the owner to resync from the database."""
        if self._overflowed:
            return
        try:
            self._queue.put_nowait((channel, message))
        except asyncio.QueueFull:
            self._overflowed = True
            log.warning("bus subscription overflowed; consumer will resync")

    async def get(self) -> tuple[str, Message]:
        """The next message; ``(RESYNC, {...})`` means "reload from the database"."""
        if self._overflowed and self._queue.empty():
            self._overflowed = False
            return RESYNC, {"overflow": True}
        item = await self._queue.get()
        if self._overflowed and self._queue.empty():
            self._overflowed = False
            # Hand over what we have, then the resync marker on the next call.
            self._queue.put_nowait((RESYNC, {"overflow": True}))
        return item

    def __aiter__(self) -> AsyncIterator[tuple[str, Message]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, Message]]:
        while not self.closed:
            yield await self.get()


class _Fanout:
    """Local delivery from a channel name to this process's subscriptions."""

    def __init__(self) -> None:
        self._by_channel: dict[str, set[Subscription]] = {}

    def register(self, channel: str, subscription: Subscription) -> None:
        self._by_channel.setdefault(channel, set()).add(subscription)

    def unregister(self, channel: str, subscription: Subscription) -> None:
        subscribers = self._by_channel.get(channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_channel[channel]

    def deliver(self, channel: str, message: Message) -> None:
        for subscription in tuple(self._by_channel.get(channel, ())):
            subscription.deliver(channel, message)

    def resync_all(self, reason: str) -> None:
        seen: set[int] = set()
        for subscribers in tuple(self._by_channel.values()):
            for subscription in tuple(subscribers):
                if id(subscription) not in seen:
                    seen.add(id(subscription))
                    subscription.deliver(RESYNC, {"reason": reason})

    @property
    def channel_count(self) -> int:
        return len(self._by_channel)


class Bus(Protocol):
    """The port every component publishes and subscribes through."""

    kind: str

    async def start(self) -> None:
        """Connect and start background listening."""

    async def close(self) -> None:
        """Stop listening and release connections."""

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every subscriber of ``channel`` in every process."""

    async def publish_many(self, messages: Sequence[tuple[str, Message]]) -> None:
        """Publish several messages in order, in one round trip where the bus allows it."""

    def subscribe(self, channels: Iterable[str] = ()) -> Subscription:
        """Open a subscription in this process."""
        ...

    async def ping(self) -> bool:
        """Whether the bus is usable now (readiness)."""
        ...


class InProcessBus:
    """The embedded default: delivery within this one process."""

    kind = "in-process"

    def __init__(self) -> None:
        self._fanout = _Fanout()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def publish(self, channel: str, message: Message) -> None:
        """Deliver to local subscribers now."""
        self._fanout.deliver(channel, message)

    async def publish_many(self, messages: Sequence[tuple[str, Message]]) -> None:
        """Deliver each, in order."""
        for channel, message in messages:
            self._fanout.deliver(channel, message)

    def subscribe(self, channels: Iterable[str] = ()) -> Subscription:
        """Open a subscription."""
        return Subscription(self._fanout, channels)

    async def ping(self) -> bool:
        """Always usable."""
        return True


class RedisBus:
    """Redis pub/sub shared by several server processes.

    One pattern subscription per process (``<prefix>:*``) keeps the subscribe path free of
    races with the listener; each process drops messages for channels nobody local wants.
    That costs a little bandwidth per extra process, which is fine for a handful of them.
    """

    kind = "redis"

    def __init__(self, url: str, prefix: str = "telemed") -> None:
        self._url = url
        self._prefix = prefix.rstrip(":") + ":"
        self._fanout = _Fanout()
        self._client: redis_asyncio.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def client(self) -> redis_asyncio.Redis:
        """The shared Redis client (also used for other small shared state)."""
        if self._client is None:
            raise RuntimeError("RedisBus not started")
        return self._client

    async def start(self) -> None:
        """Connect and start the listener; waits until the pattern subscription is live."""
        self._client = redis_asyncio.Redis.from_url(
            self._url, decode_responses=True, health_check_interval=15, socket_keepalive=True
        )
        await self._client.ping()
        self._listener = asyncio.create_task(self._listen(), name="redis-bus-listener")
        await asyncio.wait_for(self._connected.wait(), timeout=10)

    async def close(self) -> None:
        """Cancel the listener and close the client."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, channel: str, message: Message) -> None:
        """Publish to every process (including this one, through Redis)."""
        payload = json.dumps(message, separators=(",", ":"), sort_keys=True)
        await self.client.publish(self._prefix + channel, payload)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py can swallow a CancelledError that arrives mid-command; honour it here so
            # background loops that publish still stop when cancelled.
            raise asyncio.CancelledError

    async def publish_many(self, messages: Sequence[tuple[str, Message]]) -> None:
        """One pipeline (no transaction): Redis runs the PUBLISHes in order on one connection.

        A busy signalling relay publishes hundreds of small messages at once; one round trip
        for all of them instead of one each keeps its latency flat as calls are added.
        """
        if not messages:
            return
        pipe = self.client.pipeline(transaction=False)
        for channel, message in messages:
            pipe.publish(self._prefix + channel, json.dumps(message, separators=(",", ":"), sort_keys=True))
        await pipe.execute()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    def subscribe(self, channels: Iterable[str] = ()) -> Subscription:
        """Open a local subscription; the process-wide pattern subscription feeds it."""
        return Subscription(self._fanout, channels)

    async def ping(self) -> bool:
        """Redis answers and our listener is subscribed."""
        try:
            return bool(await self.client.ping()) and self._connected.is_set()
        except (RedisError, OSError, RuntimeError):
            return False

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._prefix + "*")
                self._connected.set()
                if not first:
                    # Anything published while we were away is lost: tell everyone to catch up.
                    self._fanout.resync_all("redis reconnected")
                first = False
                backoff = 0.1
                while True:
                    item = await pubsub.get_message(timeout=5.0)
                    if item is None or item.get("type") != "pmessage":
                        continue
                    channel = str(item["channel"])[len(self._prefix) :]
                    try:
                        message = json.loads(item["data"])
                    except (TypeError, ValueError):
                        log.warning("dropping undecodable bus message on %s", channel)
                        continue
                    self._fanout.deliver(channel, message)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                self._connected.clear()
                log.warning("redis bus connection lost (%s); reconnecting in %.1fs", exc, backoff)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def make_bus(redis_url: str, prefix: str) -> Bus:
    """Redis when configured, else the in-process bus."""
    if redis_url:
        return RedisBus(redis_url, prefix)
    return InProcessBus()
