"""Unit of work: one transaction per use case, rolled back unless ``commit()`` is called."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.domain.errors import Unavailable


class UnitOfWork:
    """An async context manager around one ``AsyncSession`` and its transaction.

    Events to publish on the bus are collected with ``after_commit`` and run only once the
    transaction has committed, so that nobody is told about data that was rolled back.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
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
