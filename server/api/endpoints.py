"""The endpoint decorator: JSON parsing, pydantic validation, role checks and OpenAPI metadata.

Handlers declare what they accept and who may call them; this module does the rest, so that
every route parses, authorizes and reports errors the same way, and ``/api/openapi.json`` is
generated from the same declarations that run.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from server.api.errors import error_response, validation_details
from server.api.input_guard import parse_id, refuse
from server.domain.errors import DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from server.keys import context_key, principal_key
from server.services import audit, field_access
from server.services import auth as auth_service
from server.services.identity import Principal

log = logging.getLogger("telemed.auth")
ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[..., Awaitable[Any]]

MAX_JSON_BYTES = 256 * 1024


class ApiModel(BaseModel):
    """Base of request and response models: unknown fields in requests are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What the OpenAPI document says about one route."""

    method: str
    path: str
    summary: str
    tags: tuple[str, ...]
    roles: tuple[str, ...] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    errors: tuple[int, ...] = field(default=())
    content_type: str = "application/json"

    def error_statuses(self) -> frozenset[int]:
        """Every refusal status the OpenAPI document lists for this route (the one place it is decided).

        The declared ``errors`` (the business-rule refusals of schema-valid input: 404, 409, 422,
        429, 503 ...), plus 400/422 wherever there is input to validate and 401/403 wherever a role
        is needed. A refusal outside this set is recorded in ``UNDOCUMENTED_REFUSALS``.
        """
        statuses = set(self.errors)
        if self.body is not None or self.query is not None:
            statuses |= {400, 422}
        if "{" in self.path:
            statuses |= {400, 404}  # an id that is no id, or names nothing (of yours)
        if self.roles is not None:
            statuses |= {401, 403}
        if self.method in ("POST", "PUT", "PATCH") and self.body is not None:
            statuses.add(413)  # a body over the request size cap
        return frozenset(statuses)


UNDOCUMENTED_REFUSALS: dict[tuple[str, str], set[int]] = {}
"""Refusals a route answered that its OpenAPI entry does not list: (method, path) -> statuses.
Tests fail on any (tests/api/test_documented_refusals.py and the session check in conftest)."""


def endpoint(
    routes: web.RouteTableDef,
    method: str,
    path: str,
    *,
    summary: str,
    tags: Iterable[str] = (),
    roles: Iterable[str] | None = None,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    errors: Iterable[int] = (),
    content_type: str = "application/json",
) -> Callable[[Handler], Handler]:
    """Register a handler.

    Args:
        roles: Roles allowed to call; ``None`` makes the route public.
        body: Pydantic model of the JSON body, passed to the handler as ``body``.
        query: Pydantic model of the query string, passed as ``query``.
        response: Model (or type) of the JSON response; pydantic models returned by the
            handler are serialised by mode="json".
    """
    allowed = tuple(roles) if roles is not None else None
    spec = EndpointSpec(
        method=method.upper(),
        path=path,
        summary=summary,
        tags=tuple(tags),
        roles=allowed,
        body=body,
        query=query,
        response=response,
        status=status,
        errors=tuple(errors),
        content_type=content_type,
    )

    def decorator(func: Handler) -> Handler:
        @functools.wraps(func)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            kwargs: dict[str, Any] = {}
            if allowed is not None:
                principal = await _authenticate(request)
                if principal.role not in allowed:
                    await _audit_refusal(request, principal, spec)
                    raise Forbidden("your role may not do this", code="wrong_role")
                request[principal_key] = principal
            try:
                if body is not None:
                    kwargs["body"] = body.model_validate(await read_json(request))
                if query is not None:
                    kwargs["query"] = query.model_validate(dict(request.query))
            except ValidationError as exc:
                return error_response(
                    422, "validation_error", "the request is not valid", details=validation_details(exc)
                )
            # Validated values too: a query string's "99999999999999999999" only becomes an int here.
            refuse(kwargs)
            try:
                result = await func(request, **kwargs)
            except DomainError as exc:
                if exc.status not in spec.error_statuses():
                    UNDOCUMENTED_REFUSALS.setdefault((spec.method, spec.path), set()).add(exc.status)
                    log.warning("undocumented refusal %d on %s %s", exc.status, spec.method, spec.path)
                raise
            if isinstance(result, web.StreamResponse):
                return result
            if allowed is not None:
                # The one place the fields per role are applied (checklist C2), for every route.
                result = field_access.project(request[principal_key].role, result)
            return web.json_response(to_jsonable(result), status=status)

        wrapper.__endpoint_spec__ = spec  # type: ignore[attr-defined]
        routes.route(spec.method, path)(wrapper)
        return wrapper

    return decorator


async def _audit_refusal(request: web.Request, principal: Principal, spec: EndpointSpec) -> None:
    """A refused authorization is an audit event and a log line (checklist D5)."""
    log.info("auth.forbidden subject=%s route=%s %s", principal.key, spec.method, spec.path)
    await audit.record(
        request.app[context_key],
        principal,
        action="route.forbidden",
        resource_type="route",
        resource_id=f"{spec.method} {spec.path}"[:40],  # audit_events.resource_id is 40 characters
        patient_id=None,
        result=audit.RESULT_DENIED,
    )


async def _authenticate(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authentication required", code="unauthorized")
    return await auth_service.authenticate(request.app[context_key], token.strip())


async def read_json(request: web.Request) -> Any:
    """Read a JSON body with a size cap; malformed JSON is a 400 that says so.

    Every string and integer in it passes :func:`refuse` (NUL, surrogates, > 64-bit ints), so
    each route that reads JSON refuses them the same way on both backends.
    """
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=request.content_length)
    raw = await request.read()
    if len(raw) > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=len(raw))
    if not raw.strip():
        raise InvalidInput("a JSON body is required", code="malformed_json")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise InvalidInput("the body is nested too deeply", code="malformed_json") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    refuse(value)
    return value


def _refuse_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (RFC 8259) and no field of ours can hold them."""
    raise ValueError(f"{name} is not allowed")


_any_adapter: TypeAdapter[Any] = TypeAdapter(Any)


def to_jsonable(value: Any) -> Any:
    """Serialise pydantic models, dataclasses, dates and decimals for ``json_response``."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return _any_adapter.dump_python(value, mode="json")


def current_principal(request: web.Request) -> Principal:
    """The authenticated caller of a protected route."""
    return request[principal_key]


def path_int(request: web.Request, name: str) -> int:
    """A positive integer path parameter; anything else is a 404 (the thing cannot exist).

    Only ASCII digits count (``"²".isdigit()`` is true and ``int("٣")`` is 3, which once deleted
    shift 3), and at most 18 of them, so the id fits a ``bigint``.
    """
    value = parse_id(request.match_info.get(name, ""))
    if value is None:
        raise NotFound(f"no such {name.removesuffix('_id')}")
    return value
