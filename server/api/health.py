"""Operations routes: liveness, readiness (database and bus) and Prometheus metrics.

Where each is served depends on the environment (README "Production"): the public listener has
``/healthz`` and ``/readyz``; in production ``/readyz`` says only ready or not (no backend
names), and ``/metrics`` with the detailed readiness lives on the operations listener
(``TELEMED_METRICS_HOST:TELEMED_METRICS_PORT``, loopback by default), or on the public listener
behind ``TELEMED_METRICS_TOKEN``. In dev and test everything is on the one listener.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api.endpoints import endpoint
from server.domain.errors import Unauthorized
from server.keys import bus_key, engine_key, metrics_registry_key, ops_port_key, settings_key
from server.services import health

routes = web.RouteTableDef()
metrics_routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@endpoint(routes, "GET", "/healthz", summary="Liveness: the process is up", tags=["operations"])
async def healthz(request: web.Request) -> dict[str, str]:
    """Cheap; never touches the database."""
    return {"status": "ok"}


async def readiness(app: web.Application, *, detailed: bool) -> web.Response:
    """Database and bus reachable; ``detailed`` names the parts and their backends."""
    state = await health.readiness(
        app[engine_key], app[bus_key], limit_seconds=app[settings_key].readiness_timeout_seconds
    )
    body: dict[str, Any] = {"status": "ready" if state.ready else "not_ready"}
    if detailed:
        body.update(checks=state.checks, database_backend=state.database_backend, bus_backend=state.bus_backend)
    return web.json_response(body, status=200 if state.ready else 503)


@endpoint(routes, "GET", "/readyz", summary="Readiness: database and bus reachable", tags=["operations"], errors=[503])
async def readyz(request: web.Request) -> web.Response:
    """503 when the database or the bus is down; outside production the failing part is named."""
    detailed = request.app[settings_key].environment != "production"
    return await readiness(request.app, detailed=detailed)


def _metrics_response(app: web.Application) -> web.Response:
    payload = generate_latest(app[metrics_registry_key])
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


@endpoint(
    metrics_routes,
    "GET",
    "/metrics",
    summary="Prometheus metrics (Bearer TELEMED_METRICS_TOKEN when configured)",
    tags=["operations"],
    content_type="text/plain",
    errors=[401],
)
async def metrics(request: web.Request) -> web.Response:
    """Text exposition format of this process's registry."""
    token = request.app[settings_key].metrics_token.get_secret_value()
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("metrics need the metrics bearer token", code="unauthorized")
    return _metrics_response(request.app)


def make_ops_app(main: web.Application) -> web.Application:
    """The operations listener's app: metrics and detailed readiness of ``main``, nothing public."""

    async def ops_metrics(request: web.Request) -> web.Response:
        return _metrics_response(main)

    async def ops_readyz(request: web.Request) -> web.Response:
        return await readiness(main, detailed=True)

    async def ops_healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    ops = web.Application()
    ops.router.add_get("/metrics", ops_metrics)
    ops.router.add_get("/readyz", ops_readyz)
    ops.router.add_get("/healthz", ops_healthz)
    return ops


async def ops_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """Serve the operations app on its own address for the life of the main app."""
    listener = app[settings_key].metrics_listener
    if listener is None:
        yield
        return
    host, port = listener
    runner = web.AppRunner(make_ops_app(app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound socket, to report port 0's choice
    sockets = getattr(server, "sockets", None) or []
    app[ops_port_key] = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("metrics and detailed readiness on http://%s:%d", host, app[ops_port_key])
    try:
        yield
    finally:
        await runner.cleanup()
