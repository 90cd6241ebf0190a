"""Periodic background jobs owned by the app: one ``cleanup_ctx`` each, cancelled and awaited at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from server.bus import Subscription
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


def nudged_job_ctx(name: str, job: Job, interval_of: Callable[[ServiceContext], float], channel: str) -> CleanupContext:
    """Like :func:`periodic_job_ctx`, but a message on the bus ``channel`` runs the job at once.

    Any process may publish the nudge after a change; every process's loop wakes (over Redis when
    there are several). Nudges arriving while a run is going on are folded into one more run, so a
    burst of changes costs one cycle, not one each. 0 seconds disables the loop (and the nudges).
    """

    async def _loop(ctx: ServiceContext, interval: float, wake: asyncio.Event) -> None:
        while True:
            wake.clear()
            try:
                await job(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %s s or at the next nudge", name, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)

    async def _listen(subscription: Subscription, wake: asyncio.Event) -> None:
        async for _channel, _message in subscription:  # a nudge, or RESYNC after a reconnect: run now
            wake.set()

    async def ctx_generator(app: web.Application) -> AsyncIterator[None]:
        ctx = app[context_key]
        interval = interval_of(ctx)
        if interval <= 0:
            yield
            return
        wake = asyncio.Event()
        subscription = ctx.bus.subscribe([channel])
        tasks = [
            asyncio.create_task(_loop(ctx, interval, wake), name=name),
            asyncio.create_task(_listen(subscription, wake), name=f"{name}-nudges"),
        ]
        yield
        subscription.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx_generator
