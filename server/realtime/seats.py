"""How many sockets each user holds open across ALL server processes (checklist B8: at most N).

A per-process count would let a user behind a load balancer hold N sockets on every process.
With Redis each user has one sorted set ``<prefix>:ws-seats:<user key>`` whose members are the
open sockets and whose scores are their expiry times (Redis's own clock, so processes need not
agree on the time). Taking a seat drops expired members, counts, and adds, in one Lua script so
two processes cannot both take the last seat. Each process renews its sockets' seats well before
they expire, so a crashed process's seats lapse on their own within ``SEAT_TTL_MS``.

Without Redis (the embedded default) there is one process, and its own count is the whole truth.
If Redis cannot be reached the per-process cap still holds (fail-safe, not fail-open to infinity).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from typing import Final, Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from server.bus import Bus, RedisBus

log = logging.getLogger(__name__)

SEAT_TTL_MS: Final = 90_000
RENEW_EVERY_SECONDS: Final = SEAT_TTL_MS / 3000  # the hub renews every third of the TTL
RENEW_PIPELINE: Final = 500

_TAKE: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_RENEW: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class Seats(Protocol):
    """Counts a user's open sockets; ``seat`` names one socket uniquely across processes."""

    async def take(self, user_key: str, seat: str, limit: int) -> bool:
        """Hold a seat for this socket; False when the user already holds ``limit``."""

    async def release(self, user_key: str, seat: str) -> None:
        """Give the seat back (the socket closed)."""

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:
        """Keep this process's seats from lapsing."""


class LocalSeats:
    """One process: the hub's own count already is the cap, nothing more to share."""

    async def take(self, user_key: str, seat: str, limit: int) -> bool:
        """Always granted here; the hub has checked its local count."""
        return True

    async def release(self, user_key: str, seat: str) -> None:
        """Nothing to give back."""

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:
        """Nothing lapses."""


class RedisSeats:
    """Seats shared by every process through Redis sorted sets."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str, ttl_ms: int = SEAT_TTL_MS) -> None:
        self._client = client
        self._prefix = prefix.rstrip(":") + ":ws-seats:"
        self._ttl_ms = ttl_ms
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)

    def _key(self, user_key: str) -> str:
        return self._prefix + user_key

    async def take(self, user_key: str, seat: str, limit: int) -> bool:
        """Atomically: drop lapsed seats, refuse at ``limit``, else hold one."""
        try:
            granted = await self._take(keys=[self._key(user_key)], args=[seat, limit, self._ttl_ms])
        except (RedisError, OSError) as exc:
            log.warning("socket seats unavailable (%s): only the per-process cap applies", type(exc).__name__)
            return True
        return bool(granted)

    async def release(self, user_key: str, seat: str) -> None:
        """Remove the seat; if Redis is away it lapses by itself."""
        with contextlib.suppress(RedisError, OSError):
            await self._client.zrem(self._key(user_key), seat)

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:
        """Push every held seat's expiry forward, in pipelined chunks."""
        batch = list(held)
        for start in range(0, len(batch), RENEW_PIPELINE):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_key, seat in batch[start : start + RENEW_PIPELINE]:
                    await self._renew(keys=[self._key(user_key)], args=[seat, self._ttl_ms], client=pipe)
                await pipe.execute()


def make_seats(bus: Bus, prefix: str, *, ttl_ms: int = SEAT_TTL_MS) -> Seats:
    """Redis seats when the bus is Redis (several processes), else local ones."""
    if isinstance(bus, RedisBus):
        return RedisSeats(bus.client, prefix, ttl_ms)
    return LocalSeats()


def new_seat_name() -> str:
    """A name for one socket, unique across processes and restarts."""
    return uuid.uuid4().hex
