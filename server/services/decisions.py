"""The coverage decision trail: every decision (allowed or refused) is recorded through ``record_decision_txn``
with who, when and the rule reasons, so an auditor reads one table (R1-R11)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    CoverageDecisionRecord,
)
from server.domain.decisions import Reason
from server.domain.errors import DomainError, RuleViolation
from server.services.context import ServiceContext
from server.services.identity import Principal


def record_decision_txn(
    session: AsyncSession,
    *,
    person_id: int | None,
    kind: str,
    allowed: bool,
    reasons: Iterable[Reason] | Iterable[dict[str, Any]],
    subject: dict[str, Any],
    principal: Principal | None,
    now: datetime,
) -> CoverageDecisionRecord:
    """Add a coverage decision to the trail (who, when, why) inside the caller's transaction.

    Args:
        session: The open session.
        person_id: The insured person the decision is about.
        kind: What was decided (``letter_issue``, ``service_type_change``, ...).
        allowed: The verdict.
        reasons: The rule reasons behind it.
        subject: Ids and values the decision was about (JSON-ready).
        principal: Who decided; ``None`` for the system (demo seed, background work).
        now: When.

    Returns:
        The record (added, not yet flushed).
    """
    stored = [r.as_dict() if isinstance(r, Reason) else dict(r) for r in reasons]
    record = CoverageDecisionRecord(
        insured_person_id=person_id,
        kind=kind,
        allowed=allowed,
        reasons=stored,
        subject=subject,
        actor_type=principal.subject_type if principal else "system",
        actor_id=principal.subject_id if principal else None,
        created_at=now,
    )
    session.add(record)
    return record


async def record_refusal(
    ctx: ServiceContext,
    principal: Principal,
    *,
    person_id: int | None,
    kind: str,
    error: DomainError,
    subject: dict[str, Any],
) -> None:
    """Record a refused coverage decision in its own transaction (the refused action wrote nothing).

    Args:
        ctx: The service context.
        principal: Who asked.
        person_id: The person concerned.
        kind: What was refused.
        error: The rule violation with its reasons.
        subject: What was asked (JSON-ready).
    """
    async with ctx.uow() as uow:
        record_decision_txn(
            uow.session,
            person_id=person_id,
            kind=kind,
            allowed=False,
            reasons=error.reasons,
            subject=subject,
            principal=principal,
            now=ctx.clock.now(),
        )
        await uow.commit()


def rule_violation(
    rule: str, message: str, facts: dict[str, Any] | None = None, *, code: str | None = None
) -> RuleViolation:
    """A 422 refusal citing one rule."""
    reason = Reason(rule, message, facts or {})
    return RuleViolation(message, code=code, reasons=(reason,))


def reasons_json(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    """Reasons as stored and sent (JSON-ready; dates already strings in facts)."""
    return [r.as_dict() for r in reasons]
