"""Hostile-input checks at the edge, the same for every route and both database backends.

PostgreSQL refuses a NUL character in text (``invalid byte sequence for encoding "UTF8": 0x00``)
and a lone UTF-16 surrogate cannot be encoded at all, while SQLite stores both; integers wider
than 64 bits overflow a PostgreSQL ``bigint`` and are accepted by SQLite. Checking here, before
any handler runs, makes both backends answer the same 4xx and keeps such values out of the
database, the logs and the bus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.api.errors import error_response
from server.domain.errors import InvalidInput

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_ID_DIGITS = 18
"""Ids are ASCII digits only (``str.isdigit`` also accepts ``²`` and Arabic-Indic digits) and
at most 18 of them, so every id fits a PostgreSQL ``bigint``."""

_ASCII_ID = re.compile(r"[0-9]{1,18}")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def parse_id(raw: str) -> int | None:
    """An id from a path segment, or ``None`` if it is not 1-18 ASCII digits naming a positive id."""
    if _ASCII_ID.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if value >= 1 else None


def bad_character(text: str) -> str | None:
    """What is wrong with ``text`` for storage, or ``None``: a NUL or an unpaired surrogate."""
    match = _BAD_CHARACTER.search(text)
    if match is None:
        return None
    return "contains a NUL character" if match.group() == "\x00" else "contains an unpaired surrogate"


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(field, problem)`` for every string or integer in a JSON value that storage refuses."""
    if isinstance(value, str):
        problem = bad_character(value)
        if problem is not None:
            yield path or "(body)", problem
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            yield path or "(body)", "integer out of range"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            problem = bad_character(key_text)
            if problem is not None:
                yield f"{path}.(key)" if path else "(key)", problem
                continue
            yield from _walk(item, f"{path}.{key_text}" if path else key_text)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))


def problems(value: Any) -> list[dict[str, str]]:
    """Problems of a parsed body or validated model as ``[{"field", "problem"}]`` (never the value)."""
    return [{"field": field, "problem": problem} for field, problem in _walk(value, "")]


REFUSED_MESSAGE = (
    "the request holds a value that cannot be stored: a NUL character, an unpaired surrogate "
    "or an integer outside 64 bits"
)


def refuse(value: Any) -> None:
    """Raise the one 400 ``refused_input`` error if ``value`` holds anything storage refuses."""
    found = problems(value)
    if found:
        raise InvalidInput(REFUSED_MESSAGE, code="refused_input", details={"fields": found})


def refused_response(found: list[dict[str, str]]) -> web.Response:
    """The same error as :func:`refuse`, as a response (for the middleware)."""
    return error_response(400, "refused_input", REFUSED_MESSAGE, details={"fields": found})


@web.middleware
async def input_guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse a NUL or unpaired surrogate in any query parameter or path segment, for every route."""
    found: list[dict[str, str]] = []
    for key, value in request.query.items():
        key_problem = bad_character(key)
        if key_problem is not None:
            found.append({"field": "query.(key)", "problem": key_problem})
            continue
        problem = bad_character(value)
        if problem is not None:
            found.append({"field": f"query.{key}", "problem": problem})
    problem = bad_character(request.path)
    if problem is not None:
        found.append({"field": "path", "problem": problem})
    if found:
        return refused_response(found)
    response: web.StreamResponse = await handler(request)
    return response
