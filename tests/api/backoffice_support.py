"""The app with the back-office routes, for the API tests of the back office."""

from __future__ import annotations

import pytest
from aiohttp import web

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from tests.fakes import RecordingSender


@pytest.fixture
def app(settings: Settings, clock: FixedClock, sender: RecordingSender) -> web.Application:
    """The real application; the back-office routes are wired here until app.py lists them."""
    from server.api import admin_imports, admin_records, admin_staff

    def wire(app: web.Application) -> None:
        for module in (admin_records, admin_imports, admin_staff):
            app.router.add_routes(module.routes)

    return create_app(settings, clock=clock, code_sender=sender, extra_setup=[wire])
