"""The WebSocket command registry and the built-in commands (chat, consultation subscriptions, notifications).

Later stages add their own commands without touching the transport, e.g. the WebRTC
signalling package::

    app[ws_commands_key].register("call.offer", handle_offer, fields={"consultation_id", "sdp"})

A handler gets the :class:`~server.realtime.connection.Connection` and the parsed request
(``id`` and ``type`` already checked, unknown fields refused); it replies with
``connection.send_result(msg["id"], ...)`` or raises a domain error, which the transport maps
to an error reply. Handlers may be plain functions (fast path, e.g. ``chat.send``) or
coroutines (awaited in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from server.channels import (
    EVENT_CHAT_TYPING,
    EVENT_PRESENCE,
    consultation_channel,
    dispatch_queue_channel,
    doctors_queue_channel,
    duty_alerts_channel,
    user_channel,
)
from server.domain.errors import DomainError, InvalidInput, NotFound
from server.domain.participation import participant_of
from server.realtime import messages
from server.realtime.hub import Listener
from server.services import chat
from server.services.chat import PostedMessage
from server.services.identity import ROLE_ADMIN, ROLE_DISPATCHER, ROLE_DOCTOR

if TYPE_CHECKING:
    from server.realtime.connection import Connection

CommandHandler = Callable[["Connection", dict[str, Any]], Awaitable[None] | None]

MAX_IN_FLIGHT: Final = 256
HISTORY_DEFAULT_LIMIT: Final = 100


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its handler and the request fields it accepts besides ``id``/``type``."""

    type: str
    handler: CommandHandler
    fields: frozenset[str]


class CommandRegistry:
    """Command types to handlers; one per application, in ``app[ws_commands_key]``."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(self, type_: str, handler: CommandHandler, *, fields: Iterable[str] = ()) -> None:
        """Add a command; registering a type twice is a programming error."""
        if type_ in self._commands:
            raise ValueError(f"websocket command {type_!r} is already registered")
        self._commands[type_] = Command(type_, handler, frozenset(fields) | {"id", "type"})

    def get(self, type_: str) -> Command | None:
        """The command for ``type_``, or None."""
        return self._commands.get(type_)

    @property
    def types(self) -> list[str]:
        """Registered command types, sorted."""
        return sorted(self._commands)


# -- field validation (strict: checklist B7) ------------------------------------------------------


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code=messages.ERR_INVALID_FORMAT)


def require_int(msg: dict[str, Any], name: str, *, minimum: int = 0, maximum: int = 2**53) -> int:
    """An integer field (booleans refused) within bounds."""
    value = msg.get(name)
    if type(value) is not int:
        raise _invalid(f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise _invalid(f"{name} must be between {minimum} and {maximum}")
    return value


def optional_int(msg: dict[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int = 2**53) -> int:
    """An optional integer field."""
    if msg.get(name) is None:
        return default
    return require_int(msg, name, minimum=minimum, maximum=maximum)


def require_bool(msg: dict[str, Any], name: str) -> bool:
    """A boolean field."""
    value = msg.get(name)
    if type(value) is not bool:
        raise _invalid(f"{name} must be true or false")
    return value


# -- built-in commands ----------------------------------------------------------------------------


def handle_ping(connection: Connection, msg: dict[str, Any]) -> None:
    """Application-level keep-alive (browsers cannot send WebSocket pings)."""
    connection.send(messages.dumps({"id": msg["id"], "type": "pong"}))


async def handle_consultation_subscribe(connection: Connection, msg: dict[str, Any]) -> None:
    """Authorize, replay every stored message after ``after_seq`` in order, then go live.

    The result comes first; then the replayed messages; then live messages, typing, read
    receipts, status updates and presence, all as events of this subscription.
    """
    consultation_id = require_int(msg, "consultation_id", minimum=1)
    after_seq = optional_int(msg, "after_seq", 0)
    hub = connection.hub
    principal = connection.principal
    transcript = await chat.open_transcript(hub.ctx, principal, consultation_id)
    access = transcript.access
    # A cursor beyond the last message cannot be honoured; start from the head instead of skipping.
    start = min(after_seq, access.last_seq)
    feed = hub.acquire_feed(consultation_id)
    if feed.access is None:
        feed.access = access
    listener = Listener(connection, msg["id"], start)
    feed.listeners.append(listener)  # registered before the backlog is read (checklist G4)
    channel = consultation_channel(consultation_id)

    def unsubscribe() -> None:
        if listener in feed.listeners:
            feed.listeners.remove(listener)
            hub.publish_soon(
                channel,
                {"type": EVENT_PRESENCE, "consultation_id": consultation_id, "who": principal.key, "online": False},
            )
        hub.release_feed(feed)

    connection.subscriptions[msg["id"]] = unsubscribe
    connection.send_result(
        msg["id"],
        {
            "consultation_id": consultation_id,
            "status": access.status,
            "last_seq": access.last_seq,
            "after_seq": start,
            "participants": {
                "patient": f"insured:{access.insured_person_id}",
                "doctor": f"staff:{access.doctor_id}" if access.doctor_id is not None else None,
            },
            "read_marks": transcript.read_marks,
        },
    )
    await feed.catch_up(listener)
    hub.publish_soon(
        channel,
        {
            "type": EVENT_PRESENCE,
            "consultation_id": consultation_id,
            "who": principal.key,
            "online": True,
            "probe": True,
        },
    )


def handle_unsubscribe(connection: Connection, msg: dict[str, Any]) -> None:
    """End a subscription opened by an earlier request (``subscription`` is that request's id)."""
    subscription = require_int(msg, "subscription", minimum=1)
    unsubscribe = connection.subscriptions.pop(subscription, None)
    if unsubscribe is None:
        raise NotFound("no such subscription", code=messages.ERR_NOT_FOUND)
    unsubscribe()
    connection.send_result(msg["id"])


def handle_chat_send(connection: Connection, msg: dict[str, Any]) -> None:
    """Queue a message for the batched writer; reply once it is durably stored (or refused).

    Not a coroutine on purpose: the receive loop goes on reading while the batch commits, so a
    client may keep several messages in flight (up to ``MAX_IN_FLIGHT``), and messages keep the
    order they were sent in. The result carries the message's ``seq``; the message is not sent
    back to this socket as an event (other sockets of the same user do get it).
    """
    consultation_id = require_int(msg, "consultation_id", minimum=1)
    draft = chat.make_draft(consultation_id, msg.get("client_message_id"), msg.get("text"), msg.get("attachment_id"))
    if connection.in_flight >= MAX_IN_FLIGHT:
        raise DomainError("too many messages waiting for acknowledgement", code=messages.ERR_TOO_MANY_PENDING)
    connection.in_flight += 1
    msg_id = msg["id"]

    def done(outcome: PostedMessage | DomainError) -> None:
        connection.in_flight -= 1
        if isinstance(outcome, DomainError):
            if isinstance(outcome, NotFound) and outcome.code == "not_found":
                task = asyncio.ensure_future(
                    chat.record_denial(connection.hub.ctx, connection.principal, consultation_id, action="chat.send")
                )
                connection.own(task)
            connection.handle_exception(msg_id, outcome)
            return
        message = outcome.message
        # The hot path: a template instead of json.dumps (every value is a number, a validated
        # [A-Za-z0-9_-] id or an ISO timestamp, so nothing needs escaping).
        connection.send(
            f'{{"id":{msg_id},"type":"result","success":true,"result":{{"consultation_id":{message.consultation_id},'
            f'"seq":{message.seq},"id":{message.id},"client_message_id":"{message.client_message_id}",'
            f'"created_at":"{message.created_at_iso}","duplicate":{"true" if outcome.duplicate else "false"}}}}}'
        )

    connection.hub.writer.enqueue(connection.principal, draft, done, origin=connection)


async def _ensure_participant(connection: Connection, consultation_id: int, action: str) -> None:
    feed = connection.hub.feeds.get(consultation_id)
    if (
        feed is not None
        and any(listener.connection is connection for listener in feed.listeners)
        and participant_of(feed.access, connection.principal) is not None
    ):
        return
    await chat.authorize_reader(connection.hub.ctx, connection.principal, consultation_id, action=action)


async def handle_chat_typing(connection: Connection, msg: dict[str, Any]) -> None:
    """Relay "typing" / "stopped typing" to the other participant (not stored)."""
    consultation_id = require_int(msg, "consultation_id", minimum=1)
    typing = require_bool(msg, "typing")
    await _ensure_participant(connection, consultation_id, "chat.typing")
    connection.hub.publish_soon(
        consultation_channel(consultation_id),
        {
            "type": EVENT_CHAT_TYPING,
            "consultation_id": consultation_id,
            "sender": connection.principal.key,
            "typing": typing,
        },
    )
    connection.send_result(msg["id"])


async def handle_chat_read(connection: Connection, msg: dict[str, Any]) -> None:
    """Store the caller's read mark and relay it as a read receipt."""
    consultation_id = require_int(msg, "consultation_id", minimum=1)
    seq = require_int(msg, "seq", minimum=0)
    stored = await chat.mark_read(connection.hub.ctx, connection.principal, consultation_id, seq)
    connection.send_result(msg["id"], {"consultation_id": consultation_id, "seq": stored})


async def handle_chat_history(connection: Connection, msg: dict[str, Any]) -> None:
    """A page of stored messages after ``after_seq`` (the same as the HTTP history)."""
    consultation_id = require_int(msg, "consultation_id", minimum=1)
    after_seq = optional_int(msg, "after_seq", 0)
    limit = optional_int(msg, "limit", HISTORY_DEFAULT_LIMIT, minimum=1, maximum=chat.HISTORY_PAGE_MAX)
    page = await chat.history(
        connection.hub.ctx, connection.principal, consultation_id, after_seq=after_seq, limit=limit
    )
    connection.send_result(
        msg["id"],
        {
            "consultation_id": consultation_id,
            "messages": [message.as_event() for message in page.messages],
            "last_seq": page.last_seq,
            "has_more": page.has_more,
        },
    )


def handle_notifications_subscribe(connection: Connection, msg: dict[str, Any]) -> None:
    """Personal notifications (offers, assignments, status changes) and, for doctors, the queue.

    After a bus resync the subscription receives ``{"type": "resync"}``: reload lists over HTTP.
    """
    hub = connection.hub
    principal = connection.principal
    channels = [user_channel(principal.key)]
    if principal.role == ROLE_DOCTOR:
        channels.append(doctors_queue_channel())
    if principal.role == ROLE_DISPATCHER:
        channels.append(dispatch_queue_channel())
    if principal.role in (ROLE_DISPATCHER, ROLE_ADMIN):
        channels.append(duty_alerts_channel())  # R11.7: escalations, red flags, emergencies, live
    subscription_id = msg["id"]

    def forward(message: dict[str, Any]) -> None:
        connection.send_event(subscription_id, message)

    unlisteners = [hub.listen(channel, forward) for channel in channels]
    unlisteners.append(hub.on_resync(lambda: connection.send_event(subscription_id, {"type": "resync"})))

    def unsubscribe() -> None:
        for unlisten in unlisteners:
            unlisten()

    connection.subscriptions[subscription_id] = unsubscribe
    connection.send_result(subscription_id)


def default_registry() -> CommandRegistry:
    """The registry with every built-in command."""
    registry = CommandRegistry()
    registry.register("ping", handle_ping)
    registry.register("consultation.subscribe", handle_consultation_subscribe, fields={"consultation_id", "after_seq"})
    registry.register("consultation.unsubscribe", handle_unsubscribe, fields={"subscription"})
    registry.register("unsubscribe", handle_unsubscribe, fields={"subscription"})
    registry.register(
        "chat.send", handle_chat_send, fields={"consultation_id", "client_message_id", "text", "attachment_id"}
    )
    registry.register("chat.typing", handle_chat_typing, fields={"consultation_id", "typing"})
    registry.register("chat.read", handle_chat_read, fields={"consultation_id", "seq"})
    registry.register("chat.history", handle_chat_history, fields={"consultation_id", "after_seq", "limit"})
    registry.register("notifications.subscribe", handle_notifications_subscribe)
    return registry
