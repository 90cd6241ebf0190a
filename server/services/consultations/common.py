"""What every consultation use case shares: the constants, the state as the domain sees it, the
announcement of a change on the bus and the return of an offer to the queue."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from server.channels import (
    EVENT_CONSULTATION_UPDATED,
    EVENT_QUEUE_CHANGED,
    consultation_channel,
    doctors_queue_channel,
    user_channel,
)
from server.db.models import (
    Consultation,
)
from server.db.repositories import consultations as repo
from server.db.uow import UnitOfWork
from server.domain import consultation as rules
from server.services.context import ServiceContext

log = logging.getLogger(__name__)

COMPONENT: Final = "telemedicine"
SERVICE_NAME: Final = "telemedicine_consultation"
EMERGENCY_PHONES: Final = ("103", "112")
RECENT_COMPLETED: Final = timedelta(days=7)
MAX_QUEUE_PER_CYCLE: Final = 500
DEFAULT_MAX_ACTIVE: Final = 3
RESOURCE: Final = "consultation"


def to_state(consultation: Consultation) -> rules.ConsultationState:
    """The stored row as the domain's state machine sees it."""
    offered = consultation.status == rules.Status.OFFERED
    return rules.ConsultationState(
        id=consultation.id,
        status=rules.Status(consultation.status),
        doctor_id=consultation.doctor_id,
        offered_to_id=consultation.offered_to_id if offered else None,
        offer_expires_at=consultation.offer_expires_at if offered else None,
        skipped_doctor_ids=frozenset(consultation.skipped_doctor_ids or ()),
    )


def announce(
    ctx: ServiceContext,
    uow: UnitOfWork,
    consultation: Consultation,
    status: str,
    *,
    doctors: Sequence[int | None] = (),
    reason: str | None = None,
    queue_changed: bool = True,
) -> None:
    """Tell the consultation's room, its patient, the doctors involved and the doctors' queue."""
    message: dict[str, Any] = {
        "type": EVENT_CONSULTATION_UPDATED,
        "consultation_id": consultation.id,
        "status": status,
    }
    if reason:
        message["reason"] = reason
    uow.publish(consultation_channel(consultation.id), message)
    uow.publish(user_channel(f"insured:{consultation.insured_person_id}"), message)
    for doctor_id in sorted({d for d in doctors if d is not None}):
        uow.publish(user_channel(f"staff:{doctor_id}"), message)
    if queue_changed:
        uow.publish(doctors_queue_channel(), {"type": EVENT_QUEUE_CHANGED, "specialty": consultation.specialty})
    uow.after_commit(ctx.metrics.consultations.labels(status=status).inc)


async def return_offer_txn(
    ctx: ServiceContext,
    uow: UnitOfWork,
    consultation: Consultation,
    doctor_id: int,
    *,
    skip: bool,
    reason: str,
    lapsed: bool = False,
) -> bool:
    """offered -> queued (conditional); with ``skip`` the doctor is not offered it again this round (R11.7).

    ``lapsed`` counts an unanswered offer towards escalation.
    """
    skipped = list(consultation.skipped_doctor_ids or [])
    if skip and doctor_id not in skipped:
        skipped.append(doctor_id)
    if not await repo.mark_offer_returned(uow.session, consultation.id, doctor_id, skipped, lapsed=lapsed):
        return False
    announce(ctx, uow, consultation, rules.Status.QUEUED.value, doctors=[doctor_id], reason=reason)
    return True
