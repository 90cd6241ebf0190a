"""The assignment cycle: who is offered which queued consultation, lapsed offers and shift-end handover (R11).

Every state change is a conditional UPDATE in the repository (``WHERE status = ... AND
offered_to_id = ...``): a doctor, a patient and any number of server processes running the
assignment cycle can race on one consultation and exactly one of them wins. Offers to one
doctor are additionally serialised by locking the doctor's account row, so the per-doctor
limit of simultaneous consultations holds across processes.

Assignment rules implemented by ``run_assignment_cycle`` (each cycle, oldest request first):

1. An offer not accepted by its deadline goes back to the queue; the silent doctor is skipped
   for that consultation (never offered it again in this round).
2. An offer to a doctor who is no longer on duty for the specialty, or whose duty ends within
   ``offer_min_remaining_shift_minutes``, goes back to the queue (the doctor is not skipped).
3. Shift-end handover: an active consultation whose doctor is off duty for its specialty, and
   whose last shift of that specialty ended at least ``handover_grace_minutes`` ago (or who has
   no such shift at all), goes back to the queue with that doctor skipped; its chat stays with it.
   It keeps its request time, so it is first in line for the next doctor.
4. Each queued consultation is offered to ``assignment.choose_doctor``'s pick among the doctors
   on duty for its specialty now: least loaded (active + pending offers) under their own
   ``max_active_consultations``, not skipped, with more than the minimum of duty left.
5. When every doctor who could take a consultation has already been skipped, a new round starts
   (the skipped list is cleared, the most recently skipped doctor being last choice), so nobody
   waits forever while a doctor is on duty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from server.channels import (
    EVENT_ASSIGNMENT_NUDGE,
    EVENT_CONSULTATION_OFFERED,
    assignment_channel,
    user_channel,
)
from server.db.models import (
    Consultation,
)
from server.db.repositories import consultations as repo
from server.db.repositories import roster as roster_repo
from server.db.uow import UnitOfWork
from server.domain import assignment, escalation
from server.domain import consultation as rules
from server.domain import roster as roster_rules
from server.services import audit
from server.services import consultation_safety as safety
from server.services.consultations.common import (
    DEFAULT_MAX_ACTIVE,
    MAX_QUEUE_PER_CYCLE,
    RESOURCE,
    announce,
    return_offer_txn,
    to_state,
)
from server.services.context import ServiceContext
from server.services.roster import to_domain_shift

log = logging.getLogger(__name__)


async def assign_soon(ctx: ServiceContext, specialty: str) -> None:
    """After a change: serve the head of ``specialty``'s queue now, and nudge the full cycle off the request path.

    The request pays for at most one offer (the consultation first in line for this specialty, judged
    afresh inside its transaction), not for the whole queue: lapsed offers, hand-overs and every other
    queue are the background loop's, which the nudge wakes in every process at once (over the bus).
    Errors are only logged: the change itself has been committed, and the loop retries.
    """
    try:
        await serve_queue_head(ctx, specialty)
    except Exception:
        log.exception("serving the %s queue after a change failed; the background loop will retry", specialty)
    await nudge_assignment(ctx)


async def serve_queue_head(ctx: ServiceContext, specialty: str) -> int | None:
    """Offer the first queued consultation of ``specialty`` to the best doctor now, if anyone can take it.

    Returns:
        The doctor it was offered to, or ``None``.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        head = [c.id for c in await repo.queued_consultations(uow.session, limit=1, specialty=specialty)]
    if not head:
        return None
    return await _offer_one(ctx, head[0], await _shifts_around(ctx, now), now)


async def nudge_assignment(ctx: ServiceContext) -> None:
    """Wake the background assignment loop of every process (a lost nudge only waits for the next interval)."""
    try:
        await ctx.bus.publish(assignment_channel(), {"type": EVENT_ASSIGNMENT_NUDGE})
    except Exception:
        log.warning("could not nudge the assignment loop; it runs at its next interval")


async def run_assignment_cycle(ctx: ServiceContext) -> int:
    """One pass of the queue: return lapsed offers, hand over at shift end, offer queued consultations.

    Safe to run concurrently in several processes: each change is a conditional UPDATE, and
    offers to one doctor are serialised on the doctor's row, so nothing is offered twice and no
    doctor goes over their limit. Rows are first judged from one read; a transaction is opened
    only for those that need a change, and everything is checked again inside it.

    Returns:
        How many offers were made.
    """
    now = ctx.clock.now()
    shifts = await _shifts_around(ctx, now)
    await _return_lapsed_offers(ctx, now, shifts)
    await safety.disconnect_sweep(ctx, shifts, now)
    async with ctx.uow() as uow:
        rows = await repo.queued_consultations(uow.session, limit=MAX_QUEUE_PER_CYCLE)
        queued = [(c.id, c.specialty, safety.waiting_request(c)) for c in rows]
        on_duty_ids = {d for c in queued for d in roster_rules.on_duty(shifts, now, c[1])}
        accounts = await repo.doctors(uow.session, on_duty_ids)
        online = await safety.connected_ids(uow.session, now, accounts)
        max_active = {doctor_id: account.max_active_consultations for doctor_id, account in accounts.items()}
        loads = await repo.doctor_loads(uow.session, max_active)
    offers = 0
    for consultation_id, specialty, waiting in queued:
        candidates = _candidates(shifts, now, specialty, max_active, loads, online)
        plan = escalation.plan_offer(
            waiting, candidates, DEFAULT_MAX_ACTIVE, now, safety.policy(ctx), _min_remaining(ctx)
        )
        if plan.action is escalation.OfferAction.WAIT:
            continue  # nobody can take it now: no transaction needed
        if plan.action is escalation.OfferAction.END_ROUND:
            await _end_round(ctx, consultation_id, now)
            continue
        doctor_id = await _offer_one(ctx, consultation_id, shifts, now)
        if doctor_id is not None:
            loads[doctor_id] = loads.get(doctor_id, 0) + 1
            offers += 1
    await safety.check_escalations(ctx, [c[0] for c in queued], shifts, now)
    await safety.push_positions(ctx, float(ctx.settings.consultation_avg_minutes))
    return offers


async def _end_round(ctx: ServiceContext, consultation_id: int, now: datetime) -> None:
    """Everyone eligible passed on it: the round ends (no new offer before the pause) and it is audited (R11.7)."""
    async with ctx.uow() as uow:
        row = await repo.refresh_consultation(uow.session, consultation_id)
        if row is None or not await repo.mark_round_ended(uow.session, consultation_id, now):
            return
        await audit.record_txn(
            ctx,
            uow.session,
            safety.SYSTEM,
            action="consultation.round_ended",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=row.insured_person_id,
        )
        await uow.commit()


async def _shifts_around(ctx: ServiceContext, now: datetime) -> list[roster_rules.Shift]:
    """Shifts that matter for who is on duty now and when their duty (or last shift) ends."""
    grace = timedelta(minutes=ctx.settings.handover_grace_minutes)
    async with ctx.uow() as uow:
        stored = await roster_repo.shifts_overlapping(
            uow.session, now - grace - timedelta(days=1), now + timedelta(days=2)
        )
        return [to_domain_shift(s) for s in stored]


def _min_remaining(ctx: ServiceContext) -> timedelta:
    return timedelta(minutes=ctx.settings.offer_min_remaining_shift_minutes)


def _candidates(
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
    specialty: str,
    max_active: dict[int, int],
    loads: dict[int, int],
    online: frozenset[int],
) -> list[assignment.DoctorLoad]:
    """The active, connected doctors on duty for ``specialty`` now, with their loads and limits (R11.7)."""
    return [
        assignment.DoctorLoad(
            doctor_id=doctor_id,
            specialties=frozenset({specialty}),
            active_count=loads.get(doctor_id, 0),
            on_duty=True,
            shift_ends_at=roster_rules.duty_ends_at(shifts, doctor_id, now, specialty),
            max_active=max_active[doctor_id],
        )
        for doctor_id in roster_rules.on_duty(shifts, now, specialty)
        if doctor_id in max_active and doctor_id in online
    ]


async def _return_lapsed_offers(ctx: ServiceContext, now: datetime, shifts: list[roster_rules.Shift]) -> None:
    """Rules 1-2: lapsed offers (counted and audited, R11.7, R11.8) and offers to doctors leaving duty.

    An active consultation is never taken from its doctor at shift end (R11.8): they finish it,
    unless they hand it over; only a lost connection past the grace returns it (``disconnect_sweep``).
    """
    async with ctx.uow() as uow:
        due = [
            c.id
            for c in await repo.consultations_in(uow.session, (rules.Status.OFFERED,))
            if _due_action(ctx, c, now, shifts) is not None
        ]
    for consultation_id in due:
        async with ctx.uow() as uow:
            row = await repo.refresh_consultation(uow.session, consultation_id)
            if row is not None and await _return_offer_due_txn(ctx, uow, row, now, shifts):
                await uow.commit()


def _due_action(
    ctx: ServiceContext, row: Consultation, now: datetime, shifts: Sequence[roster_rules.Shift]
) -> str | None:
    """What the cycle must do with an offered consultation: rules 1-2, or ``None``."""
    if row.status == rules.Status.OFFERED and row.offered_to_id is not None:
        if rules.offer_expired(to_state(row), now):
            return "offer_expired"
        minutes = ctx.settings.offer_min_remaining_shift_minutes
        if roster_rules.shift_ending_within(shifts, row.offered_to_id, now, minutes, specialty=row.specialty):
            return "shift_ending"
    return None


async def _return_offer_due_txn(
    ctx: ServiceContext, uow: UnitOfWork, row: Consultation, now: datetime, shifts: list[roster_rules.Shift]
) -> bool:
    """Apply ``_due_action`` to a row read inside the transaction; ``False`` when nothing (or someone else) did."""
    action = _due_action(ctx, row, now, shifts)
    if row.offered_to_id is None or action is None:
        return False
    doctor_id = row.offered_to_id
    lapsed = action == "offer_expired"
    if not await return_offer_txn(ctx, uow, row, doctor_id, skip=lapsed, reason=action, lapsed=lapsed):
        return False
    await audit.record_txn(
        ctx,
        uow.session,
        safety.SYSTEM,
        action=f"consultation.offer_{'lapsed' if lapsed else 'withdrawn'}",
        resource_type=RESOURCE,
        resource_id=row.id,
        patient_id=row.insured_person_id,
    )
    return True


async def _offer_one(
    ctx: ServiceContext, consultation_id: int, shifts: list[roster_rules.Shift], now: datetime
) -> int | None:
    """Offer one queued consultation to the best doctor, judged afresh inside the transaction.

    Returns:
        The doctor it was offered to, or ``None`` when nobody can take it now (or another process moved it).
    """
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.refresh_consultation(session, consultation_id)
        if consultation is None or consultation.status != rules.Status.QUEUED:
            return None
        specialty = consultation.specialty
        accounts = await repo.doctors(session, roster_rules.on_duty(shifts, now, specialty))
        max_active = {doctor_id: account.max_active_consultations for doctor_id, account in accounts.items()}
        loads = await repo.doctor_loads(session, max_active)
        online = await safety.connected_ids(session, now, max_active)
        candidates = _candidates(shifts, now, specialty, max_active, loads, online)
        plan = escalation.plan_offer(
            safety.waiting_request(consultation),
            candidates,
            DEFAULT_MAX_ACTIVE,
            now,
            safety.policy(ctx),
            _min_remaining(ctx),
        )
        if plan.doctor_id is None:
            return None
        doctor_id, new_round = plan.doctor_id, plan.action is escalation.OfferAction.NEW_ROUND
        # Offers to one doctor are made one at a time: lock their row, then count their load again.
        account = await repo.lock_doctor(session, doctor_id)
        load = (await repo.doctor_loads(session, [doctor_id]))[doctor_id]
        if account is None or load >= (account.max_active_consultations or DEFAULT_MAX_ACTIVE):
            return None  # another process filled this doctor meanwhile; the next cycle tries again
        deadline = assignment.offer_deadline(now, timedelta(seconds=ctx.settings.offer_timeout_seconds))
        state = to_state(consultation)
        if new_round:
            state = rules.ConsultationState(id=state.id, status=state.status)
        rules.offer(state, doctor_id, now, deadline)
        if not await repo.mark_offered(
            session, consultation_id, doctor_id, deadline, skipped_doctor_ids=[] if new_round else None
        ):
            return None
        announce(ctx, uow, consultation, rules.Status.OFFERED.value)
        uow.publish(
            user_channel(f"staff:{doctor_id}"),
            {
                "type": EVENT_CONSULTATION_OFFERED,
                "consultation_id": consultation_id,
                "specialty": specialty,
                "channel": consultation.channel,
                "expires_at": deadline.isoformat(),
            },
        )
        await audit.record_txn(
            ctx,
            session,
            safety.SYSTEM,
            action="consultation.offer",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=consultation.insured_person_id,
        )
        await uow.commit()
    log.info("consultation %s offered to doctor %s until %s", consultation_id, doctor_id, deadline.isoformat())
    return doctor_id
