"""Alembic environment: the URL comes from the app settings; runs on the async engine."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from server.config import Settings
from server.db.base import UTCDateTime
from server.db.engine import is_sqlite, make_engine
from server.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    configured = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(configured) if configured else Settings().effective_database_url


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our UTC column type as the plain SQLAlchemy type it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=True,
        render_as_batch=is_sqlite(_url()),
    )


def run_migrations_offline() -> None:
    """Emit SQL without a database connection (``alembic upgrade head --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Run migrations on the app's async engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
        return
    engine = make_engine(_url())
    try:
        async with engine.connect() as async_connection:
            await async_connection.run_sync(_run_sync)
            await async_connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
