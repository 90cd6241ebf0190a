"""The one mapping from exceptions to JSON error responses: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from server.domain.errors import DomainError, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error envelope used by every endpoint."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({k: v for k, v in extra.items() if v not in (None, [], {})})
    return {"error": error}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """A JSON error response."""
    response = web.json_response(error_body(code, message, **extra), status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="telemed"'
    return response


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"field": "a.b", "problem": "..."}]`` without echoing the input."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def domain_error_response(exc: DomainError) -> web.Response:
    """Map a domain error, keeping its rule ids and reasons visible to the caller."""
    response = error_response(
        exc.status,
        exc.code,
        exc.message,
        rules=list(exc.rules),
        reasons=[r.as_dict() for r in exc.reasons],
        details=exc.details,
    )
    retry_after = getattr(exc, "retry_after_seconds", None)
    if isinstance(exc, RateLimited) or retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every failure into the JSON envelope; unknown errors are logged, never echoed."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except DomainError as exc:
        return domain_error_response(exc)
    except ValidationError as exc:
        return error_response(422, "validation_error", "the request is not valid", details=validation_details(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 413 else "the request body is too large"
        response = error_response(exc.status, code, message)
        if "Allow" in exc.headers:  # RFC 9110 15.5.6: a 405 names the methods the resource has
            response.headers["Allow"] = exc.headers["Allow"]
        if exc.status == 429:
            response.headers["Retry-After"] = exc.headers.get("Retry-After", "60")
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
