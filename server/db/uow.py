"""Unit of work: one transaction per use case, rolled back unless ``commit()`` is called."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.domain.errors import Unavailable

if TYPE_CHECKING:
    from server.bus import Bus

log = logging.getLogger(__name__)


class UnitOfWork:
    """An async context manager around one ``AsyncSession`` and its transaction.

    Events to publish on the bus are collected with ``after_commit`` and run only once the
    transaction has committed, so that nobody is told about data that was rolled back.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], bus: Bus | None = None) -> None:
        self._session_factory = session_factory
        self._bus = bus
        self._after_commit: list[Callable[[], object]] = []
        self.session: AsyncSession

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self._after_commit = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
        if isinstance(exc, (OperationalError, ConnectionError, OSError)) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            raise Unavailable("the database is not reachable right now; nothing was saved") from exc

    async def commit(self) -> None:
        """Commit, then run the after-commit hooks (bus publications)."""
        await self.session.commit()
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` (sync or async) once the transaction commits; dropped on rollback."""
        self._after_commit.append(hook)

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Publish ``message`` on the bus once the transaction commits; dropped on rollback.

        A bus failure is logged, never raised: the commit already happened and the database is
        the truth (clients catch up from it), so the use case must not report an error.
        """
        bus = self._bus
        if bus is None:
            raise RuntimeError("this unit of work has no bus to publish on")

        async def hook() -> None:
            try:
                await bus.publish(channel, message)
            except Exception:
                log.warning(
                    "could not publish %s on %s; clients catch up from the database", message.get("type"), channel
                )

        self._after_commit.append(hook)
