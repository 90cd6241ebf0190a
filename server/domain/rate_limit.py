"""A token bucket: how many requests a client may make in a burst and how fast it earns more.

Used per client socket (checklist B8: about 100 messages a minute, with room for a short burst
such as a call's offer, answer and ICE candidates). It is arithmetic on two numbers, run for
every frame, so it lives here as a plain object instead of a keyed-counter library built for
shared storage. Time is passed in (a monotonic clock), never read here.
"""

from __future__ import annotations

_EPSILON = 1e-9


class TokenBucket:
    """``capacity`` tokens at most, refilled at ``per_second``; each request takes one."""

    __slots__ = ("capacity", "per_second", "tokens", "updated_at")

    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("a bucket needs capacity >= 1 and a positive refill rate")
        self.capacity = float(capacity)
        self.per_second = float(per_second)
        self.tokens = float(capacity)
        self.updated_at = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available (nothing taken)."""
        elapsed = now - self.updated_at
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
            self.updated_at = now
        if self.tokens >= 1.0 - _EPSILON:  # refills add up in floating point
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.per_second
