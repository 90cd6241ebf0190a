"""Mount the call signalling (``signaling/``) on the client WebSocket's command registry.

Thin: parse with ``signaling.protocol``, let the relay authorize and relay, reply. The relay gets
its ports here: the hub's ordered outbox (publish), the hub's bus routing (listen), the call
service (the record) and the ICE settings. Protocol refusals become error replies with the
protocol's codes; the socket stays open.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from server.channels import EVENT_CONSULTATION_UPDATED, consultation_channel, user_channel
from server.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from server.keys import context_key, realtime_hub_key, ws_commands_key
from server.realtime.connection import Connection
from server.services.calls import CallService
from signaling import ice, protocol
from signaling.peers.echo import EchoService
from signaling.peers.net import pin_host_addresses
from signaling.protocol import ProtocolError
from signaling.relay import BatchingOutbox, CallRelay

call_relay_key: Final = web.AppKey("call_relay", CallRelay)
echo_key: Final = web.AppKey("echo_service", EchoService)

_NOT_FOUND_CODES: Final = frozenset({protocol.ERR_NOT_FOUND})
_INPUT_CODES: Final = frozenset(
    {
        protocol.ERR_UNSUPPORTED_VERSION,
        protocol.ERR_INVALID_FORMAT,
        protocol.ERR_INVALID_SDP,
        protocol.ERR_INVALID_CANDIDATE,
        protocol.ERR_MESSAGE_TOO_LARGE,
    }
)


def as_domain_error(exc: ProtocolError) -> DomainError:
    """A protocol refusal as the socket's error reply (same code; HTTP-like class for the log)."""
    if exc.code in _NOT_FOUND_CODES:
        return NotFound(exc.message, code=exc.code)
    if exc.code in _INPUT_CODES:
        return InvalidInput(exc.message, code=exc.code)
    return Conflict(exc.message, code=exc.code)


Handler = Callable[[CallRelay, Connection, dict[str, Any]], Awaitable[Any] | Any]


def _command(app: web.Application, handler: Handler) -> Callable[[Connection, dict[str, Any]], Awaitable[None]]:
    @functools.wraps(handler)
    async def run(connection: Connection, msg: dict[str, Any]) -> None:
        try:
            if connection.closing:  # session revoked or expired, or the socket is being closed: relay nothing
                raise ProtocolError(protocol.ERR_NOT_JOINED, "this socket is closing")
            outcome = handler(app[call_relay_key], connection, msg)
            if isinstance(outcome, Awaitable):
                outcome = await outcome
        except ProtocolError as exc:
            raise as_domain_error(exc) from exc
        connection.send_result(msg["id"], outcome)

    return run


# -- handlers ---------------------------------------------------------------------------------------


async def handle_join(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.join``: authorize, join or start, subscribe this request to the call's events."""
    join = protocol.parse_join(msg)
    subscription_id = msg["id"]
    hub = connection.hub

    def deliver(event: dict[str, Any]) -> None:
        connection.send_event(subscription_id, event)

    result = await relay.join(connection, connection.principal, join.consultation_id, join.media, deliver)
    call_id = result["call_id"]

    def on_consultation(message: dict[str, Any]) -> None:
        if message.get("type") != EVENT_CONSULTATION_UPDATED:
            return
        if message.get("status") != "active":
            relay.consultation_left_active(join.consultation_id)  # suspends at once, then confirms
        else:  # still active, perhaps with another doctor: only the current one stays (issue 13 item 2)
            relay.consultation_updated(join.consultation_id, handover=message.get("reason") == "handover")

    unlisten = hub.listen(consultation_channel(join.consultation_id), on_consultation)

    def unsubscribe() -> None:
        unlisten()
        relay.owner_gone_from(connection, call_id)

    def detached() -> None:  # the call ended or moved to another socket: forget the subscription
        unlisten()
        connection.subscriptions.pop(subscription_id, None)

    connection.subscriptions[subscription_id] = unsubscribe
    relay.legs[(call_id, connection)].on_detach = detached
    return result


def _task(coro: Awaitable[None]) -> Any:
    import asyncio

    return asyncio.ensure_future(coro)


def handle_offer(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> None:
    """``call.offer``."""
    relay.description(connection, protocol.parse_description(msg, "offer"))


def handle_answer(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> None:
    """``call.answer``."""
    relay.description(connection, protocol.parse_description(msg, "answer"))


def handle_candidate(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> None:
    """``call.candidate``."""
    relay.candidate(connection, protocol.parse_candidate(msg))


def handle_end_of_candidates(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> None:
    """``call.end_of_candidates``."""
    relay.end_of_candidates(connection, protocol.parse_call_ref(msg), protocol.parse_generation(msg))


def handle_media(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> None:
    """``call.media``: mute and camera state."""
    call_id, media = protocol.parse_media(msg)
    relay.media(connection, call_id, media)


def handle_ice_servers(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.ice_servers``: fresh TURN credentials before a reconnect."""
    return relay.ice_servers(connection, protocol.parse_call_ref(msg))


async def handle_step_down(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.step_down``."""
    return await relay.step_down(connection, protocol.parse_step_down(msg))


async def handle_quality(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.quality``."""
    return await relay.quality(connection, protocol.parse_quality(msg))


async def handle_leave(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.leave``: away with a grace period."""
    return await relay.leave(connection, protocol.parse_call_ref(msg))


async def handle_hangup(relay: CallRelay, connection: Connection, msg: dict[str, Any]) -> Any:
    """``call.hangup``: end it for both."""
    call_id, reason = protocol.parse_hangup(msg)
    return await relay.hang_up(connection, call_id, reason)


def _echo_command(app: web.Application, kind: str) -> Callable[[Connection, dict[str, Any]], Awaitable[None]]:
    async def run(connection: Connection, msg: dict[str, Any]) -> None:
        echo = app[echo_key]
        try:
            if kind == protocol.CMD_ECHO_OFFER:
                protocol.check_version(msg)
                sdp = protocol.check_sdp(msg.get("sdp"))
                if connection not in _echo_owners:
                    _echo_owners[connection] = None
                    connection.on_close(lambda: _task(echo.stop_all_of(connection)))
                result: Any = await echo.answer(connection, sdp)
            else:
                session = msg.get("session")
                if type(session) is not int or session < 1:
                    raise ProtocolError(protocol.ERR_INVALID_FORMAT, "session must be a positive integer")
                if kind == protocol.CMD_ECHO_STATS:
                    result = await echo.stats(connection, session)
                else:
                    await echo.stop(connection, session)
                    result = None
        except ProtocolError as exc:
            raise as_domain_error(exc) from exc
        connection.send_result(msg["id"], result)

    return run


_echo_owners: weakref.WeakKeyDictionary[Connection, None] = weakref.WeakKeyDictionary()


COMMANDS: Final[dict[str, Handler]] = {
    protocol.CMD_JOIN: handle_join,
    protocol.CMD_OFFER: handle_offer,
    protocol.CMD_ANSWER: handle_answer,
    protocol.CMD_CANDIDATE: handle_candidate,
    protocol.CMD_END_OF_CANDIDATES: handle_end_of_candidates,
    protocol.CMD_MEDIA: handle_media,
    protocol.CMD_ICE_SERVERS: handle_ice_servers,
    protocol.CMD_STEP_DOWN: handle_step_down,
    protocol.CMD_QUALITY: handle_quality,
    protocol.CMD_LEAVE: handle_leave,
    protocol.CMD_HANGUP: handle_hangup,
}


def ice_config(app: web.Application) -> ice.IceConfig:
    """The ICE settings as the signalling package wants them."""
    settings = app[context_key].settings
    return ice.IceConfig(
        stun_urls=tuple(settings.rtc_stun_urls),
        turn_urls=tuple(settings.rtc_turn_urls),
        turn_secret=settings.rtc_turn_secret.get_secret_value(),
        ttl_seconds=settings.rtc_turn_ttl_seconds,
    )


def setup(app: web.Application) -> None:
    """Register the call commands and the relay's lifetime (after the hub's); the call-record route is the API's."""
    registry = app[ws_commands_key]
    for type_, handler in COMMANDS.items():
        registry.register(type_, _command(app, handler), fields=protocol.COMMAND_FIELDS[type_])
    for type_ in (protocol.CMD_ECHO_OFFER, protocol.CMD_ECHO_STATS, protocol.CMD_ECHO_STOP):
        registry.register(type_, _echo_command(app, type_), fields=protocol.COMMAND_FIELDS[type_])
    app.cleanup_ctx.append(relay_ctx)


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the relay: built once the hub exists, closed before it stops."""
    ctx = app[context_key]
    if ctx.settings.rtc_host_addresses:
        pin_host_addresses(ctx.settings.rtc_host_addresses)
    hub = app[realtime_hub_key]

    def ring(patient_key: str, consultation_id: int, event: dict[str, Any]) -> None:
        hub.publish_soon(user_channel(patient_key), event)
        hub.publish_soon(consultation_channel(consultation_id), event)

    outbox = BatchingOutbox(ctx.bus.publish_many)  # call signals: one ordered batch per bus round trip
    outbox.start()
    relay = CallRelay(
        CallService(ctx), publish=outbox.publish, listen=hub.listen, ice_config=ice_config(app), ring=ring
    )
    app[call_relay_key] = relay
    hub.busy_checks.append(relay.in_call)
    echo = EchoService(ctx.settings.rtc_echo_max_sessions)
    app[echo_key] = echo
    try:
        yield
    finally:
        await echo.close()
        await relay.close()
        await outbox.stop()
