"""Operations routes: liveness, readiness (database and bus) and Prometheus metrics."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.api.endpoints import endpoint
from server.keys import bus_key, engine_key, metrics_registry_key

routes = web.RouteTableDef()
log = logging.getLogger(__name__)


@endpoint(routes, "GET", "/healthz", summary="Liveness: the process is up", tags=["operations"])
async def healthz(request: web.Request) -> dict[str, str]:
    """Cheap; never touches the database."""
    return {"status": "ok"}


@endpoint(
    routes, "GET", "/readyz", summary="Readiness: database and bus reachable", tags=["operations"], errors=[503]
)
async def readyz(request: web.Request) -> web.Response:
    """503 with the failing part named when the database or the bus is down."""
    checks: dict[str, str] = {}
    engine = request.app[engine_key]
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    bus = request.app[bus_key]
    checks["bus"] = "ok" if await bus.ping() else "unreachable"
    ready = all(value == "ok" for value in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "database_backend": engine.dialect.name,
        "bus_backend": bus.kind,
    }
    return web.json_response(body, status=200 if ready else 503)


@endpoint(routes, "GET", "/metrics", summary="Prometheus metrics", tags=["operations"], content_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    """Text exposition format of this process's registry."""
    payload = generate_latest(request.app[metrics_registry_key])
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
