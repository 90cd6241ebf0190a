"""The call record of a consultation over HTTP (R11.1): channel, times, who ended it, step-downs, quality."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.api.endpoints import current_principal, endpoint, path_int
from server.keys import context_key
from server.services import calls
from server.services.identity import ROLE_DOCTOR, ROLE_INSURED

routes = web.RouteTableDef()


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}/calls",
    summary="The consultation's calls: channel, start, answer, end, duration, who ended it, step-downs, quality",
    tags=["calls"],
    roles=(ROLE_INSURED, ROLE_DOCTOR),
    errors=[404],
)
async def get_calls(request: web.Request) -> web.Response:
    """Participants only (others get 404); no media is ever recorded."""
    records: list[dict[str, Any]] = await calls.call_records(
        request.app[context_key], current_principal(request), path_int(request, "consultation_id")
    )
    return web.json_response({"calls": records})
