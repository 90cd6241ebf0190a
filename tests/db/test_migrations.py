"""The schema is made only by Alembic: migrations and models agree, and downgrade works."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from server.db.engine import make_engine
from server.db.migrate import downgrade, upgrade
from server.db.models import Base
from tests.backends import DatabaseFactory


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_head_on_an_empty_database_gives_exactly_the_models_schema(
    database_factory: DatabaseFactory,
) -> None:
    """Autogenerate must find nothing to do: no table, column, index, type or constraint differs."""
    url = await database_factory.new_database(migrated=False)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                differences = await connection.run_sync(_differences)
                tables = await connection.run_sync(_tables)
        finally:
            await engine.dispose()
        assert differences == []
        assert tables == set(Base.metadata.tables)
    finally:
        await database_factory.drop(url)


async def test_downgrade_base_removes_everything_and_upgrade_again_works(database_factory: DatabaseFactory) -> None:
    url = await database_factory.new_database(migrated=False)
    try:
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(downgrade, url, "base")
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                assert await connection.run_sync(_tables) == set()
        finally:
            await engine.dispose()
        await asyncio.to_thread(upgrade, url)
    finally:
        await database_factory.drop(url)
