"""A consultation changes hands: the doctor accepts or declines an offer, the patient cancels (R11)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Consultation,
)
from server.db.repositories import consultations as repo
from server.db.repositories import roster as roster_repo
from server.db.uow import UnitOfWork
from server.domain import consultation as rules
from server.domain import roster as roster_rules
from server.domain.errors import Conflict, NotFound
from server.services import audit
from server.services.consultations.assignment import assign_soon
from server.services.consultations.common import RESOURCE, announce, return_offer_txn, to_state
from server.services.consultations.views import ConsultationView, views_of
from server.services.context import ServiceContext
from server.services.identity import Principal
from server.services.roster import to_domain_shift

log = logging.getLogger(__name__)


async def _locked_for_doctor(session: AsyncSession, consultation_id: int, doctor_id: int) -> Consultation:
    consultation = await repo.get_consultation(session, consultation_id, for_update=True)
    if consultation is None or doctor_id not in (
        consultation.doctor_id,
        consultation.offered_to_id,
        *(consultation.skipped_doctor_ids or ()),
    ):
        raise NotFound("no such consultation")
    return consultation


async def accept_offer(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationView:
    """The doctor takes a consultation offered to them: offered -> active.

    Accepting again what one already holds returns it unchanged.

    Raises:
        NotFound: never offered to this doctor.
        Conflict: ``offer_expired`` (the deadline passed, or it went on to another doctor), or
            ``invalid_transition`` (cancelled, completed).
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    expired = False
    async with ctx.uow() as uow:
        session = uow.session
        urgent = await _accept_urgent_txn(ctx, uow, principal, consultation_id, now)
        if urgent is not None:
            await uow.commit()
            log.info("urgent consultation %s taken by doctor %s (R11.6)", consultation_id, doctor_id)
            return (await views_of(ctx, session, [urgent], principal, now))[0]
        consultation = await _locked_for_doctor(session, consultation_id, doctor_id)
        specialty = consultation.specialty
        if consultation.status == rules.Status.ACTIVE and consultation.doctor_id == doctor_id:
            return (await views_of(ctx, session, [consultation], principal, now))[0]
        state = to_state(consultation)
        if (
            state.status is rules.Status.OFFERED
            and state.offered_to_id == doctor_id
            and rules.offer_expired(state, now)
        ):
            # Too late: pass it on right away instead of waiting for the next cycle.
            await return_offer_txn(ctx, uow, consultation, doctor_id, skip=True, reason="offer_expired")
            await uow.commit()
            expired = True
        elif state.status is not rules.Status.OFFERED or state.offered_to_id != doctor_id:
            if state.status in (rules.Status.QUEUED, rules.Status.OFFERED, rules.Status.ACTIVE):
                raise Conflict(
                    f"the offer of consultation {consultation_id} has expired and went to another doctor",
                    code=rules.ERR_OFFER_EXPIRED,
                    details={"consultation_id": consultation_id},
                )
            rules.accept(state, doctor_id, now)  # raises the state machine's Conflict
        else:
            rules.accept(state, doctor_id, now)
            if not await repo.mark_accepted(session, consultation_id, doctor_id, now):
                raise Conflict("the offer changed meanwhile; reload", code="offer_changed")
            await audit.record_txn(
                ctx,
                session,
                principal,
                action="consultation.accept",
                resource_type=RESOURCE,
                resource_id=consultation_id,
                patient_id=consultation.insured_person_id,
            )
            fresh = await repo.refresh_consultation(session, consultation_id)
            assert fresh is not None
            announce(ctx, uow, fresh, rules.Status.ACTIVE.value, doctors=[doctor_id])
            await uow.commit()
            log.info("consultation %s accepted by doctor %s", consultation_id, doctor_id)
            return (await views_of(ctx, session, [fresh], principal, now))[0]
    if expired:
        await assign_soon(ctx, specialty)
        raise Conflict(
            f"the offer of consultation {consultation_id} has expired; it goes to the next doctor",
            code=rules.ERR_OFFER_EXPIRED,
            details={"consultation_id": consultation_id},
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def _accept_urgent_txn(
    ctx: ServiceContext, uow: UnitOfWork, principal: Principal, consultation_id: int, now: datetime
) -> Consultation | None:
    """An urgent request is offered to every on-duty doctor of the specialty at once; the first to accept wins (R11.6).

    Returns:
        The consultation now held by the caller, or ``None`` when it is not an urgent waiting request
        this doctor may take (the ordinary accept then decides).
    """
    session = uow.session
    consultation = await repo.get_consultation(session, consultation_id, for_update=True)
    if consultation is None or not consultation.urgent:
        return None
    if consultation.status not in (rules.Status.QUEUED, rules.Status.OFFERED):
        return None
    stored = await roster_repo.shifts_overlapping(session, now, now + timedelta(seconds=1))
    on_duty = roster_rules.on_duty([to_domain_shift(s) for s in stored], now, consultation.specialty)
    if principal.subject_id not in on_duty:
        return None
    previous = consultation.offered_to_id
    if not await repo.mark_urgent_accepted(session, consultation_id, principal.subject_id, now):
        return None
    await audit.record_txn(
        ctx,
        session,
        principal,
        action="consultation.accept.urgent",
        resource_type=RESOURCE,
        resource_id=consultation_id,
        patient_id=consultation.insured_person_id,
    )
    fresh = await repo.refresh_consultation(session, consultation_id)
    assert fresh is not None
    announce(ctx, uow, fresh, rules.Status.ACTIVE.value, doctors=[principal.subject_id, previous])
    return fresh


async def decline_offer(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationView:
    """The doctor passes on an offer: it goes back to the queue and to the next doctor; they are skipped.

    Raises:
        NotFound: never offered to this doctor.
        Conflict: not (or no longer) offered to this doctor.
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await _locked_for_doctor(session, consultation_id, doctor_id)
        specialty = consultation.specialty
        state = to_state(consultation)
        if state.status is rules.Status.OFFERED and state.offered_to_id != doctor_id:
            raise Conflict(
                f"consultation {consultation_id} is no longer offered to you",
                code=rules.ERR_NOT_OFFERED_TO_YOU,
                details={"consultation_id": consultation_id},
            )
        rules.decline(state, doctor_id)  # raises Conflict unless offered to this doctor
        await return_offer_txn(ctx, uow, consultation, doctor_id, skip=True, reason="declined")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.decline",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=consultation.insured_person_id,
        )
        await uow.commit()
    log.info("consultation %s declined by doctor %s", consultation_id, doctor_id)
    await assign_soon(ctx, specialty)
    async with ctx.uow() as uow:
        fresh = await repo.get_consultation(uow.session, consultation_id)
        assert fresh is not None
        return (await views_of(ctx, uow.session, [fresh], principal, now))[0]


async def cancel_consultation(
    ctx: ServiceContext, principal: Principal, consultation_id: int, reason: str | None = None
) -> ConsultationView:
    """The patient cancels their queued, offered or active consultation (nothing is counted, R11.3).

    Raises:
        NotFound: not the caller's consultation.
        Conflict: already completed or cancelled.
    """
    now = ctx.clock.now()
    text = rules.validate_cancel_reason(reason) if reason else "cancelled by the patient"
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.get_consultation(session, consultation_id, for_update=True)
        if consultation is None or consultation.insured_person_id != principal.subject_id:
            raise NotFound("no such consultation")
        specialty = consultation.specialty
        rules.cancel(to_state(consultation))  # raises Conflict when completed or cancelled
        doctors = [consultation.doctor_id, consultation.offered_to_id]
        if not await repo.mark_cancelled(session, consultation_id, principal.subject_id, now, text):
            raise Conflict("the consultation changed meanwhile; reload", code="consultation_changed")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.cancel",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=principal.subject_id,
        )
        fresh = await repo.refresh_consultation(session, consultation_id)
        assert fresh is not None
        announce(ctx, uow, fresh, rules.Status.CANCELLED.value, doctors=doctors, reason="cancelled_by_patient")
        await uow.commit()
        view = (await views_of(ctx, session, [fresh], principal, now))[0]
    log.info("consultation %s cancelled by the patient", consultation_id)
    await assign_soon(ctx, specialty)
    return view
