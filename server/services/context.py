"""The dependencies every use case needs, built once by ``create_app`` (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bus import Bus
from server.clock import Clock
from server.config import Settings
from server.db.uow import UnitOfWork
from server.metrics import Metrics
from server.security.otp import CodeSender
from server.security.tokens import TokenService


@dataclass(slots=True)
class ServiceContext:
    """Ports and settings passed to use cases; tests build one with fakes where needed."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    bus: Bus
    clock: Clock
    tokens: TokenService
    code_sender: CodeSender
    metrics: Metrics

    def uow(self) -> UnitOfWork:
        """A new unit of work (one transaction)."""
        return UnitOfWork(self.session_factory, self.bus)
