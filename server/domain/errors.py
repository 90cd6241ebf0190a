"""Domain errors, defined once; mapped to HTTP in server/api/errors.py and to WebSocket frames in realtime."""

from __future__ import annotations

from typing import Any

from server.domain.decisions import Reason


class DomainError(Exception):
    """Base of every expected, user-facing failure.

    Attributes:
        code: A stable machine-readable string (``"not_covered"``).
        message: Human-readable explanation; never contains secrets or stack traces.
        reasons: Rule reasons when a rule refused (their ids appear in the error body).
        details: Extra JSON-ready facts.
    """

    code: str = "domain_error"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        reasons: tuple[Reason, ...] | list[Reason] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reasons = tuple(reasons)
        self.details = details or {}

    @property
    def rules(self) -> tuple[str, ...]:
        """Rule ids behind this error, if any."""
        return tuple(r.rule for r in self.reasons)


class InvalidInput(DomainError):
    """The request is well-formed JSON but its content is not acceptable."""

    code = "invalid_input"
    status = 400


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it exists."""

    code = "not_found"
    status = 404


class Forbidden(DomainError):
    """The caller is known but may not do this."""

    code = "forbidden"
    status = 403


class Unauthorized(DomainError):
    """No valid credentials; the message never says which part was wrong."""

    code = "unauthorized"
    status = 401


class RuleViolation(DomainError):
    """An insurer rule refuses the action; ``reasons`` name the rule ids."""

    code = "rule_violation"
    status = 422


class Conflict(DomainError):
    """The action conflicts with the current state (double submission, already done)."""

    code = "conflict"
    status = 409


class RateLimited(DomainError):
    """Too many attempts; try later (HTTP answers carry ``Retry-After: retry_after_seconds``)."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_seconds: int = 60, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_seconds = max(1, int(retry_after_seconds))


class Unavailable(DomainError):
    """A dependency (database, bus) is down: an explicit error, never silent loss."""

    code = "unavailable"
    status = 503
