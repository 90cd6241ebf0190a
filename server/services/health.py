"""Readiness: whether this process can serve now (the database answers, the bus is usable)."""

from __future__ import annotations

import asyncio
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


async def readiness(engine: AsyncEngine, bus: Bus, *, limit_seconds: float = 2.0) -> Readiness:
    """Ping the database (``SELECT 1``) and the bus at once; a failure is reported, never raised.

    Each check gets ``limit_seconds``: a silent network path (no answer, no reset) makes that
    part ``unreachable`` instead of hanging the probe (issue 11, item 12).
    """
    database, bus_ok = await asyncio.gather(_database_ok(engine, limit_seconds), _bus_ok(bus, limit_seconds))
    checks = {"database": "ok" if database else "unreachable", "bus": "ok" if bus_ok else "unreachable"}
    if not bus_ok:
        log.warning("readiness: bus unreachable")
    return Readiness(checks=checks, database_backend=engine.dialect.name, bus_backend=bus.kind)


async def _database_ok(engine: AsyncEngine, limit_seconds: float) -> bool:
    try:
        async with asyncio.timeout(limit_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return False
    return True


async def _bus_ok(bus: Bus, limit_seconds: float) -> bool:
    try:
        async with asyncio.timeout(limit_seconds):
            return await bus.ping()
    except TimeoutError:
        return False
