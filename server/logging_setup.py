"""JSON logs with a request id (python-json-logger), and the middleware that sets the id."""

from __future__ import annotations

import logging
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pythonjsonlogger.json import JsonFormatter

from server.keys import client_request_id_key, metrics_key, request_id_key
from server.request_context import request_id_var

access_log = logging.getLogger("telemed.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def header_for_log(value: str | None, limit: int = 80) -> str:
    """A request header value fit for a log line: printable ASCII only, at most ``limit`` chars."""
    if value is None:
        return "(none)"
    cleaned = "".join(c if c.isascii() and c.isprintable() else "?" for c in value[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def utc_timestamp(created: float) -> str:
    """A log timestamp in UTC with its offset (checklist D6), whatever ``TZ`` the host has."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def redacted_exception(exc_info: Any) -> str:
    """A traceback with the frames (file, line, code) but no exception messages.

    Exception messages carry data: asyncpg's ``DETAIL: Failing row contains (..., 'HIV ...')``,
    ``invalid literal for int(): '...'``, a pydantic input. The frames and the exception types
    are enough to find the bug; the values stay out of the logs (checklist D3).
    """
    _, value, _ = exc_info
    parts: list[str] = []
    seen: set[int] = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        frames = "".join(traceback.format_tb(value.__traceback__))
        name = f"{type(value).__module__}.{type(value).__qualname__}"
        parts.append(f"Traceback (most recent call last):\n{frames}{name}: <message redacted>")
        value = value.__cause__ or (None if value.__suppress_context__ else value.__context__)
    return "\n\nwhile handling or caused by:\n".join(reversed(parts))


class UtcFormatter(logging.Formatter):
    """Plain-text lines with UTC timestamps; exception messages redacted when asked to."""

    def __init__(self, fmt: str, *, redact: bool) -> None:
        super().__init__(fmt)
        self.redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record.created)

    def formatException(self, ei: Any) -> str:
        return redacted_exception(ei) if self.redact else super().formatException(ei)


class UtcJsonFormatter(JsonFormatter):
    """JSON lines with UTC timestamps; exception messages redacted when asked to."""

    def __init__(self, fmt: str, *, redact: bool) -> None:
        super().__init__(fmt, timestamp=False)
        self.redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record.created)

    def formatException(self, ei: Any) -> str:
        return redacted_exception(ei) if self.redact else logging.Formatter.formatException(self, ei)


def configure_logging(level: str = "INFO", *, json_output: bool = True, redact_exceptions: bool = False) -> None:
    """Configure the root logger once: JSON lines on stderr, each with ``request_id``.

    Python warnings (Pillow's decompression-bomb warning, say) go through the same handler
    instead of raw to stderr. ``redact_exceptions`` (production) drops exception messages from
    tracebacks, since they can quote stored values.
    """
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if json_output:
        formatter = UtcJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", redact=redact_exceptions
        )
    else:
        formatter = UtcFormatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", redact=redact_exceptions
        )
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its parameters at DEBUG: never, whatever the level.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    logging.captureWarnings(True)


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
