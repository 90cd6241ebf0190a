"""Audit of access to medical data (checklist D1): who, which patient, what, result, when, request id."""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEvent
from server.db.repositories.audit import append_event_txn
from server.request_context import request_id_var
from server.services.context import ServiceContext
from server.services.identity import Principal

RESULT_ALLOWED: Final = "allowed"
RESULT_DENIED: Final = "denied"


async def record_txn(
    ctx: ServiceContext,
    session: AsyncSession,
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: int | str,
    patient_id: int | None,
    result: str = RESULT_ALLOWED,
) -> None:
    """Append an audit event inside the caller's transaction (so it commits with the action)."""
    await append_event_txn(
        session,
        AuditEvent(
            occurred_at=ctx.clock.now(),
            actor=principal.key,
            actor_role=principal.role,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            patient_id=patient_id,
            result=result,
            request_id=request_id_var.get(),
        ),
    )


async def record(
    ctx: ServiceContext,
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: int | str,
    patient_id: int | None,
    result: str = RESULT_ALLOWED,
) -> None:
    """Append an audit event in its own transaction (reads, and denials that write nothing else)."""
    async with ctx.uow() as uow:
        await record_txn(
            ctx,
            uow.session,
            principal,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            patient_id=patient_id,
            result=result,
        )
        await uow.commit()
