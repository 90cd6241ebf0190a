"""Appending to and verifying the hash-chained audit trail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any, Final

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEvent

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
