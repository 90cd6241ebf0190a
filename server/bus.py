"""The message bus: ``publish(channel, message)`` / ``subscribe(channels)``, in-process or Redis.

The database is the source of truth. The bus only says "something new happened on this
channel" quickly; Redis pub/sub silently drops what is published while a process is
disconnected, so after a reconnect (or a local queue overflow) every subscription receives
``RESYNC`` and its owner catches up from the database before trusting the bus again.

A link can also go silent without closing (packets dropped: no FIN, no RST). Against that the
Redis bus bounds every call by a timeout, hears a heartbeat that every process publishes each
second (a subscription that hears nothing, not even its own heartbeat, is torn down and
re-opened, then resyncs), and after a publish that failed tells every process to resync once
its link works again: what it could not say may have been a chat commit hint another process
was waiting for (issue 11, item 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Protocol

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RESYNC: Final = "__resync__"
"""Pseudo-channel delivered to every subscription when messages may have been missed."""

SUBSCRIPTION_QUEUE_SIZE: Final = 1000
COMMAND_TIMEOUT_SECONDS: Final = 1.0
"""The longest any one Redis call may take (a PUBLISH takes well under a millisecond)."""
HEARTBEAT_SECONDS: Final = 1.0
SILENCE_SECONDS: Final = 5.0
"""A subscription that hears nothing for this long (heartbeats included) is presumed dead."""
HEARTBEAT_CHANNEL: Final = "__bus__:heartbeat"
RESYNC_CHANNEL: Final = "__bus__:resync"
"""Published after a failed publish: every process's subscriptions catch up from the database."""


class BusUnavailable(ConnectionError):
    """The bus could not carry a message now (down, silent, or too slow to answer in time)."""

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

    def __init__(
        self,
        url: str,
        prefix: str = "telemed",
        *,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        silence: float = SILENCE_SECONDS,
    ) -> None:
        self._url = url
        self._prefix = prefix.rstrip(":") + ":"
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._silence = max(silence, 2 * heartbeat)
        self._fanout = _Fanout()
        self._client: redis_asyncio.Redis | None = None
        self._listen_client: redis_asyncio.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost_publishes = False
        self._beat_id = uuid.uuid4().hex[:12]
        self._beats_heard: dict[str, tuple[int, float]] = {}  # sender -> (last number, when)
        self.resyncs = 0  # times this process's subscriptions were told to catch up (for tests and logs)

    @property
    def client(self) -> redis_asyncio.Redis:
        """The shared Redis client (also used for other small shared state)."""
        if self._client is None:
            raise RuntimeError("RedisBus not started")
        return self._client

    async def start(self) -> None:
        """Connect and start the listener and the heartbeat; waits until the pattern subscription is live."""
        # socket_timeout bounds every read on every connection of the client, including the
        # calls other components make with ``client`` (socket seats): a silent link raises
        # instead of waiting forever.
        options: dict[str, Any] = {
            "decode_responses": True,
            "health_check_interval": 15,
            "socket_keepalive": True,
            "socket_timeout": self._timeout * 2,
            "socket_connect_timeout": self._timeout * 2,
        }
        # Commands get one immediate retry (a pooled connection Redis closed on a restart), no
        # backoff: redis-py's default retries with growing waits, seconds per call.
        self._client = redis_asyncio.Redis.from_url(self._url, retry=Retry(NoBackoff(), 1), **options)
        # The subscription has its own connection and never retries: redis-py would re-subscribe
        # behind our back, and whatever was published in between would be lost without a RESYNC.
        self._listen_client = redis_asyncio.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **options)
        async with asyncio.timeout(self._timeout * 5):
            await self._client.ping()
        self._listener = asyncio.create_task(self._listen(), name="redis-bus-listener")
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        self._beater = asyncio.create_task(self._beat(), name="redis-bus-heartbeat")

    async def close(self) -> None:
        """Cancel the listener and the heartbeat and close the client."""
        for task in (self._beater, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._beater = self._listener = None
        for client in (self._client, self._listen_client):
            if client is not None:
                await client.aclose()
        self._client = self._listen_client = None

    async def publish(self, channel: str, message: Message) -> None:
        """Publish to every process (including this one, through Redis), within the command timeout.

        Raises:
            BusUnavailable: Redis is down, the link is silent, or it did not answer in time; every
                process will be told to resync once the link works again.
        """
        payload = json.dumps(message, separators=(",", ":"), sort_keys=True)
        await self._send(lambda client: client.publish(self._prefix + channel, payload))

    async def publish_many(self, messages: Sequence[tuple[str, Message]]) -> None:
        """One pipeline (no transaction): Redis runs the PUBLISHes in order on one connection.

        A busy signalling relay publishes hundreds of small messages at once; one round trip
        for all of them instead of one each keeps its latency flat as calls are added.

        Raises:
            BusUnavailable: as :meth:`publish`.
        """
        if not messages:
            return
        payloads = [(self._prefix + c, json.dumps(m, separators=(",", ":"), sort_keys=True)) for c, m in messages]

        def pipelined(client: redis_asyncio.Redis) -> Awaitable[Any]:
            pipe = client.pipeline(transaction=False)
            for channel, payload in payloads:
                pipe.publish(channel, payload)
            return pipe.execute()

        await self._send(pipelined)

    async def _send(self, command: Callable[[redis_asyncio.Redis], Awaitable[Any]]) -> None:
        """Run one publishing command within the timeout; a failure is remembered for the resync broadcast."""
        if not self._connected.is_set():
            # The subscription is down or silent: the link is known bad, fail now instead of waiting.
            self._lost_publishes = True
            raise BusUnavailable("the bus is reconnecting")
        try:
            async with asyncio.timeout(self._timeout):
                await command(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._lost_publishes = True
            raise BusUnavailable(f"publish failed: {type(exc).__name__}") from exc
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py can swallow a CancelledError that arrives mid-command; honour it here so
            # background loops that publish still stop when cancelled.
            raise asyncio.CancelledError

    def subscribe(self, channels: Iterable[str] = ()) -> Subscription:
        """Open a local subscription; the process-wide pattern subscription feeds it."""
        return Subscription(self._fanout, channels)

    async def ping(self) -> bool:
        """Redis answers within the timeout and our listener is subscribed (and not silent)."""
        if not self._connected.is_set():
            return False
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self.client.ping())
        except (RedisError, OSError, RuntimeError, TimeoutError):
            return False

    async def _beat(self) -> None:
        """Each second: the resync broadcast if a publish failed since the last one, then a heartbeat.

        Every process hears every heartbeat, its own included, so a listener that hears nothing
        for ``silence`` seconds knows its link is dead even though no socket closed.
        """
        number = 0
        while True:
            await asyncio.sleep(self._heartbeat)
            if not self._connected.is_set():
                continue
            number += 1
            try:
                async with asyncio.timeout(self._timeout):
                    if self._lost_publishes:
                        self._lost_publishes = False
                        try:
                            await self.client.publish(self._prefix + RESYNC_CHANNEL, "{}")
                        except BaseException:
                            self._lost_publishes = True
                            raise
                        log.warning("redis bus: a publish had failed; every process told to resync")
                    await self.client.publish(
                        self._prefix + HEARTBEAT_CHANNEL, json.dumps({"from": self._beat_id, "n": number})
                    )
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis bus heartbeat not sent (%s)", type(exc).__name__)

    def _heard_beat(self, data: object, now: float) -> None:
        """A numbered heartbeat; a gap in a sender's numbers means this subscription lost messages."""
        try:
            beat = json.loads(str(data))
            sender, number = str(beat["from"]), int(beat["n"])
        except (TypeError, ValueError, KeyError):
            return
        last = self._beats_heard.get(sender)
        self._beats_heard[sender] = (number, now)
        if last is not None and number > last[0] + 1:
            self._resync_all("heartbeats missed: bus messages lost on the way")
        if len(self._beats_heard) > 64:  # forget processes long gone
            horizon = now - 10 * self._silence
            self._beats_heard = {k: v for k, v in self._beats_heard.items() if v[1] >= horizon}

    def _resync_all(self, reason: str) -> None:
        self.resyncs += 1
        self._fanout.resync_all(reason)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.1
        first = True
        while True:
            assert self._listen_client is not None
            pubsub = self._listen_client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(self._timeout * 2):
                    await pubsub.psubscribe(self._prefix + "*")
                heard_at = loop.time()
                self._beats_heard.clear()  # numbers restart being compared from the next beat
                self._connected.set()
                if not first:
                    # Anything published while we were away is lost: tell everyone to catch up.
                    self._resync_all("redis reconnected")
                first = False
                backoff = 0.1
                while True:
                    item = await pubsub.get_message(timeout=self._heartbeat)
                    now = loop.time()
                    if item is None:
                        if now - heard_at > self._silence:
                            raise BusUnavailable(f"nothing heard on the bus for {now - heard_at:.1f}s")
                        continue
                    heard_at = now
                    if item.get("type") != "pmessage":
                        continue
                    channel = str(item["channel"])[len(self._prefix) :]
                    if channel == HEARTBEAT_CHANNEL:
                        self._heard_beat(item["data"], now)
                        continue
                    if channel == RESYNC_CHANNEL:
                        self._resync_all("a process could not publish")
                        continue
                    try:
                        message = json.loads(item["data"])
                    except (TypeError, ValueError):
                        log.warning("dropping undecodable bus message on %s", channel)
                        continue
                    self._fanout.deliver(channel, message)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), self._timeout)  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._connected.clear()
                log.warning("redis bus connection lost (%s); reconnecting in %.1fs", exc, backoff)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), self._timeout)  # type: ignore[no-untyped-call]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def make_bus(
    redis_url: str,
    prefix: str,
    *,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
    heartbeat: float = HEARTBEAT_SECONDS,
    silence: float = SILENCE_SECONDS,
) -> Bus:
    """Redis when configured, else the in-process bus."""
    if redis_url:
        return RedisBus(redis_url, prefix, timeout=timeout, heartbeat=heartbeat, silence=silence)
    return InProcessBus()
