"""Per-connection state: the principal, subscriptions, and a bounded outgoing queue flushed once per loop turn."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from server.domain.errors import DomainError, Unavailable
from server.domain.rate_limit import TokenBucket
from server.realtime import messages
from server.realtime.seats import new_seat_name
from server.services.identity import Principal

if TYPE_CHECKING:
    from server.realtime.hub import RealtimeHub

log = logging.getLogger(__name__)

PACED_SEND_TIMEOUT = 10.0
PACED_LOW_WATER_BYTES = 256 * 1024
MAX_BUFFERED_BYTES = 4 * 1024 * 1024  # unread data we keep for one client before dropping it
FLOOD_REFUSALS_BEFORE_CLOSE = 50  # refused frames in a row from a client that ignores rate_limited
_ids = itertools.count(1)
_PACK_MEDIUM = struct.Struct("!BBH").pack
_PACK_LONG = struct.Struct("!BBQ").pack


def _frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (a server never masks; RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return _PACK_MEDIUM(0x81, 126, length) + payload
    return _PACK_LONG(0x81, 127, length) + payload


class Connection:
    """One authenticated client socket.

    Everything the server sends goes through :meth:`send`, which only appends to a bounded
    queue. Once per event-loop iteration the queue is flushed: its frames are framed and
    written to the transport in ONE write, so a socket that gets five frames in one batch
    costs one system call, not five, and an idle socket costs no task at all (this is what
    keeps 10,000 idle sockets small and the chat path fast). A client whose unread backlog
    passes ``MAX_BUFFERED_BYTES`` (or the frame queue limit) is closed with ``4008``: it
    reconnects and resumes from its last sequence, losing nothing, and it can never make the
    server buffer without limit (checklist B8). Each subscription is kept as an unsubscribe
    callable under the id of the request that opened it; all run on close.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        hub: RealtimeHub,
        *,
        transport: asyncio.Transport,
        queue_limit: int,
        check_interval: float,
        messages_per_minute: float,
        message_burst: int,
    ) -> None:
        self.id = next(_ids)
        self.seat = new_seat_name()  # this socket's name in the per-user cap shared by all processes
        self.ws = ws
        self.principal = principal
        self.hub = hub
        self.subscriptions: dict[int, Callable[[], None]] = {}
        self.last_id = 0
        self.in_flight = 0
        self.closing = False
        self.check_interval = check_interval
        self.next_check_at = asyncio.get_running_loop().time() + check_interval
        # The user's last frame (a ``ping`` command and protocol pings do not count): A10 idle limit.
        self.last_activity_at = asyncio.get_running_loop().time()
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._queue: list[str] = []
        self._queue_limit = queue_limit
        self._flush_scheduled = False
        self._close_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe_on_close: list[Callable[[], None]] = []
        self._rate = TokenBucket(message_burst, messages_per_minute / 60, self._loop.time())
        self._refusals_in_row = 0

    def loop_time(self) -> float:
        """The event loop's clock (what ``last_activity_at`` and ``next_check_at`` are in)."""
        return self._loop.time()

    def start(self) -> None:
        """Ready to send (kept for symmetry with ``cleanup``; nothing runs until a frame is queued)."""

    # -- receiving ----------------------------------------------------------------------------

    def take_token(self) -> float:
        """Account for one received frame: 0.0 if within the rate limit, else seconds to wait (B8)."""
        wait = self._rate.take(self._loop.time())
        if wait == 0.0:
            self._refusals_in_row = 0
        return wait

    def refuse_over_rate(self, msg_id: int | None, wait: float) -> None:
        """Tell the client to slow down; one that keeps flooding regardless is disconnected.

        The refused request is not processed and its id is not used up, so the client can send
        it again unchanged after ``retry_after_ms`` (a chat message is idempotent anyway).
        """
        self._refusals_in_row += 1
        if self._refusals_in_row > FLOOD_REFUSALS_BEFORE_CLOSE:
            if not self.closing:
                log.warning("closing websocket %s (%s): flooding past the rate limit", self.id, self.principal.key)
                self.close_soon(messages.CLOSE_POLICY_VIOLATION, "message rate limit exceeded")
            return
        self.send_error(
            msg_id,
            messages.ERR_RATE_LIMITED,
            "too many messages on this connection; wait and send again",
            retry_after_ms=max(1, int(wait * 1000 + 0.999)),
        )

    # -- sending ------------------------------------------------------------------------------

    def send(self, frame: str) -> None:
        """Queue a frame; a client that is too far behind is closed instead of buffered forever."""
        if self.closing:
            return
        queue = self._queue
        if len(queue) >= self._queue_limit:
            self._too_slow()
            return
        queue.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write every queued frame in one transport write (RFC 6455 unmasked text frames)."""
        self._flush_scheduled = False
        frames, self._queue = self._queue, []
        transport = self._transport
        if self.closing or not frames or transport.is_closing() or self.ws.closed:
            return
        if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            self._too_slow()
            return
        transport.write(b"".join([_frame(text.encode()) for text in frames]))

    def _too_slow(self) -> None:
        log.warning("closing slow websocket consumer %s (%s)", self.id, self.principal.key)
        self._queue = []
        self.close_soon(messages.CLOSE_SLOW_CONSUMER, "too slow: reconnect and resume")

    async def send_paced(self, frames: Iterable[str]) -> None:
        """Queue many frames (a replay), waiting while the client has a lot left to read."""
        waited = 0.0
        for frame in frames:
            while (
                len(self._queue) > self._queue_limit // 2
                or self._transport.get_write_buffer_size() > PACED_LOW_WATER_BYTES
            ) and not self.closing:
                if waited > PACED_SEND_TIMEOUT:
                    self._too_slow()
                    return
                await asyncio.sleep(0.005)
                waited += 0.005
            self.send(frame)

    def send_result(self, msg_id: int, result: Any = None) -> None:
        """Reply with success."""
        self.send(messages.result_message(msg_id, result))

    def send_error(self, msg_id: int | None, code: str, message: str, **extra: Any) -> None:
        """Reply with an error."""
        self.send(messages.error_message(msg_id, code, message, **extra))

    def send_event(self, subscription_id: int, event: dict[str, Any]) -> None:
        """Push an event to the subscription opened by request ``subscription_id``."""
        self.send(messages.event_message(subscription_id, event))

    def handle_exception(self, msg_id: int | None, exc: BaseException) -> None:
        """Map an exception to an error reply: the one place errors get their wire codes."""
        if isinstance(exc, DomainError):
            code = messages.ERR_UNAVAILABLE if isinstance(exc, Unavailable) else exc.code
            self.send_error(msg_id, code, exc.message, rules=list(exc.rules), details=exc.details)
        elif isinstance(exc, ValidationError):
            self.send_error(msg_id, messages.ERR_INVALID_FORMAT, "the message is not valid")
        else:
            log.error("unexpected error handling websocket message", exc_info=exc)
            self.send_error(msg_id, messages.ERR_UNKNOWN_ERROR, "something went wrong on our side; it has been logged")

    # -- lifetime -----------------------------------------------------------------------------

    def own(self, task: asyncio.Task[Any]) -> None:
        """Keep a task that belongs to this connection; it is cancelled when the connection ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the connection ends (session channel, presence, registries)."""
        self._unsubscribe_on_close.append(callback)

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` without blocking the caller; the receive loop then ends."""
        if self._close_task is not None:
            return
        self.closing = True
        self._close_task = asyncio.create_task(self._close(code, reason), name=f"ws-close-{self.id}")

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def cleanup(self) -> None:
        """Run every unsubscribe callable, stop the writer and owned tasks (called once, from the handler)."""
        self.closing = True
        for unsubscribe in [*self.subscriptions.values(), *self._unsubscribe_on_close]:
            try:
                unsubscribe()
            except Exception:
                log.exception("unsubscribe failed")
        self.subscriptions.clear()
        self._unsubscribe_on_close.clear()
        self._queue = []
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._close_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._close_task), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._close_task.cancel()
