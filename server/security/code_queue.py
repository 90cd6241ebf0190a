"""The outbox for one-time codes: the request answers first, a background task delivers.

Why (checklist A9, issue 11 item 10): when ``policy/start`` awaited the SMS sender, a real person
answered measurably later than an unknown policy (0.84 ms at the median with the file outbox; a
real gateway would widen that to its round trip), which tells an attacker whether a policy number
and birth date are real. Now every case does the same work on the request path: the right person's
code is put on an in-process queue (a constant-time ``put_nowait``) and this module's drainer sends
it after the answer has gone.

Each server process drains only its own queue, and an item leaves the queue exactly once, so with
several processes every code is sent once (the HTTP sender's retries carry one idempotency key).
The queue holds codes in memory only, never in the database: a process that dies before sending
loses its few queued codes, and the person asks for a new one (a code is valid 5 minutes anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from server.domain.errors import Unavailable
from server.security.otp import CodeSender, mask_phone

log = logging.getLogger(__name__)

QUEUE_CAPACITY: Final = 10_000
"""Far above any real backlog; a full queue means the sender is stuck, so refuse rather than grow."""


class CodeQueueFull(Unavailable):
    """The sender has fallen this far behind: 503, try again shortly."""

    code = "code_not_sent"


@dataclass(frozen=True, slots=True)
class _Outgoing:
    phone: str
    text: str
    now: datetime


class QueuedCodeSender:
    """A ``CodeSender`` whose ``send`` only enqueues; ``start`` runs the task that delivers."""

    def __init__(self, inner: CodeSender, *, capacity: int = QUEUE_CAPACITY) -> None:
        self.inner = inner
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue(maxsize=capacity)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        """Queue the message and return at once (never waits for the gateway)."""
        try:
            self._queue.put_nowait(_Outgoing(phone, text, now))
        except asyncio.QueueFull:
            log.error("one-time code queue full (%d); the sender is not keeping up", self._queue.qsize())
            raise CodeQueueFull("the one-time code could not be sent; try again shortly") from None
        if self._task is None:
            # No drainer (a use case called outside the app's lifetime): deliver inline.
            await self._deliver(self._queue.get_nowait())

    def start(self) -> None:
        """Start the drainer (the app's start-up)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="code-outbox")

    async def close(self, *, grace_seconds: float = 5.0) -> None:
        """Deliver what is queued (for up to ``grace_seconds``), then stop the drainer; the inner sender stays open."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_seconds):
                    await self._queue.join()
            if not self._queue.empty():
                log.warning("%d one-time code(s) not sent at shutdown", self._queue.qsize())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def join(self) -> None:
        """Wait until every queued code has been handed to the inner sender (tests, shutdown)."""
        await self._queue.join()

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            finally:
                self._queue.task_done()

    async def _deliver(self, item: _Outgoing) -> None:
        try:
            await self.inner.send(item.phone, item.text, now=item.now)
            self.sent += 1
        except Exception:  # one failed delivery must never stop the drainer
            self.failed += 1
            # The inner sender logs why; the message text holds the code, so it is never logged here.
            log.error("one-time code to %s not delivered", mask_phone(item.phone), exc_info=False)
