"""Per-connection state: the principal, subscriptions, and a bounded outgoing queue drained by one writer task."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from server.domain.errors import DomainError, Unavailable
from server.realtime import messages
from server.services.identity import Principal

if TYPE_CHECKING:
    from server.realtime.hub import RealtimeHub

log = logging.getLogger(__name__)

PACED_SEND_TIMEOUT = 10.0
_ids = itertools.count(1)


class Connection:
    """One authenticated client socket.

    Everything the server sends goes through :meth:`send`, which only appends to a bounded
    queue; one writer task drains it. A client that lets the queue fill up is closed
    (``4008``): it reconnects and resumes from its last sequence, losing nothing, while it can
    never make the server buffer without limit (checklist B8). Each subscription is kept as an
    unsubscribe callable under the id of the request that opened it; all run on close.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        hub: RealtimeHub,
        *,
        queue_limit: int,
        check_interval: float,
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.principal = principal
        self.hub = hub
        self.subscriptions: dict[int, Callable[[], None]] = {}
        self.last_id = 0
        self.in_flight = 0
        self.closing = False
        self.check_interval = check_interval
        self.next_check_at = asyncio.get_running_loop().time() + check_interval
        self._queue: collections.deque[str] = collections.deque()
        self._queue_limit = queue_limit
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._writer: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe_on_close: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    # -- sending ------------------------------------------------------------------------------

    def send(self, frame: str) -> None:
        """Queue a frame; a client that is too far behind is closed instead of buffered forever."""
        if self.closing:
            return
        if len(self._queue) >= self._queue_limit:
            log.warning("closing slow websocket consumer %s (%s)", self.id, self.principal.key)
            self.close_soon(messages.CLOSE_SLOW_CONSUMER, "too slow: reconnect and resume")
            return
        self._queue.append(frame)
        if len(self._queue) > self._queue_limit // 2:
            self._drained.clear()
        self._ready.set()

    async def send_paced(self, frames: Iterable[str]) -> None:
        """Queue many frames (a replay), waiting for the client to read when the queue is half full."""
        for frame in frames:
            if not self._drained.is_set():
                try:
                    await asyncio.wait_for(self._drained.wait(), PACED_SEND_TIMEOUT)
                except TimeoutError:
                    self.close_soon(messages.CLOSE_SLOW_CONSUMER, "too slow: reconnect and resume")
                    return
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

    async def _write_loop(self) -> None:
        queue = self._queue
        ws = self.ws
        try:
            while True:
                if not queue:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame = queue.popleft()
                if len(queue) <= self._queue_limit // 4:
                    self._drained.set()
                await ws.send_str(frame)
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-write; the receive loop notices and cleans up.
            log.debug("websocket %s write stopped: %s", self.id, exc)
            self.closing = True

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
        tasks = [task for task in (self._writer, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._close_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._close_task), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._close_task.cancel()
