"""Periodic background jobs owned by the app: one ``cleanup_ctx`` each, cancelled and awaited at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from server.keys import context_key
from server.services.context import ServiceContext

log = logging.getLogger(__name__)

Job = Callable[[ServiceContext], Awaitable[object]]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def periodic_job_ctx(name: str, job: Job, interval_of: Callable[[ServiceContext], float]) -> CleanupContext:
    """A cleanup context that runs ``job`` every ``interval_of(ctx)`` seconds (0 disables it).

    A failing run is logged and retried at the next interval, so one bad cycle never stops the loop.
    """

    async def _loop(ctx: ServiceContext, interval: float) -> None:
        while True:
            try:
                await job(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %s s", name, interval)
            await asyncio.sleep(interval)

    async def ctx_generator(app: web.Application) -> AsyncIterator[None]:
        ctx = app[context_key]
        interval = interval_of(ctx)
        task = asyncio.create_task(_loop(ctx, interval), name=name) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx_generator
