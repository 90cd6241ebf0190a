"""The composition root: ``create_app(settings)`` wires engine, bus, services, routes and middlewares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web
from prometheus_client import CollectorRegistry

from server.api import admin as admin_routes
from server.api import admin_imports as admin_imports_routes
from server.api import admin_records as admin_records_routes
from server.api import admin_staff as admin_staff_routes
from server.api import auth as auth_routes
from server.api import calls as calls_routes
from server.api import chat as chat_routes
from server.api import clinical as clinical_routes
from server.api import consultations as consultation_routes
from server.api import coverage as coverage_routes
from server.api import coverage_end as coverage_end_job
from server.api import dispatch as dispatch_routes
from server.api import health as health_routes
from server.api import hr as hr_routes
from server.api import openapi as openapi_routes
from server.api import portal as portal_routes
from server.api import roster as roster_routes
from server.api.errors import error_middleware
from server.api.input_guard import input_guard_middleware
from server.api.proxies import proxy_middlewares
from server.bus import make_bus
from server.clock import Clock, SystemClock
from server.config import Settings
from server.db.engine import make_engine, make_session_factory
from server.keys import (
    bus_key,
    clock_key,
    code_sender_key,
    context_key,
    engine_key,
    metrics_key,
    metrics_registry_key,
    session_factory_key,
    settings_key,
    tokens_key,
    websockets_key,
)
from server.logging_setup import request_context_middleware
from server.metrics import make_metrics
from server.realtime import setup as realtime_setup
from server.security.code_queue import QueuedCodeSender
from server.security.otp import CodeSender
from server.security.sms import make_code_sender
from server.security.tokens import TokenService
from server.services.context import ServiceContext

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
MAX_REQUEST_BYTES = 8 * 1024 * 1024


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Headers every response carries: no sniffing, no framing, a strict CSP, no caching of API data."""
    response: web.StreamResponse = await handler(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    )
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    return response


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """No versions in ``Server`` (aiohttp and Python would announce theirs), WebSocket upgrades included."""
    response.headers["Server"] = "telemed"


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    code_sender: CodeSender | None = None,
    extra_setup: Iterable[Callable[[web.Application], None]] = (),
) -> web.Application:
    """Build the application; tests call this with their own settings, clock and sender."""
    settings = settings.with_dev_secret() if settings.environment != "production" else settings
    app = web.Application(
        # The proxy middleware first, so the request id, logs and limits all see the real client.
        middlewares=[
            *proxy_middlewares(settings.trusted_proxies),
            request_context_middleware,
            security_headers_middleware,
            error_middleware,
            input_guard_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app.on_response_prepare.append(hide_server_version)
    registry = CollectorRegistry()
    app[settings_key] = settings
    app[clock_key] = clock or SystemClock()
    app[code_sender_key] = code_sender or make_code_sender(settings)
    app[metrics_registry_key] = registry
    app[metrics_key] = make_metrics(registry)
    app[tokens_key] = TokenService(
        settings.jwt_secret.get_secret_value(), settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl
    )
    app[websockets_key] = weakref.WeakSet()
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(bus_ctx)
    app.cleanup_ctx.append(context_ctx)
    app.cleanup_ctx.append(health_routes.ops_listener_ctx)
    app.on_shutdown.append(close_websockets)
    app.on_cleanup.append(close_code_sender)

    setup_areas(app)
    if settings.metrics_on_public_listener:
        app.router.add_routes(health_routes.metrics_routes)
    for setup in extra_setup:
        setup(app)
    if WEB_ROOT.is_dir():
        setup_web(app)
    return app


def setup_areas(app: web.Application) -> None:
    """Wire every area, each imported by name (a missing module is an import error, not a silent skip).

    An area with background work has a ``setup(app)``; the others add their ``routes``. The order is
    the order routes are matched and documented.
    """
    for module in (
        health_routes,
        openapi_routes,
        auth_routes,
        coverage_routes,
        dispatch_routes,
        admin_routes,
        admin_records_routes,
        admin_imports_routes,
        admin_staff_routes,
        chat_routes,
        calls_routes,
        portal_routes,
    ):
        app.router.add_routes(module.routes)
    clinical_routes.setup(app)  # before consultations: /api/consultations/red-flags is not an id
    roster_routes.setup(app)
    consultation_routes.setup(app)
    hr_routes.setup(app)
    coverage_end_job.setup(app)
    realtime_setup.setup(app)


def setup_web(app: web.Application) -> None:
    """Serve the browser app (plain ES modules, no build step) from ``web/`` (see ``server.webapp``)."""
    from server import webapp

    webapp.setup(app, WEB_ROOT)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the engine: created at start-up, disposed at shutdown."""
    settings = app[settings_key]
    engine = make_engine(settings.effective_database_url, echo=settings.sql_echo)
    app[engine_key] = engine
    app[session_factory_key] = make_session_factory(engine)
    yield
    await engine.dispose()


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the bus connection and its listener task."""
    settings = app[settings_key]
    bus = make_bus(
        settings.effective_redis_url,
        settings.redis_prefix,
        timeout=settings.bus_timeout_seconds,
        heartbeat=settings.bus_heartbeat_seconds,
        silence=settings.bus_silence_seconds,
    )
    await bus.start()
    app[bus_key] = bus
    yield
    await bus.close()


async def context_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the service context once the engine and bus exist.

    Codes go out through the outbox queue (``QueuedCodeSender``): the login answers first, so its
    timing does not tell whether a code was sent (A9); queued codes are delivered before shutdown.
    """
    outbox = QueuedCodeSender(app[code_sender_key])
    outbox.start()
    app[context_key] = ServiceContext(
        settings=app[settings_key],
        session_factory=app[session_factory_key],
        bus=app[bus_key],
        clock=app[clock_key],
        tokens=app[tokens_key],
        code_sender=outbox,
        metrics=app[metrics_key],
    )
    yield
    await outbox.close()


async def close_code_sender(app: web.Application) -> None:
    """Close the SMS gateway's connection pool, if the sender has one."""
    close = getattr(app[code_sender_key], "close", None)
    if close is not None:
        await close()


async def close_websockets(app: web.Application) -> None:
    """Close every open client socket with GOING_AWAY so clients reconnect elsewhere."""
    open_sockets: weakref.WeakSet[web.WebSocketResponse] = app[websockets_key]
    sockets = list(open_sockets)
    if sockets:
        with contextlib.suppress(Exception):
            await asyncio.gather(
                *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
                return_exceptions=True,
            )
