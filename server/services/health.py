"""Readiness: whether this process can serve now (the database answers, the bus is usable)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.bus import Bus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """Each part's state (``ok`` or ``unreachable``) and which backends are in use."""

    checks: dict[str, str]
    database_backend: str
    bus_backend: str

    @property
    def ready(self) -> bool:
        """Whether every part is ok."""
        return all(value == "ok" for value in self.checks.values())


async def readiness(engine: AsyncEngine, bus: Bus) -> Readiness:
    """Ping the database (``SELECT 1``) and the bus; a failure is reported, never raised."""
    checks: dict[str, str] = {}
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    checks["bus"] = "ok" if await bus.ping() else "unreachable"
    if checks["bus"] != "ok":
        log.warning("readiness: bus unreachable")
    return Readiness(checks=checks, database_backend=engine.dialect.name, bus_backend=bus.kind)
