"""Shared fixtures: a fresh migrated database and bus per test, the app, a fixed clock, factories."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.db.engine import make_engine, make_session_factory
from server.keys import context_key
from server.services.context import ServiceContext
from tests.backends import REDIS_URL, DatabaseFactory, delete_redis_prefix
from tests.factories import Factories
from tests.fakes import RecordingSender

TEST_NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)  # a Wednesday, a business day in Russia
TEST_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> DatabaseFactory:
    """One per test session; copies of its migrated template are cheap."""
    return DatabaseFactory(tmp_path_factory.mktemp("databases"))


@pytest.fixture(scope="session", autouse=True)
def _drop_session_databases(database_factory: DatabaseFactory) -> object:
    yield
    if database_factory.is_postgres:
        import asyncio

        asyncio.run(database_factory.drop_all())


@pytest.fixture
async def database_url(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A fresh, migrated database for this test, dropped afterwards."""
    url = await database_factory.new_database()
    yield url
    await database_factory.drop(url)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A private Redis key/channel prefix for this test; its keys are deleted afterwards."""
    prefix = f"telemed-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    await delete_redis_prefix(prefix)


@pytest.fixture
def clock() -> FixedClock:
    """Time stands still at TEST_NOW until a test moves it."""
    return FixedClock(TEST_NOW)


@pytest.fixture
def sender() -> RecordingSender:
    """Captures one-time codes instead of sending SMS."""
    return RecordingSender()


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, redis_prefix: str) -> Settings:
    """Test settings: the per-test database, Redis when configured, a test JWT key.

    Production defaults otherwise; a test changes one with ``@pytest.mark.settings(name=value)``.
    """
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    defaults: dict[str, Any] = {
        "environment": "test",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "redis_prefix": redis_prefix,
        "jwt_secret": TEST_SECRET,
        "allowed_origins": ["http://127.0.0.1:8080", "http://testserver"],
        "log_json": False,
        # Background loops off: tests drive the assignment cycle and the roster check by hand.
        "assignment_interval_seconds": 0,
        "roster_check_interval_seconds": 0,
        "hr_freeze_interval_seconds": 0,
        "audit_checkpoint_interval_seconds": 0,
        "coverage_end_interval_seconds": 0,
    }
    return Settings(**{**defaults, **overrides})


@pytest.fixture
def app(settings: Settings, clock: FixedClock, sender: RecordingSender) -> web.Application:
    """The real application, wired by the real composition root."""
    return create_app(settings, clock=clock, code_sender=sender)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, app: web.Application) -> TestClient[web.Request, web.Application]:
    """An HTTP client bound to the running app."""
    return await aiohttp_client(app)


@pytest.fixture
def ctx(client: TestClient[web.Request, web.Application]) -> ServiceContext:
    """The running app's service context (for calling use cases directly)."""
    return client.app[context_key]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, for factories and direct checks."""
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test database."""
    return make_session_factory(engine)


@pytest.fixture
def factories(
    session_factory: async_sessionmaker[AsyncSession], clock: FixedClock, sender: RecordingSender
) -> Factories:
    """Builders of real coverage records and logged-in users."""
    return Factories(session_factory, clock, sender)


LoginAs = Callable[..., Awaitable[dict[str, str]]]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List refusals a route answered that its OpenAPI entry does not document (issue 11 item 4).

    ``TELEMED_TEST_STRICT_REFUSALS=1`` turns the list into a failure of the run.
    """
    import os

    from server.api.endpoints import UNDOCUMENTED_REFUSALS

    if not UNDOCUMENTED_REFUSALS:
        return
    terminalreporter.section("refusals missing from the OpenAPI document")
    for (method, path), statuses in sorted(UNDOCUMENTED_REFUSALS.items()):
        terminalreporter.write_line(f"{method} {path}: {sorted(statuses)}")
    if os.environ.get("TELEMED_TEST_STRICT_REFUSALS") == "1":
        terminalreporter.session.exitstatus = 1
