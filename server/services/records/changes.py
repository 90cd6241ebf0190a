"""Who changed which back-office record, when, how and from which file: the one place that writes it.

Each change is a ``record_changes`` row (field -> [old, new]); each operation also appends one row to
the hash-chained audit trail (checklist D1), so a bulk import costs one chained append, not one per person.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEvent, RecordChange
from server.db.repositories import records as records_repo
from server.db.repositories.audit import append_event_txn
from server.domain.insured_list import jsonable
from server.request_context import request_id_var
from server.services.context import ServiceContext
from server.services.identity import ROLE_ADMIN, Principal


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an admin's session (``staff:3``) or an operator at the command line (``cli:root``)."""

    key: str
    role: str = ROLE_ADMIN


def actor_of(principal: Principal) -> Actor:
    """The actor behind an authenticated request."""
    return Actor(key=principal.key, role=principal.role)


def cli_actor() -> Actor:
    """The operator running a ``telemed`` command (the OS account), recorded as the actor."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(key=f"cli:{user}"[:40])


def diff_json(changes: Mapping[str, tuple[object, object]]) -> dict[str, list[object]]:
    """``{"field": [old, new]}`` with dates as ISO strings."""
    return {name: [jsonable(old), jsonable(new)] for name, (old, new) in changes.items()}


def snapshot(obj: Any, fields: Sequence[str]) -> dict[str, list[object]]:
    """A created record as ``{"field": [None, value]}``."""
    return {name: [None, jsonable(getattr(obj, name))] for name in fields}


async def record_txn(
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    *,
    entity_type: str,
    entity_id: int,
    action: str,
    changes: Mapping[str, Any],
    person_id: int | None = None,
    batch_id: int | None = None,
) -> None:
    """One change, in the caller's transaction."""
    records_repo.add_change(
        session,
        RecordChange(
            occurred_at=now,
            actor=actor.key,
            entity_type=entity_type,
            entity_id=entity_id,
            insured_person_id=person_id,
            action=action,
            changes=dict(changes),
            import_batch_id=batch_id,
        ),
    )


async def record_many_txn(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Many changes at once (a list import): COPY on PostgreSQL, multi-row INSERTs elsewhere."""
    await records_repo.insert_changes(session, rows)


def change_row(
    actor: Actor,
    now: datetime,
    *,
    entity_type: str,
    entity_id: int,
    action: str,
    changes: Mapping[str, Any],
    person_id: int | None = None,
    batch_id: int | None = None,
) -> dict[str, Any]:
    """A ``record_changes`` row for ``record_many_txn``."""
    return {
        "occurred_at": now,
        "actor": actor.key,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "insured_person_id": person_id,
        "action": action,
        "changes": dict(changes),
        "import_batch_id": batch_id,
    }


async def audit_txn(
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    *,
    action: str,
    resource_type: str,
    resource_id: int | str,
    patient_id: int | None = None,
) -> None:
    """Append the operation to the hash-chained audit trail, in the caller's transaction."""
    await append_event_txn(
        session,
        AuditEvent(
            occurred_at=now,
            actor=actor.key,
            actor_role=actor.role,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            patient_id=patient_id,
            result="allowed",
            request_id=request_id_var.get(),
        ),
    )


@dataclass(frozen=True, slots=True)
class ChangeView:
    """One entry of a record's history."""

    id: int
    occurred_at: datetime
    actor: str
    entity_type: str
    entity_id: int
    action: str
    changes: dict[str, Any]
    import_batch_id: int | None
    file_name: str | None


async def person_history(ctx: ServiceContext, actor: Actor, person_id: int) -> list[ChangeView]:
    """Every change to an insured person, oldest first, with the file it came from (reading it is audited)."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        rows = await records_repo.person_changes(uow.session, person_id)
        await audit_txn(
            uow.session,
            actor,
            now,
            action="person.history.read",
            resource_type="insured_person",
            resource_id=person_id,
            patient_id=person_id,
        )
        await uow.commit()
    return [
        ChangeView(
            id=change.id,
            occurred_at=change.occurred_at,
            actor=change.actor,
            entity_type=change.entity_type,
            entity_id=change.entity_id,
            action=change.action,
            changes=change.changes,
            import_batch_id=change.import_batch_id,
            file_name=file_name,
        )
        for change, file_name in rows
    ]


async def staff_history(ctx: ServiceContext, account_id: int) -> list[ChangeView]:
    """Every change to a staff account, oldest first."""
    async with ctx.uow() as uow:
        rows = await records_repo.staff_changes(uow.session, account_id)
        return [
            ChangeView(
                id=c.id,
                occurred_at=c.occurred_at,
                actor=c.actor,
                entity_type=c.entity_type,
                entity_id=c.entity_id,
                action=c.action,
                changes=c.changes,
                import_batch_id=c.import_batch_id,
                file_name=None,
            )
            for c in rows
        ]
