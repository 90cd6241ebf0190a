"""Checking the audit trail end to end, and pinning its head so cutting it short is found (checklist D2).

``verify_chain`` alone finds an edited row, but deleting the newest rows leaves a shorter chain
that is still intact. A checkpoint pins the head (last id, its hash, the row count) in
``audit_checkpoints`` (append-only, its own trigger) and in the log, which the database user
cannot rewrite; ``verify`` compares the chain with every checkpoint.
"""

from __future__ import annotations

import logging

from server.db.repositories import audit as repo
from server.services.context import ServiceContext

log = logging.getLogger("telemed.audit")


async def checkpoint(ctx: ServiceContext) -> repo.ChainReport | None:
    """Pin the current head when it moved; the head also goes to the log (an external copy).

    Returns:
        ``None`` when nothing was pinned (empty trail or unchanged head).
    """
    async with ctx.uow() as uow:
        written = await repo.write_checkpoint_txn(uow.session, ctx.clock.now())
        await uow.commit()
    if written is None:
        return None
    log.info(
        "audit checkpoint %s: head id %s hash %s, %s rows",
        written.id,
        written.last_event_id,
        written.last_hash,
        written.event_count,
    )
    return await verify(ctx)


async def verify(ctx: ServiceContext) -> repo.ChainReport:
    """Recompute the whole chain and compare it with the checkpoints; a failure is logged as an ERROR."""
    async with ctx.uow() as uow:
        report = await repo.verify_report(uow.session)
    if not report.ok:
        log.error("audit trail check failed: %s", report.problem)
    return report
