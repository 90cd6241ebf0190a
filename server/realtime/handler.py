"""The client WebSocket's transport: Origin check, auth phase, receive loop, command dispatch.

Protocol (Home Assistant ``websocket_api`` style; the README's "WebSocket protocol" section has
the full list of commands and events):

1. ``GET /api/ws`` with an ``Origin`` header from ``settings.websocket_origins`` (exact match;
   anything else, or none, is a 403 before the upgrade: checklist B2). Frames are text JSON, at
   most 64 KiB (bigger closes with 1009), permessage-deflate off (B6), heartbeat every 30 s (B9).
2. Server: ``{"type": "auth_required"}``. Client, within 10 s: ``{"type": "auth", "ticket": "..."}``
   with a single-use ticket from ``POST /api/auth/ws-ticket`` (no token in the URL, B3). Server:
   ``{"type": "auth_ok", "user": {"key", "role"}}``, or ``{"type": "auth_invalid", "message"}``
   and close 4001.
3. Requests ``{"id": <strictly increasing int>, "type": "...", ...}``; replies
   ``{"id", "type": "result", "success": true, "result": ...}`` or
   ``{"id", "type": "result", "success": false, "error": {"code", "message"}}``; pushes
   ``{"id": <the subscribing request's id>, "type": "event", "event": {"type", ...}}``.
   A frame that cannot be tied to a request gets ``"id": null``. Bad input never closes the
   socket: ``invalid_json``, ``invalid_format``, ``unknown_command``, ``id_reuse``, ``not_found``.
4. The session is watched: logout or revocation (bus) or a failed periodic re-check closes the
   socket with 4001; a client that does not read fast enough is closed with 4008 and resumes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from server.api.endpoints import endpoint
from server.domain.errors import Forbidden, InvalidInput, Unauthorized, Unavailable
from server.keys import context_key, realtime_hub_key, settings_key, websockets_key, ws_commands_key
from server.logging_setup import header_for_log
from server.realtime import messages
from server.realtime.commands import CommandRegistry
from server.realtime.connection import Connection
from server.services import auth as auth_service
from server.services.identity import Principal

log = logging.getLogger(__name__)

MAX_FRAME_BYTES: Final = 64 * 1024
HEARTBEAT_SECONDS: Final = 30.0
MAX_TICKET_CHARS: Final = 200
MAX_ID: Final = 2**53
_NOT_JSON: Final = object()

routes = web.RouteTableDef()


@endpoint(
    routes,
    "GET",
    "/api/ws",
    summary="The client WebSocket: chat, consultation events and notifications (auth by ticket in the first frame)",
    tags=["realtime"],
    status=101,
    errors=[400, 403],
)
async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """Check the Origin before upgrading, authenticate, then serve commands until the socket ends."""
    app = request.app
    settings = app[settings_key]
    origin = request.headers.get("Origin")
    if origin is None or origin not in settings.websocket_origins:
        log.warning("websocket refused before upgrade: origin not allowed (%s)", header_for_log(origin))
        raise Forbidden("this origin may not open the socket", code="origin_not_allowed")
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, compress=False, heartbeat=HEARTBEAT_SECONDS, autoping=True)
    if not ws.can_prepare(request).ok:
        raise InvalidInput("this endpoint only speaks WebSocket", code="websocket_upgrade_required")
    await ws.prepare(request)
    sockets = app[websockets_key]
    sockets.add(ws)
    connection: Connection | None = None
    try:
        await ws.send_str(messages.auth_required())
        principal = await _authenticate(ws, request)
        if principal is None:
            return ws
        hub = app[realtime_hub_key]
        transport = request.transport
        if transport is None:
            return ws
        candidate = Connection(
            ws,
            principal,
            hub,
            transport=transport,
            queue_limit=settings.ws_send_queue_frames,
            check_interval=settings.ws_session_check_seconds,
            messages_per_minute=settings.ws_messages_per_minute,
            message_burst=settings.ws_message_burst,
        )
        if not await hub.register(candidate):
            log.warning("websocket refused: %s has too many open sockets", principal.key)
            await ws.send_str(messages.auth_invalid("too many open connections for this user"))
            await ws.close(code=messages.CLOSE_TOO_MANY_CONNECTIONS, message=b"too many connections")
            return ws
        connection = candidate
        connection.start()
        connection.send(messages.auth_ok(principal))
        await _receive_loop(ws, connection, app[ws_commands_key])
    except ConnectionError:
        log.debug("websocket peer went away")
    finally:
        if connection is not None:
            await connection.cleanup()
        sockets.discard(ws)
        if not ws.closed:
            await ws.close()
    return ws


async def _authenticate(ws: web.WebSocketResponse, request: web.Request) -> Principal | None:
    """The auth phase: one ``auth`` frame with a valid ticket within the timeout, or close 4001."""
    ctx = request.app[context_key]
    try:
        msg = await ws.receive(timeout=ctx.settings.ws_auth_timeout_seconds)
    except TimeoutError:
        await _refuse(ws, "authentication timed out")
        return None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    ticket: Any = None
    if msg.type is WSMsgType.TEXT:
        try:
            payload = json.loads(msg.data)
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict) and payload.get("type") == messages.TYPE_AUTH:
            ticket = payload.get("ticket")
    if type(ticket) is not str or not 0 < len(ticket) <= MAX_TICKET_CHARS:
        await _refuse(ws, 'send {"type": "auth", "ticket": ...} first')
        return None
    try:
        return await auth_service.redeem_websocket_ticket(ctx, ticket)
    except Unauthorized:
        await _refuse(ws, "the connection ticket is not valid")
        return None
    except Unavailable:
        await ws.send_str(messages.auth_invalid("the service is unavailable; try again shortly"))
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"unavailable")
        return None


async def _refuse(ws: web.WebSocketResponse, reason: str) -> None:
    log.info("websocket authentication failed: %s", reason)
    await ws.send_str(messages.auth_invalid(reason))
    await ws.close(code=messages.CLOSE_AUTH, message=b"authentication failed")


async def _receive_loop(ws: web.WebSocketResponse, connection: Connection, registry: CommandRegistry) -> None:
    """Read frames until the socket ends; every bad frame gets an error reply and the loop goes on."""
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            await dispatch(connection, registry, msg.data)
        elif msg.type is WSMsgType.BINARY:
            wait = connection.take_token()
            if wait:
                connection.refuse_over_rate(None, wait)
            else:
                connection.send_error(None, messages.ERR_INVALID_FORMAT, "binary frames are not accepted; send JSON")
        else:  # CLOSE, CLOSING, CLOSED, or ERROR (e.g. a frame over 64 KiB: aiohttp closes with 1009)
            if msg.type is WSMsgType.ERROR:
                log.info("websocket %s closed on a protocol error: %s", connection.id, msg.data)
            return


async def dispatch(connection: Connection, registry: CommandRegistry, data: str) -> None:
    """Parse one request, check its envelope and the socket's rate limit, and run its command."""
    wait = connection.take_token()  # every frame counts, well-formed or not (B8)
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        payload = _NOT_JSON
    msg_id: Any = payload.get("id") if type(payload) is dict else None
    valid_id = type(msg_id) is int and 0 < msg_id <= MAX_ID
    if wait:
        connection.refuse_over_rate(msg_id if valid_id else None, wait)
        return
    if payload is _NOT_JSON:
        connection.send_error(None, messages.ERR_INVALID_JSON, "the frame is not valid JSON")
        return
    if type(payload) is not dict:
        connection.send_error(None, messages.ERR_INVALID_FORMAT, "a frame must be a JSON object")
        return
    if not valid_id:
        connection.send_error(None, messages.ERR_INVALID_FORMAT, "id must be a positive integer")
        return
    if msg_id <= connection.last_id:
        connection.send_error(msg_id, messages.ERR_ID_REUSE, "ids must increase with every request")
        return
    connection.last_id = msg_id
    type_ = payload.get("type")
    if type_ != "ping":  # a keep-alive is not the user at work (A10)
        connection.last_activity_at = connection.loop_time()
    command = registry.get(type_) if type(type_) is str else None
    if command is None:
        connection.send_error(msg_id, messages.ERR_UNKNOWN_COMMAND, "unknown command type")
        return
    unknown = payload.keys() - command.fields
    if unknown:
        names = ", ".join(sorted(name[:40] for name in unknown)[:5])
        connection.send_error(msg_id, messages.ERR_INVALID_FORMAT, f"unknown field(s): {names}")
        return
    try:
        pending = command.handler(connection, payload)
        if pending is not None:
            await pending
    except Exception as exc:
        connection.handle_exception(msg_id, exc)
