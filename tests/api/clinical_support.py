"""The app with the clinical-safety routes, for their API tests (wired here until app.py lists them)."""

from __future__ import annotations

import pytest
from aiohttp import web

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from tests.fakes import RecordingSender


@pytest.fixture
def app(settings: Settings, clock: FixedClock, sender: RecordingSender) -> web.Application:
    """The real application with ``server.api.clinical`` routes (unless app.py already lists them)."""
    from server.api import clinical

    def wire(app: web.Application) -> None:
        known = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
        if ("GET", "/api/me/consents") not in known:
            app.router.add_routes(clinical.routes)

    return create_app(settings, clock=clock, code_sender=sender, extra_setup=[wire])
