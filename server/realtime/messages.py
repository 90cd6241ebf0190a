"""Builders of the client WebSocket's frames (one envelope everywhere) and their wire constants."""

from __future__ import annotations

import json
from typing import Any, Final

from server.services.identity import Principal

TYPE_AUTH_REQUIRED: Final = "auth_required"
TYPE_AUTH: Final = "auth"
TYPE_AUTH_OK: Final = "auth_ok"
TYPE_AUTH_INVALID: Final = "auth_invalid"
TYPE_RESULT: Final = "result"
TYPE_EVENT: Final = "event"

ERR_INVALID_JSON: Final = "invalid_json"
ERR_INVALID_FORMAT: Final = "invalid_format"
ERR_UNKNOWN_COMMAND: Final = "unknown_command"
ERR_ID_REUSE: Final = "id_reuse"
ERR_NOT_FOUND: Final = "not_found"
ERR_NOT_SUBSCRIBED: Final = "not_subscribed"
ERR_TOO_MANY_PENDING: Final = "too_many_pending"
ERR_UNAVAILABLE: Final = "unavailable"
ERR_UNKNOWN_ERROR: Final = "unknown_error"
ERR_RATE_LIMITED: Final = "rate_limited"

CLOSE_AUTH: Final = 4001  # authentication failed, or the session ended (logout, revocation, expiry)
CLOSE_POLICY_VIOLATION: Final = 1008  # kept sending far over the rate limit (checklist B8)
CLOSE_IDLE: Final = 4002  # no frame from the user within the idle limit (A10); reconnect when back
CLOSE_SLOW_CONSUMER: Final = 4008  # the client did not read fast enough; reconnect and resume
CLOSE_TOO_MANY_CONNECTIONS: Final = 4029  # per-user socket cap (checklist B8)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(value: Any) -> str:
    """Compact JSON, as every frame is sent."""
    return _dumps(value)


def auth_required() -> str:
    """The first frame the server sends: authenticate with a ticket now."""
    return dumps({"type": TYPE_AUTH_REQUIRED})


def auth_ok(principal: Principal) -> str:
    """Authentication succeeded."""
    return dumps({"type": TYPE_AUTH_OK, "user": {"key": principal.key, "role": principal.role}})


def auth_invalid(message: str) -> str:
    """Authentication failed; the server closes with 4001 next."""
    return dumps({"type": TYPE_AUTH_INVALID, "message": message})


def result_message(msg_id: int | None, result: Any = None) -> str:
    """A successful reply to request ``msg_id``."""
    return dumps({"id": msg_id, "type": TYPE_RESULT, "success": True, "result": result})


def error_message(msg_id: int | None, code: str, message: str, **extra: Any) -> str:
    """A failed reply to request ``msg_id`` (None when the frame had no usable id)."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({key: value for key, value in extra.items() if value})
    return dumps({"id": msg_id, "type": TYPE_RESULT, "success": False, "error": error})


def event_message(subscription_id: int, event: dict[str, Any]) -> str:
    """A push for the subscription that ``subscription_id`` opened."""
    return dumps({"id": subscription_id, "type": TYPE_EVENT, "event": event})


def event_message_raw(subscription_id: int, event_json: str) -> str:
    """A push whose event is already JSON (a chat message serialised once for every socket)."""
    return f'{{"id":{subscription_id},"type":"event","event":{event_json}}}'
