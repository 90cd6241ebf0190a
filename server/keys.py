"""Typed application and request state: every AppKey and RequestKey in one place."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from server.bus import Bus
    from server.clock import Clock
    from server.config import Settings
    from server.metrics import Metrics
    from server.realtime.commands import CommandRegistry
    from server.realtime.hub import RealtimeHub
    from server.security.otp import CodeSender
    from server.security.tokens import TokenService
    from server.services.chat import ChatWriter
    from server.services.context import ServiceContext
    from server.services.identity import Principal

settings_key: web.AppKey[Settings] = web.AppKey("settings")
engine_key: web.AppKey[AsyncEngine] = web.AppKey("engine")
session_factory_key: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("session_factory")
bus_key: web.AppKey[Bus] = web.AppKey("bus")
clock_key: web.AppKey[Clock] = web.AppKey("clock")
tokens_key: web.AppKey[TokenService] = web.AppKey("tokens")
code_sender_key: web.AppKey[CodeSender] = web.AppKey("code_sender")
metrics_registry_key: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
websockets_key: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")
context_key: web.AppKey[ServiceContext] = web.AppKey("context")
chat_writer_key: web.AppKey[ChatWriter] = web.AppKey("chat_writer")
realtime_hub_key: web.AppKey[RealtimeHub] = web.AppKey("realtime_hub")
ws_commands_key: web.AppKey[CommandRegistry] = web.AppKey("ws_commands")
ops_port_key: web.AppKey[int] = web.AppKey("ops_port")

principal_key: web.RequestKey[Principal] = web.RequestKey("principal")
request_id_key: web.RequestKey[str] = web.RequestKey("request_id")
client_request_id_key: web.RequestKey[str] = web.RequestKey("client_request_id")
