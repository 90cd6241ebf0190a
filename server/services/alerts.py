"""Duty alerts: what the dispatchers and admins on duty must see now, live (R11.2, R11.6-R11.8).

An alert is a row (the truth, listed at ``GET /api/dispatch/alerts``), a bus event on the duty
channel that the dispatchers' and admins' sockets receive, a WARNING log line and the
``telemed_duty_alerts_total{kind}`` metric. The notice "the duty team has been alerted" is only
ever shown once such a row exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import EVENT_DUTY_ALERT, duty_alerts_channel
from server.db.models import Consultation, DutyAlert, InsuredPerson
from server.db.repositories import clinical as repo
from server.db.uow import UnitOfWork
from server.domain.errors import Conflict, NotFound
from server.services import audit
from server.services.context import ServiceContext
from server.services.identity import ROLE_ADMIN, ROLE_DISPATCHER, Principal

log = logging.getLogger(__name__)

RESOURCE: Final = "duty_alert"
DUTY_TEAM: Final = (ROLE_DISPATCHER, ROLE_ADMIN)  # who receives duty alerts live (R11.7)


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the duty team sees it."""

    id: int
    kind: str
    reason: str | None
    consultation_id: int | None
    insured_person_id: int | None
    specialty: str | None
    details: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by_id: int | None


def alert_view(alert: DutyAlert) -> AlertView:
    """The row as shown."""
    return AlertView(
        id=alert.id,
        kind=alert.kind,
        reason=alert.reason,
        consultation_id=alert.consultation_id,
        insured_person_id=alert.insured_person_id,
        specialty=alert.specialty,
        details=dict(alert.details or {}),
        created_at=alert.created_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by_id=alert.acknowledged_by_id,
    )


def alert_event(alert: DutyAlert) -> dict[str, Any]:
    """The bus message for a new alert (JSON-ready)."""
    from server.services import field_access  # imports the consultation views, which import this module

    view = alert_view(alert)
    return {
        "type": EVENT_DUTY_ALERT,
        "alert": {
            "id": view.id,
            "kind": view.kind,
            "reason": view.reason,
            "consultation_id": view.consultation_id,
            "insured_person_id": view.insured_person_id,
            "specialty": view.specialty,
            # Dispatchers and admins both receive it: only what both may see (checklist C2).
            "details": field_access.project_for_all(DUTY_TEAM, view.details),
            "created_at": view.created_at.isoformat(),
        },
    }


async def raise_alert_txn(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    kind: str,
    reason: str | None = None,
    consultation: Consultation | None = None,
    person: InsuredPerson | None = None,
    specialty: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> DutyAlert | None:
    """Record an alert in the caller's transaction and publish it after commit.

    One open alert per kind and consultation: raising it again returns ``None``.
    """
    session = uow.session
    if consultation is not None and await repo.open_alert_for(session, kind, consultation.id) is not None:
        return None
    facts = dict(details or {})
    if person is not None:
        facts.setdefault("patient_name", person.full_name)
        facts.setdefault("phone", person.phone)
        facts.setdefault("city", person.city)
    alert = DutyAlert(
        kind=kind,
        reason=reason,
        consultation_id=consultation.id if consultation is not None else None,
        insured_person_id=person.id
        if person is not None
        else (consultation.insured_person_id if consultation else None),
        specialty=specialty or (consultation.specialty if consultation is not None else None),
        details=facts,
        created_at=now or ctx.clock.now(),
    )
    session.add(alert)
    await session.flush()
    message = alert_event(alert)

    async def publish() -> None:
        ctx.metrics.duty_alerts.labels(kind=kind).inc()
        log.warning(
            "duty alert %s: %s (consultation %s, %s, reason %s)",
            alert.id,
            kind,
            alert.consultation_id,
            alert.specialty,
            reason,
        )
        try:
            await ctx.bus.publish(duty_alerts_channel(), message)
        except Exception:
            log.warning("could not publish duty alert %s; the duty team sees it on reload", alert.id)

    uow.after_commit(publish)
    return alert


async def list_alerts(ctx: ServiceContext, principal: Principal, *, include_acknowledged: bool) -> list[AlertView]:
    """Alerts for the duty team, newest first; reading them is audited (they name patients)."""
    async with ctx.uow() as uow:
        rows = await repo.list_alerts(uow.session, include_acknowledged=include_acknowledged)
        views = [alert_view(r) for r in rows]
        for view in views:
            await _audit(ctx, uow.session, principal, "duty_alert.read", view)
        await uow.commit()
    return views


async def acknowledge(ctx: ServiceContext, principal: Principal, alert_id: int) -> AlertView:
    """A dispatcher or admin takes the alert; the second one gets 409.

    Raises:
        NotFound: no such alert.
        Conflict: ``already_acknowledged``.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        alert = await session.get(DutyAlert, alert_id)
        if alert is None:
            raise NotFound("no such alert")
        if not await repo.acknowledge_alert(session, alert_id, principal.subject_id, now):
            raise Conflict("the alert was already acknowledged", code="already_acknowledged")
        await session.refresh(alert)
        view = alert_view(alert)
        await _audit(ctx, session, principal, "duty_alert.acknowledge", view)
        await uow.commit()
    return view


async def _audit(
    ctx: ServiceContext, session: AsyncSession, principal: Principal, action: str, view: AlertView
) -> None:
    await audit.record_txn(
        ctx,
        session,
        principal,
        action=action,
        resource_type=RESOURCE,
        resource_id=view.id,
        patient_id=view.insured_person_id,
    )
