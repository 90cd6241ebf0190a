"""JSON logs with a request id (python-json-logger), and the middleware that sets the id."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from typing import Any

from aiohttp import web
from pythonjsonlogger.json import JsonFormatter

from server.keys import client_request_id_key, metrics_key, request_id_key

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("telemed.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    """Configure the root logger once: JSON lines on stderr, each with ``request_id``."""
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", timestamp=False)
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Give each request the server's own id, log it (with the caller's id apart), count it in metrics.

    A client-chosen ``X-Request-Id`` never becomes the request's id (two requests could share
    one, or a client could make its lines look like another's); a sane one is logged as
    ``client_request_id`` so the caller's or the balancer's id still finds the line.
    """
    incoming = request.headers.get("X-Request-Id", "")
    client_request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() and incoming.isprintable() else ""
    request_id = uuid.uuid4().hex
    request[request_id_key] = request_id
    if client_request_id:
        request[client_request_id_key] = client_request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[metrics_key]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.request_seconds.labels(request.method, route).observe(elapsed)
        # The path only, never the query string: nothing secret may reach the logs (B3).
        access_log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            status,
            elapsed * 1000,
            extra={
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
                "remote": request.remote,
                "client_request_id": client_request_id or None,
            },
        )
        request_id_var.reset(token)
