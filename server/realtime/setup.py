"""Wire the client WebSocket, the chat HTTP routes, the chat writer and the realtime hub into the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import chat_writer_key, context_key, realtime_hub_key, ws_commands_key
from server.realtime import handler
from server.realtime.commands import CommandRegistry, default_registry
from server.realtime.hub import RealtimeHub
from server.services.chat import ChatWriter


def command_registry(app: web.Application) -> CommandRegistry:
    """The app's WebSocket command registry (created with the built-in commands on first use).

    Other areas (WebRTC signalling, presence) register their commands here from their own setup.
    """
    if ws_commands_key not in app:
        app[ws_commands_key] = default_registry()
    return app[ws_commands_key]


def setup(app: web.Application) -> None:
    """Add ``GET /api/ws`` and the background chat writer and hub (the chat HTTP routes are the API's)."""
    command_registry(app)
    app.router.add_routes(handler.routes)
    app.cleanup_ctx.append(realtime_ctx)
    from server.realtime import calls  # WebRTC call signalling (signaling/), after the hub it relays through

    calls.setup(app)


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the chat writer and the hub: started after the service context, stopped before it."""
    ctx = app[context_key]
    writer = ChatWriter(ctx, batch_max=ctx.settings.chat_batch_max, lanes=ctx.settings.chat_writer_lanes)
    hub = RealtimeHub(ctx, writer)
    writer.start()
    hub.start()
    app[chat_writer_key] = writer
    app[realtime_hub_key] = hub
    try:
        yield
    finally:
        await hub.stop()
        await writer.stop()
