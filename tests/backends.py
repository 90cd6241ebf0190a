"""Test backends: a fresh database (SQLite file or PostgreSQL) and a private Redis prefix per test.

Set ``TELEMED_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) and
``TELEMED_TEST_REDIS_URL`` to run the suite against the real services; ``TELEMED_TEST_REQUIRE_REAL=1``
turns any test that would be skipped for want of them into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server.config import normalize_database_url
from server.db.migrate import upgrade

POSTGRES_URL = os.environ.get("TELEMED_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("TELEMED_TEST_REDIS_URL", "")
REQUIRE_REAL = os.environ.get("TELEMED_TEST_REQUIRE_REAL", "") == "1"


def require_real_services(what: str) -> None:
    """Skip (visibly) in the embedded run; fail when the real run is required to have it."""
    if REQUIRE_REAL:
        pytest.fail(f"{what} is required in this run but not configured")
    pytest.skip(f"needs {what}: set TELEMED_TEST_POSTGRES_URL / TELEMED_TEST_REDIS_URL (CI's real run does)")


def _with_database(url: str, database: str) -> str:
    base, _, _ = normalize_database_url(url).rpartition("/")
    return f"{base}/{database}"


async def _admin_execute(statement: str) -> None:
    engine = create_async_engine(normalize_database_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


class DatabaseFactory:
    """Makes one migrated template per session, then a cheap copy of it for each test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:10]
        self.is_postgres = bool(POSTGRES_URL)
        self._template: str | None = None
        self._created: list[str] = []

    @property
    def backend(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return "postgresql" if self.is_postgres else "sqlite"

    async def _ensure_template(self) -> str:
        if self._template is not None:
            return self._template
        if self.is_postgres:
            name = f"telemed_test_{self.run_id}_tpl"
            await _admin_execute(f'CREATE DATABASE "{name}"')
            self._created.append(name)
            await asyncio.to_thread(upgrade, _with_database(POSTGRES_URL, name))
            self._template = name
        else:
            path = self.workdir / "template.sqlite3"
            await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{path}")
            self._template = str(path)
        return self._template

    async def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database URL for one test: a copy of the migrated template, or empty."""
        template = await self._ensure_template() if migrated else None
        if self.is_postgres:
            name = f"telemed_test_{self.run_id}_{uuid.uuid4().hex[:8]}"
            suffix = f' TEMPLATE "{template}"' if template else ""
            await _admin_execute(f'CREATE DATABASE "{name}"{suffix}')
            self._created.append(name)
            return _with_database(POSTGRES_URL, name)
        path = self.workdir / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
        if template:
            shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"

    async def drop(self, url: str) -> None:
        """Drop one test database (PostgreSQL) or delete its file (SQLite)."""
        if self.is_postgres:
            name = url.rsplit("/", 1)[1]
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if name in self._created:
                self._created.remove(name)
        else:
            path = Path(url.split(":///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    async def drop_all(self) -> None:
        """Drop everything this session created."""
        for name in list(self._created):
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


async def delete_redis_prefix(prefix: str) -> None:
    """Remove every Redis key a test made under its private prefix."""
    if not REDIS_URL:
        return
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
