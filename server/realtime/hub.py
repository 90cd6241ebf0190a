"""This process's side of real time: one bus subscription, a feed per consultation, session checks.

Delivery never trusts the bus for content. Each consultation with local subscribers has one
:class:`ConsultationFeed` that knows the highest sequence it has delivered without a gap. New
messages reach it in two ways: this process's chat writer hands over what it has just committed
(no query), and ``chat.committed`` hints from any process say "consultation C reached seq N", upon
which the feed reads what it lacks from the database (one batched query for all lagging feeds).
A bus ``RESYNC`` (Redis reconnected, queue overflow) makes every feed catch up the same way.

A subscriber starts from its own cursor: it is registered first, then replays from the database
(checklist G4), and only then receives live messages, skipping anything at or below its cursor,
so replay and live never leave a gap or a duplicate (G3).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from server.bus import RESYNC, Message
from server.channels import (
    EVENT_CHAT_COMMITTED,
    EVENT_CHAT_TYPING,
    EVENT_CONSULTATION_UPDATED,
    EVENT_PRESENCE,
    EVENT_SESSION_REVOKED,
    chat_commits_channel,
    consultation_channel,
    session_channel,
)
from server.domain.errors import Unavailable
from server.domain.participation import ConsultationAccess, participant_of
from server.realtime import messages
from server.realtime.seats import make_seats
from server.services import auth as auth_service
from server.services import chat
from server.services import consultation_safety as safety
from server.services.chat import ChatMessage, ChatWriter
from server.services.context import ServiceContext
from server.services.identity import ROLE_DOCTOR

if TYPE_CHECKING:
    from server.realtime.connection import Connection

log = logging.getLogger(__name__)

RECENT_MESSAGES: Final = 32
ORIGINS_KEPT: Final = 1000
REPLAY_PAGE: Final = 200
FETCH_LIMIT_EACH: Final = 500
FETCH_CHUNK: Final = 200
SESSION_CHECKS_PER_TICK: Final = 500

Handler = Callable[[Message], None]


class Listener:
    """One socket's subscription to one consultation, with its own cursor."""

    __slots__ = ("connection", "last_seq", "replaying", "subscription_id")

    def __init__(self, connection: Connection, subscription_id: int, last_seq: int) -> None:
        self.connection = connection
        self.subscription_id = subscription_id
        self.last_seq = last_seq
        self.replaying = True

    def push(self, message: ChatMessage) -> None:
        """Deliver a live message in order; anything at or below the cursor was already sent."""
        if self.replaying or message.seq <= self.last_seq:
            return
        if message.origin is not self.connection:  # the sender has its acknowledgement instead
            self.connection.send(messages.event_message_raw(self.subscription_id, message.json))
        self.last_seq = message.seq


class ConsultationFeed:
    """Everything this process delivers about one consultation, shared by its local subscribers."""

    def __init__(self, hub: RealtimeHub, consultation_id: int) -> None:
        self.hub = hub
        self.consultation_id = consultation_id
        self.delivered_seq: int | None = None  # unknown until the first subscriber has read to the head
        self.heard_seq = 0
        self.recent: collections.deque[ChatMessage] = collections.deque(maxlen=RECENT_MESSAGES)
        self.listeners: list[Listener] = []
        self.access: ConsultationAccess | None = None
        self._origins: dict[int, object] = {}  # seq -> the local socket that sent it, for messages past a gap
        self._unlisten = hub.listen(consultation_channel(consultation_id), self.on_bus)

    def close(self) -> None:
        """Stop listening to the bus (the last local subscriber left)."""
        self._unlisten()

    # -- chat messages ------------------------------------------------------------------------

    def hint(self, seq: int) -> None:
        """Some process committed messages up to ``seq``: fetch what we lack."""
        self.heard_seq = max(self.heard_seq, seq)
        if self.delivered_seq is not None and seq > self.delivered_seq:
            self.hub.request_fetch(self.consultation_id)

    def add_messages(self, batch: list[ChatMessage]) -> None:
        """Deliver messages (ascending) that continue the feed; a gap means "fetch from the database"."""
        for message in batch:
            self.heard_seq = max(self.heard_seq, message.seq)
            delivered = self.delivered_seq
            if delivered is None or message.seq <= delivered:
                continue
            if message.seq != delivered + 1:
                # This process's own messages beyond a gap come back from the database without
                # their socket: remember it, so the sender is still not sent its own message.
                self._remember_origins(batch)
                self.hub.request_fetch(self.consultation_id)
                return
            if message.origin is None and self._origins:
                message.origin = self._origins.pop(message.seq, None)
            self.delivered_seq = message.seq
            self.recent.append(message)
            for listener in self.listeners:
                listener.push(message)

    def _remember_origins(self, batch: list[ChatMessage]) -> None:
        delivered = self.delivered_seq or 0
        if len(self._origins) > ORIGINS_KEPT:
            self._origins = {seq: o for seq, o in self._origins.items() if seq > delivered}
        for message in batch:
            if message.origin is not None and message.seq > delivered:
                self._origins[message.seq] = message.origin

    def _initialize(self, head: int) -> None:
        self.delivered_seq = head
        if self.heard_seq > head:
            self.hub.request_fetch(self.consultation_id)

    async def catch_up(self, listener: Listener) -> None:
        """Bring a listener from its cursor to the feed's head, then switch it to live delivery."""
        ctx = self.hub.ctx
        connection = listener.connection
        listener.replaying = True
        try:
            while not connection.closing:
                delivered = self.delivered_seq
                if delivered is not None and listener.last_seq >= delivered:
                    break
                recent = self.recent
                if delivered is not None and recent and recent[0].seq <= listener.last_seq + 1:
                    # No await from the check to the switch: nothing can slip in between.
                    for message in recent:
                        if message.seq > listener.last_seq:
                            connection.send(messages.event_message_raw(listener.subscription_id, message.json))
                            listener.last_seq = message.seq
                    break
                page = await chat.read_messages(ctx, self.consultation_id, listener.last_seq, REPLAY_PAGE)
                if page:
                    sid = listener.subscription_id
                    await connection.send_paced(messages.event_message_raw(sid, m.json) for m in page)
                    listener.last_seq = page[-1].seq
                if len(page) < REPLAY_PAGE and self.delivered_seq is None:
                    self._initialize(listener.last_seq)  # we have read up to the database's head
        finally:
            listener.replaying = False

    # -- other consultation events ------------------------------------------------------------

    def on_bus(self, message: Message) -> None:
        """Typing, read receipts, presence, status changes and call signals: relay to subscribers."""
        kind = message.get("type")
        if kind == EVENT_PRESENCE and message.get("probe"):
            self._answer_presence_probe(message)
            message = {key: value for key, value in message.items() if key != "probe"}
        for listener in list(self.listeners):
            own_key = listener.connection.principal.key
            if (kind == EVENT_PRESENCE and message.get("who") == own_key) or (
                kind == EVENT_CHAT_TYPING and message.get("sender") == own_key
            ):
                continue  # no echo of one's own presence or typing
            listener.connection.send_event(listener.subscription_id, message)
        if kind == EVENT_CONSULTATION_UPDATED:
            self.hub.request_access_check(self.consultation_id)

    def _answer_presence_probe(self, message: Message) -> None:
        answered: set[str] = set()
        for listener in self.listeners:
            key = listener.connection.principal.key
            if key != message.get("who") and key not in answered and not listener.replaying:
                answered.add(key)
                self.hub.publish_soon(
                    consultation_channel(self.consultation_id),
                    {"type": EVENT_PRESENCE, "consultation_id": self.consultation_id, "who": key, "online": True},
                )

    def recheck_access(self, access: ConsultationAccess | None) -> None:
        """Drop subscribers who no longer take part (doctor reassigned); checklist C5."""
        self.access = access
        for listener in list(self.listeners):
            if participant_of(access, listener.connection.principal) is None:
                connection = listener.connection
                connection.send_event(
                    listener.subscription_id,
                    {"type": "subscription.ended", "consultation_id": self.consultation_id, "reason": "no_access"},
                )
                unsubscribe = connection.subscriptions.pop(listener.subscription_id, None)
                if unsubscribe is not None:
                    unsubscribe()


class RealtimeHub:
    """Routes bus messages to this process's sockets and keeps their sessions honest."""

    def __init__(self, ctx: ServiceContext, writer: ChatWriter) -> None:
        self.ctx = ctx
        self.writer = writer
        self.feeds: dict[int, ConsultationFeed] = {}
        self.connections: set[Connection] = set()
        self.by_subject: dict[str, set[Connection]] = {}
        self._subscription = ctx.bus.subscribe([chat_commits_channel()])
        self._handlers: dict[str, list[Handler]] = {}
        self._resync_handlers: list[Callable[[], None]] = []
        # A10: a socket that is busy with the user (e.g. a leg of a call in progress, where media
        # flows and no frame needs to) is not idle; the call relay registers its check here.
        self.busy_checks: list[Callable[[object], bool]] = []
        self._fetch_pending: dict[int, None] = {}
        self._fetch_wakeup = asyncio.Event()
        self._access_pending: dict[int, None] = {}
        self._access_wakeup = asyncio.Event()
        self._outbox: collections.deque[tuple[str, Message]] = collections.deque()
        self._outbox_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: set[asyncio.Task[None]] = set()
        self.seats = make_seats(ctx.bus, ctx.settings.redis_prefix, ttl_ms=int(ctx.settings.ws_seat_ttl_seconds * 1000))
        writer.add_commit_listener(self.on_local_commit)

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the hub's background tasks."""
        for coro, name in (
            (self._dispatch_loop(), "hub-dispatch"),
            (self._fetch_loop(), "hub-fetch"),
            (self._access_loop(), "hub-access"),
            (self._publish_loop(), "hub-publish"),
            (self._session_loop(), "hub-sessions"),
            (self._seats_loop(), "hub-seats"),
        ):
            self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        """Cancel and await the background tasks; close the bus subscription."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._releases:
            await asyncio.wait(self._releases, timeout=2.0)
        self._subscription.close()

    # -- bus routing --------------------------------------------------------------------------

    def listen(self, channel: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(message)`` for each bus message on ``channel``; returns the unsubscribe callable."""
        handlers = self._handlers.setdefault(channel, [])
        if not handlers:
            self._subscription.add(channel)
        handlers.append(handler)

        def unlisten() -> None:
            current = self._handlers.get(channel)
            if current is None or handler not in current:
                return
            current.remove(handler)
            if not current:
                del self._handlers[channel]
                self._subscription.remove(channel)

        return unlisten

    def on_resync(self, handler: Callable[[], None]) -> Callable[[], None]:
        """Call ``handler()`` when the bus may have lost messages; returns the unsubscribe callable."""
        self._resync_handlers.append(handler)
        return lambda: self._resync_handlers.remove(handler) if handler in self._resync_handlers else None

    def publish_soon(self, channel: str, message: Message) -> None:
        """Publish from synchronous code; one task sends the outbox in order."""
        self._outbox.append((channel, message))
        self._outbox_wakeup.set()

    async def _dispatch_loop(self) -> None:
        commits = chat_commits_channel()
        while True:
            channel, message = await self._subscription.get()
            try:
                if channel == commits:
                    if message.get("type") == EVENT_CHAT_COMMITTED:
                        self._on_commit_hint(message)
                elif channel == RESYNC:
                    if not message.get("closed"):
                        self._resync()
                else:
                    for handler in tuple(self._handlers.get(channel, ())):
                        handler(message)
            except Exception:
                log.exception("realtime dispatch failed for %s", channel)

    def _on_commit_hint(self, message: Message) -> None:
        feeds = self.feeds
        for pair in message.get("seqs", ()):
            try:
                consultation_id, seq = int(pair[0]), int(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            feed = feeds.get(consultation_id)
            if feed is not None:
                feed.hint(seq)

    def _resync(self) -> None:
        log.info("bus resync: catching %d consultation feeds up from the database", len(self.feeds))
        for consultation_id in self.feeds:
            self.request_fetch(consultation_id)
            self.request_access_check(consultation_id)
        for handler in list(self._resync_handlers):
            try:
                handler()
            except Exception:
                log.exception("resync handler failed")
        now = asyncio.get_running_loop().time()
        for connection in self.connections:  # a revocation may have been among the lost messages
            connection.next_check_at = min(connection.next_check_at, now)

    async def _publish_loop(self) -> None:
        while True:
            if not self._outbox:
                self._outbox_wakeup.clear()
                await self._outbox_wakeup.wait()
                continue
            channel, message = self._outbox.popleft()
            try:
                await self.ctx.bus.publish(channel, message)
            except Exception as exc:
                log.warning("could not publish on %s: %s", channel, exc)

    # -- chat delivery ------------------------------------------------------------------------

    def acquire_feed(self, consultation_id: int) -> ConsultationFeed:
        """The consultation's feed, created (and listening to the bus) if it is new."""
        feed = self.feeds.get(consultation_id)
        if feed is None:
            feed = self.feeds[consultation_id] = ConsultationFeed(self, consultation_id)
        return feed

    def release_feed(self, feed: ConsultationFeed) -> None:
        """Drop the feed when its last listener has gone."""
        if not feed.listeners and self.feeds.get(feed.consultation_id) is feed:
            del self.feeds[feed.consultation_id]
            feed.close()

    def on_local_commit(self, committed: list[ChatMessage]) -> None:
        """Messages this process's writer has just committed: deliver locally without a query."""
        feeds = self.feeds
        grouped: dict[int, list[ChatMessage]] = {}
        for message in committed:
            if message.consultation_id in feeds:
                grouped.setdefault(message.consultation_id, []).append(message)
        for consultation_id, batch in grouped.items():
            feeds[consultation_id].add_messages(batch)

    def request_fetch(self, consultation_id: int) -> None:
        """Ask the fetcher to read a consultation's new messages from the database."""
        self._fetch_pending[consultation_id] = None
        self._fetch_wakeup.set()

    async def _fetch_loop(self) -> None:
        backoff = 0.05
        while True:
            if not self._fetch_pending:
                self._fetch_wakeup.clear()
                await self._fetch_wakeup.wait()
                continue
            pending, self._fetch_pending = list(self._fetch_pending), {}
            for start in range(0, len(pending), FETCH_CHUNK):
                chunk = pending[start : start + FETCH_CHUNK]
                cursors: dict[int, int] = {}
                for consultation_id in chunk:
                    feed = self.feeds.get(consultation_id)
                    if feed is not None and feed.delivered_seq is not None:
                        cursors[consultation_id] = feed.delivered_seq
                if not cursors:
                    continue
                try:
                    fetched = await chat.read_messages_many(self.ctx, cursors, FETCH_LIMIT_EACH)
                except (Unavailable, OSError, Exception) as exc:  # retried: the database is the truth
                    log.warning("chat catch-up failed (%s); retrying", type(exc).__name__)
                    for consultation_id in cursors:
                        self._fetch_pending[consultation_id] = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                grouped: dict[int, list[ChatMessage]] = {}
                for message in fetched:
                    grouped.setdefault(message.consultation_id, []).append(message)
                for consultation_id, batch in grouped.items():
                    feed = self.feeds.get(consultation_id)
                    if feed is not None:
                        feed.add_messages(batch)
                        if len(batch) >= FETCH_LIMIT_EACH or feed.heard_seq > (feed.delivered_seq or 0):
                            self.request_fetch(consultation_id)

    def request_access_check(self, consultation_id: int) -> None:
        """Re-read who takes part in a consultation (after a status change or a resync)."""
        self._access_pending[consultation_id] = None
        self._access_wakeup.set()

    async def _access_loop(self) -> None:
        while True:
            if not self._access_pending:
                self._access_wakeup.clear()
                await self._access_wakeup.wait()
                continue
            consultation_id = next(iter(self._access_pending))
            del self._access_pending[consultation_id]
            feed = self.feeds.get(consultation_id)
            if feed is None:
                continue
            try:
                access = await chat.consultation_access(self.ctx, consultation_id)
            except Exception as exc:
                log.warning("access re-check failed (%s); retrying", type(exc).__name__)
                self.request_access_check(consultation_id)
                await asyncio.sleep(0.5)
                continue
            feed = self.feeds.get(consultation_id)
            if feed is not None:
                feed.recheck_access(access)

    # -- connections and sessions -------------------------------------------------------------

    async def register(self, connection: Connection) -> bool:
        """Track an authenticated socket; False when its user already has the maximum open (B8).

        The cap counts the user's sockets on every process (``server/realtime/seats.py``); the
        local reservation is taken first so two sockets of one user racing here cannot both pass.
        """
        key = connection.principal.key
        limit = self.ctx.settings.ws_max_connections_per_subject
        mine = self.by_subject.setdefault(key, set())
        if len(mine) >= limit:
            if not mine:
                del self.by_subject[key]
            return False
        mine.add(connection)
        granted = False
        try:
            granted = await self.seats.take(key, connection.seat, limit)
        finally:
            if not granted:
                self._drop_local(connection)
        if not granted:
            return False
        self.connections.add(connection)
        connection.next_check_at = asyncio.get_running_loop().time() + self.seconds_until_next_check(connection)
        self.ctx.metrics.websocket_connections.inc()

        def on_session_message(message: Message) -> None:
            if message.get("type") == EVENT_SESSION_REVOKED:
                connection.close_soon(messages.CLOSE_AUTH, "session ended")

        connection.on_close(self.listen(session_channel(connection.principal.session_id), on_session_message))
        connection.on_close(lambda: self._unregister(connection))
        if connection.principal.role == ROLE_DOCTOR:
            # Every process knows who is connected: only they are offered requests (R11.7, R11.8).
            await safety.doctor_connected(self.ctx, connection.seat, connection.principal.subject_id)
        return True

    def _drop_local(self, connection: Connection) -> None:
        mine = self.by_subject.get(connection.principal.key)
        if mine is not None:
            mine.discard(connection)
            if not mine:
                del self.by_subject[connection.principal.key]

    def _unregister(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.ctx.metrics.websocket_connections.dec()
        self._drop_local(connection)
        release = asyncio.create_task(self.seats.release(connection.principal.key, connection.seat))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)
        if connection.principal.role == ROLE_DOCTOR:
            gone = asyncio.create_task(self._doctor_gone(connection.seat))
            self._releases.add(gone)
            gone.add_done_callback(self._releases.discard)

    async def _doctor_gone(self, socket_id: str) -> None:
        """Record the end of a doctor's socket; their consultations get the grace, then move on (R11.8)."""
        try:
            await safety.doctor_disconnected(self.ctx, socket_id)
        except Exception as exc:
            log.warning("could not record a doctor's disconnect (%s); it goes stale on its own", type(exc).__name__)

    async def _seats_loop(self) -> None:
        """Renew this process's socket seats so they outlive the TTL only while the sockets do."""
        while True:
            await asyncio.sleep(self.ctx.settings.ws_seat_ttl_seconds / 3)  # renewed twice before a seat lapses
            try:
                await self.seats.renew([(c.principal.key, c.seat) for c in self.connections])
            except Exception as exc:
                log.warning("could not renew socket seats (%s); retrying", type(exc).__name__)
            try:
                await safety.renew_connections(
                    self.ctx, [c.seat for c in self.connections if c.principal.role == ROLE_DOCTOR]
                )
            except Exception as exc:
                log.warning("could not renew doctors' connections (%s); retrying", type(exc).__name__)

    async def _session_loop(self) -> None:
        """Re-validate sessions periodically, so a missed revocation cannot keep a socket open (B5)."""
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.ctx.settings.ws_session_check_seconds / 2)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            due: dict[str, list[Connection]] = {}
            idle_before = now - self.idle_limit_seconds()
            session_activity = self._session_activity()
            for connection in list(self.connections):
                if (
                    session_activity[connection.principal.session_id] <= idle_before
                    and not connection.closing
                    and not any(busy(connection) for busy in self.busy_checks)
                ):
                    # A10: idle past the limit closes at the limit, not at the next refresh.
                    connection.close_soon(messages.CLOSE_IDLE, "idle timeout")
                    continue
                if connection.next_check_at <= now and not connection.closing:
                    due.setdefault(connection.principal.session_id, []).append(connection)
                    if len(due) >= SESSION_CHECKS_PER_TICK:
                        break
            for session_id, connections in due.items():
                try:
                    principal = await auth_service.session_principal(self.ctx, session_id)
                except Exception as exc:
                    # Fail closed only on a definite answer; retry soon when the database is down.
                    log.warning("session re-check failed (%s)", type(exc).__name__)
                    for connection in connections:
                        connection.next_check_at = loop.time() + min(5.0, connection.check_interval)
                    continue
                wall_now = self.ctx.clock.now()
                for connection in connections:
                    if principal is None or principal.token_expires_at <= wall_now:
                        connection.close_soon(messages.CLOSE_AUTH, "session ended")
                    else:
                        connection.next_check_at = loop.time() + self.seconds_until_next_check(connection)

    def _session_activity(self) -> dict[str, float]:
        """The latest frame from the user over all of a session's sockets here: a tab left in the
        background is not idle while another tab of the same session is in use (A10)."""
        latest: dict[str, float] = {}
        for connection in self.connections:
            session_id = connection.principal.session_id
            latest[session_id] = max(latest.get(session_id, connection.last_activity_at), connection.last_activity_at)
        return latest

    def idle_limit_seconds(self) -> float:
        """How long a socket may go without a frame from its user (A10): the session's idle limit."""
        settings = self.ctx.settings
        return settings.ws_idle_seconds or settings.refresh_idle_minutes * 60.0

    def seconds_until_next_check(self, connection: Connection) -> float:
        """The regular interval, or sooner when the session expires before it (A10)."""
        remaining = (connection.principal.token_expires_at - self.ctx.clock.now()).total_seconds()
        return max(0.0, min(connection.check_interval, remaining))
