"""How long a staff login must wait after failures: a growing delay instead of a hard lock.

A hard lock after N failures lets anyone who knows a doctor's username lock them out during
their shift. Instead each failure from one address against one account doubles the wait for
that pair (after a few free tries), and failures from everywhere against the account add a
short, capped wait that applies only to addresses that have themselves failed for it. A
legitimate user from their own address, who has not been failing, is never held up by an
attacker elsewhere; the attacker's own attempts slow down exponentially.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PAIR_FREE_FAILURES = 5
PAIR_MAX_DELAY = timedelta(minutes=15)
ACCOUNT_FREE_FAILURES = 20
ACCOUNT_MAX_DELAY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class FailureHistory:
    """Failures in the last hour: of this account from this address, and of the account overall."""

    pair_failures: int
    pair_last: datetime | None
    account_failures: int
    account_last: datetime | None


def pair_delay(failures: int) -> timedelta:
    """1 s after the 6th failure from one address, doubling, at most 15 minutes."""
    if failures < PAIR_FREE_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - PAIR_FREE_FAILURES, 20)), PAIR_MAX_DELAY)


def account_delay(failures: int) -> timedelta:
    """1 s after 20 failures of the account, doubling every 5 more, at most 60 s."""
    if failures < ACCOUNT_FREE_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min((failures - ACCOUNT_FREE_FAILURES) // 5, 20)), ACCOUNT_MAX_DELAY)


def required_wait(history: FailureHistory, now: datetime) -> timedelta:
    """How long this address must still wait before its next attempt on this account (0: go ahead)."""
    waits = [timedelta(0)]
    if history.pair_last is not None:
        waits.append(history.pair_last + pair_delay(history.pair_failures) - now)
    if history.account_last is not None and history.pair_failures > 0:
        waits.append(history.account_last + account_delay(history.account_failures) - now)
    return max(waits)
