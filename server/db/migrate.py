"""Run Alembic programmatically (``telemed migrate``, app start-up, tests)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from server.db.engine import is_sqlite, make_engine

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call on an up-to-date database."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Take the schema down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """``upgrade`` from async code (env.py runs its own event loop, so use a thread)."""
    await asyncio.to_thread(upgrade, database_url, revision)


async def wait_for_database(database_url: str, *, within_seconds: float) -> None:
    """Retry connecting until the database answers or ``within_seconds`` pass.

    In compose the migration job may start while PostgreSQL is still initialising ("the
    database system is starting up", connection refused); one failure must not end the job.
    The embedded SQLite file needs no wait.
    """
    if is_sqlite(database_url) or within_seconds <= 0:
        return
    engine = make_engine(database_url, pool_size=1)
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(within_seconds),
            wait=wait_exponential(multiplier=0.2, max=3),
            retry=retry_if_exception_type((OSError, OperationalError, InterfaceError, DBAPIError)),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "database not reachable yet (attempt %d): %s",
                state.attempt_number,
                state.outcome and state.outcome.exception(),
            ),
        ):
            with attempt:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
