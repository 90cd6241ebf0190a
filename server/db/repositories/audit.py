"""Appending to and verifying the hash-chained audit trail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditCheckpoint, AuditEvent

GENESIS_HASH: Final = "0" * 64
_CHAIN_LOCK_KEY: Final = 727_001  # pg_advisory_xact_lock key serialising appends to the chain


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON (everything but id and hashes)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "actor_role": event.actor_role,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "patient_id": event.patient_id,
        "result": event.result,
        "request_id": event.request_id,
    }


async def append_event_txn(session: AsyncSession, event: AuditEvent) -> AuditEvent:
    """Chain and add ``event`` inside the caller's transaction.

    The chain head is read under a transaction-scoped lock (PostgreSQL advisory lock; SQLite's
    BEGIN IMMEDIATE already serialises writers), so two processes cannot fork the chain.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    head = (await session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))).scalar()
    event.prev_hash = head or GENESIS_HASH
    event.hash = event_hash(event.prev_hash, _fields(event))
    session.add(event)
    await session.flush()
    return event


async def _events(session: AsyncSession, batch: int = 5000) -> AsyncIterator[AuditEvent]:
    last_id = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id


async def verify_chain(session: AsyncSession) -> int | None:
    """Recompute the chain; returns the id of the first broken row, or None when intact."""
    previous = GENESIS_HASH
    async for event in _events(session):
        if event.prev_hash != previous or event.hash != event_hash(previous, _fields(event)):
            return event.id
        previous = event.hash
    return None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking the audit trail against itself and its pinned heads (checklist D2).

    Attributes:
        ok: Nothing edited, removed or cut off.
        events: Rows in the chain now.
        checkpoints: Checkpoints compared.
        first_broken_id: The first row whose hash does not follow (an edit or a removal in the middle).
        problem: What is wrong, in words; ``None`` when intact.
        head_id: The newest row's id now.
        head_hash: The newest row's hash now.
    """

    ok: bool
    events: int
    checkpoints: int
    first_broken_id: int | None
    problem: str | None
    head_id: int | None
    head_hash: str | None


async def _head(session: AsyncSession) -> tuple[int, str] | None:
    row = (
        await session.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None


async def write_checkpoint_txn(session: AsyncSession, now: datetime) -> AuditCheckpoint | None:
    """Pin the chain's current head (last id, hash and row count) in ``audit_checkpoints``.

    The checkpoint table is append-only like the trail, and the caller also logs the head, so that
    deleting the newest rows (which leaves an intact but shorter chain) is found by ``verify_report``.
    Nothing is written when the head has not moved since the last checkpoint.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    head = await _head(session)
    if head is None:
        return None
    last = (
        await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
    ).scalar_one_or_none()
    if last is not None and last.last_event_id == head[0] and last.last_hash == head[1]:
        return None
    count = int((await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one())
    checkpoint = AuditCheckpoint(last_event_id=head[0], last_hash=head[1], event_count=count, created_at=now)
    session.add(checkpoint)
    await session.flush()
    return checkpoint


async def verify_report(session: AsyncSession) -> ChainReport:
    """Recompute the chain and compare it with every checkpoint: edits, deletions of the newest rows, truncation."""
    broken = await verify_chain(session)
    head = await _head(session)
    count = int((await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one())
    checkpoints = list((await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id))).scalars())

    def report(problem: str | None, first_broken: int | None = None) -> ChainReport:
        return ChainReport(
            ok=problem is None,
            events=count,
            checkpoints=len(checkpoints),
            first_broken_id=first_broken,
            problem=problem,
            head_id=head[0] if head else None,
            head_hash=head[1] if head else None,
        )

    if broken is not None:
        return report(f"row {broken} does not follow the chain: edited, or a row before it removed", broken)
    hashes: dict[int, str] = {}
    if checkpoints:
        ids = sorted({c.last_event_id for c in checkpoints})
        rows = await session.execute(select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id.in_(ids)))
        hashes = {int(i): str(h) for i, h in rows.all()}
    for checkpoint in checkpoints:
        if hashes.get(checkpoint.last_event_id) != checkpoint.last_hash:
            return report(
                f"row {checkpoint.last_event_id} pinned by checkpoint {checkpoint.id} "
                f"({checkpoint.event_count} rows at {checkpoint.created_at.isoformat()}) is missing or changed: "
                "the newest rows were deleted or the trail truncated"
            )
        upto = int(
            (
                await session.execute(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= checkpoint.last_event_id)
                )
            ).scalar_one()
        )
        if upto != checkpoint.event_count:
            return report(
                f"checkpoint {checkpoint.id} counted {checkpoint.event_count} rows up to {checkpoint.last_event_id}, "
                f"now {upto}: rows were removed"
            )
    return report(None)
