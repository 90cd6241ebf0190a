"""Clinical safety of consultations as use cases: nobody waits unseen, nothing is dropped (R11.6-R11.9).

The consultation use cases call these: the request (red flags, R11.6), the assignment cycle
(connected doctors only, offer rounds, escalation R11.7; disconnect grace R11.8), completion
(an emergency alerts the dispatchers), the views (the honest wait). Hand-overs and addenda are
use cases of their own. Every alert goes through ``alerts.raise_alert_txn``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import (
    EVENT_CONSULTATION_UPDATED,
    EVENT_QUEUE_CHANGED,
    consultation_channel,
    doctors_queue_channel,
    user_channel,
)
from server.db.models import (
    Consultation,
    ConsultationAddendum,
    ConsultationHandover,
    InsuredPerson,
    StaffAccount,
)
from server.db.repositories import clinical as clinical_repo
from server.db.repositories import consultations as repo
from server.db.repositories import roster as roster_repo
from server.db.uow import UnitOfWork
from server.domain import escalation as escalation_rules
from server.domain import handover as handover_rules
from server.domain import red_flags
from server.domain import roster as roster_rules
from server.domain import wait as wait_rules
from server.domain.assignment import DoctorLoad
from server.domain.consultation import ConsultationState, Status
from server.domain.errors import NotFound
from server.domain.record import new_addendum
from server.services import alerts, audit
from server.services.context import ServiceContext
from server.services.identity import Principal

log = logging.getLogger(__name__)

RESOURCE: Final = "consultation"
DEFAULT_MAX_ACTIVE: Final = 3
SYSTEM: Final = Principal("system", 0, "system", "-", datetime.max.replace(tzinfo=UTC))
EVENT_QUEUE_POSITION: Final = "queue.position"
EVENT_URGENT_REQUEST: Final = "consultation.urgent"


# ----------------------------------------------------------------------------- settings


def policy(ctx: ServiceContext) -> escalation_rules.EscalationPolicy:
    """The escalation bounds from the settings (R11.7)."""
    s = ctx.settings
    return escalation_rules.EscalationPolicy(
        max_lapses=s.escalation_max_lapses,
        max_wait=timedelta(minutes=s.escalation_max_wait_minutes),
        round_pause=timedelta(minutes=s.offer_round_pause_minutes),
    )


def min_remaining(ctx: ServiceContext) -> timedelta:
    """Duty that must remain for a doctor to be offered a new consultation."""
    return timedelta(minutes=ctx.settings.offer_min_remaining_shift_minutes)


def waiting_request(c: Consultation) -> escalation_rules.WaitingRequest:
    """The stored row as the escalation rules see it."""
    return escalation_rules.WaitingRequest(
        consultation_id=c.id,
        specialty=c.specialty,
        requested_at=c.requested_at,
        skipped_doctor_ids=frozenset(c.skipped_doctor_ids or ()),
        lapses=c.lapses or 0,
        round_ended_at=c.round_ended_at,
        escalated_at=c.escalated_at,
        urgent=bool(c.urgent),
    )


# ----------------------------------------------------------------------------- presence (R11.7, R11.8)


async def connected_ids(
    session: AsyncSession, now: datetime, doctor_ids: Iterable[int] | None = None
) -> frozenset[int]:
    """Doctors with a live socket in any server process."""
    return frozenset(await clinical_repo.connected_doctors(session, now, doctor_ids))


async def doctor_connected(ctx: ServiceContext, socket_id: str, doctor_id: int) -> None:
    """A doctor's socket authenticated: from now on they may be offered requests."""
    async with ctx.uow() as uow:
        await clinical_repo.connection_opened(uow.session, socket_id, doctor_id, ctx.clock.now())
        await uow.commit()


async def doctor_disconnected(ctx: ServiceContext, socket_id: str) -> None:
    """A doctor's socket ended; after the grace their active consultations are handed on (R11.8)."""
    async with ctx.uow() as uow:
        await clinical_repo.connection_closed(uow.session, socket_id, ctx.clock.now())
        await uow.commit()


async def renew_connections(ctx: ServiceContext, socket_ids: Iterable[str]) -> None:
    """This process still holds these doctors' sockets."""
    async with ctx.uow() as uow:
        await clinical_repo.connections_seen(uow.session, socket_ids, ctx.clock.now())
        await clinical_repo.prune_connections(uow.session, ctx.clock.now())
        await uow.commit()


# ----------------------------------------------------------------------------- candidates and the wait


def on_duty_loads(
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
    specialty: str,
    accounts: dict[int, StaffAccount],
    loads: dict[int, int],
) -> list[DoctorLoad]:
    """The active doctor accounts on duty for ``specialty`` now, with their loads and limits."""
    return [
        DoctorLoad(
            doctor_id=doctor_id,
            specialties=frozenset({specialty}),
            active_count=loads.get(doctor_id, 0),
            on_duty=True,
            shift_ends_at=roster_rules.duty_ends_at(shifts, doctor_id, now, specialty),
            max_active=accounts[doctor_id].max_active_consultations,
        )
        for doctor_id in roster_rules.on_duty(shifts, now, specialty)
        if doctor_id in accounts
    ]


async def capacity(
    ctx: ServiceContext,
    session: AsyncSession,
    specialty: str,
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
) -> list[wait_rules.DoctorCapacity]:
    """What the honest wait needs: every doctor of the specialty on duty now or starting within 12 h."""
    horizon = now + wait_rules.DEFAULT_HORIZON
    own = [s for s in shifts if s.specialty == specialty and s.ends_at > now and s.starts_at < horizon]
    ids = {s.doctor_id for s in own}
    accounts = await repo.doctors(session, ids)
    online = await connected_ids(session, now, ids)
    busy = await repo.busy_since(session, ids, now)
    result: list[wait_rules.DoctorCapacity] = []
    for shift in own:
        account = accounts.get(shift.doctor_id)
        if account is None:
            continue
        current = shift.covers(now)
        end = roster_rules.duty_ends_at(shifts, shift.doctor_id, now, specialty) if current else shift.ends_at
        result.append(
            wait_rules.DoctorCapacity(
                doctor_id=shift.doctor_id,
                limit=account.max_active_consultations or DEFAULT_MAX_ACTIVE,
                available_from=max(now, shift.starts_at),
                accepts_until=(end or shift.ends_at) - min_remaining(ctx),
                busy_since=tuple(busy.get(shift.doctor_id, ())) if current else (),
                connected=shift.doctor_id in online if current else True,
            )
        )
    return result


async def honest_wait(
    ctx: ServiceContext,
    session: AsyncSession,
    consultation: Consultation,
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
    mean_minutes: float,
) -> wait_rules.HonestWait:
    """The place and the honest wait of a waiting consultation (R11.7): minutes, or unknown."""
    position = await repo.waiting_ahead(session, consultation) + 1
    if consultation.status == Status.OFFERED:
        return wait_rules.HonestWait(position, 0, wait_rules.WaitBasis.OFFERED)
    still_queued_ahead = await repo.waiting_ahead(session, consultation, queued_only=True)
    estimate = wait_rules.estimate_honest_wait(
        still_queued_ahead + 1,
        await capacity(ctx, session, consultation.specialty, shifts, now),
        timedelta(minutes=mean_minutes),
        now,
    )
    return wait_rules.HonestWait(position, estimate.minutes, estimate.basis)


# ----------------------------------------------------------------------------- escalation (R11.7)


def _tell_patient(ctx: ServiceContext, uow: UnitOfWork, c: Consultation, reason: str, message: str) -> None:
    event = {
        "type": EVENT_CONSULTATION_UPDATED,
        "consultation_id": c.id,
        "status": c.status,
        "reason": reason,
        "notice": message,
    }
    uow.publish(consultation_channel(c.id), event)
    uow.publish(user_channel(f"insured:{c.insured_person_id}"), event)


async def escalate_txn(
    ctx: ServiceContext,
    uow: UnitOfWork,
    consultation: Consultation,
    reason: escalation_rules.EscalationReason,
    now: datetime,
    *,
    details: dict[str, Any] | None = None,
) -> bool:
    """Escalate a waiting request once: the duty team is alerted live, the patient told the truth (R11.7)."""
    session = uow.session
    if not await repo.mark_escalated(session, consultation.id, now, reason.value):
        return False
    person = await repo.get_person(session, consultation.insured_person_id)
    kind = "red_flag" if reason is escalation_rules.EscalationReason.URGENT else "escalation"
    if reason is escalation_rules.EscalationReason.DOCTOR_DISCONNECTED:
        kind = "doctor_disconnected"
    facts = {
        "complaints": consultation.complaints,
        "waiting_since": consultation.requested_at.isoformat(),
        "lapses": consultation.lapses or 0,
        "options": ["general_practice", "call_back"] if consultation.specialty != "general_practice" else ["call_back"],
        **(details or {}),
    }
    if consultation.urgent and consultation.red_flags:
        facts["red_flags"] = [code for code, yes in consultation.red_flags.items() if yes]
    await alerts.raise_alert_txn(
        ctx, uow, kind=kind, reason=reason.value, consultation=consultation, person=person, details=facts, now=now
    )
    await audit.record_txn(
        ctx,
        session,
        SYSTEM,
        action=f"consultation.escalate.{reason.value}",
        resource_type=RESOURCE,
        resource_id=consultation.id,
        patient_id=consultation.insured_person_id,
    )
    _tell_patient(ctx, uow, consultation, "escalated", escalation_rules.PATIENT_MESSAGES[reason])
    return True


async def check_escalations(
    ctx: ServiceContext,
    queued_ids: Iterable[int],
    shifts: Sequence[roster_rules.Shift],
    now: datetime,
) -> int:
    """Escalate every waiting request (of ``queued_ids``) that waits unseen (R11.7); returns how many."""
    escalated = 0
    for consultation_id in queued_ids:
        async with ctx.uow() as uow:
            session = uow.session
            fresh = await repo.refresh_consultation(session, consultation_id)
            if fresh is None or fresh.status not in (Status.QUEUED, Status.OFFERED) or fresh.escalated_at is not None:
                continue
            ids = roster_rules.on_duty(shifts, now, fresh.specialty)
            accounts = await repo.doctors(session, ids)
            loads = await repo.doctor_loads(session, accounts)
            doctors = on_duty_loads(shifts, now, fresh.specialty, accounts, loads)
            online = await connected_ids(session, now, accounts)
            reason = escalation_rules.escalation_due(
                waiting_request(fresh), doctors, online, DEFAULT_MAX_ACTIVE, now, policy(ctx), min_remaining(ctx)
            )
            if reason is None:
                continue
            if await escalate_txn(ctx, uow, fresh, reason, now):
                await uow.commit()
                escalated += 1
                log.warning("consultation %s escalated: %s", fresh.id, reason.value)
    return escalated


# ----------------------------------------------------------------------------- red flags (R11.6)


async def _shifts_now(session: AsyncSession, now: datetime) -> list[roster_rules.Shift]:
    """The shifts covering ``now``."""
    stored = await roster_repo.shifts_overlapping(session, now, now + timedelta(seconds=1))
    return [roster_rules.Shift(s.id, s.doctor_id, s.specialty, s.starts_at, s.ends_at) for s in stored]


async def urgent_request_txn(ctx: ServiceContext, uow: UnitOfWork, consultation: Consultation, now: datetime) -> None:
    """An urgent request: shown live to the dispatchers, offered to every connected on-duty doctor at once."""
    await escalate_txn(ctx, uow, consultation, escalation_rules.EscalationReason.URGENT, now)
    ids = roster_rules.on_duty(await _shifts_now(uow.session, now), now, consultation.specialty)
    for doctor_id in sorted(await connected_ids(uow.session, now, ids)):
        uow.publish(
            user_channel(f"staff:{doctor_id}"),
            {
                "type": EVENT_URGENT_REQUEST,
                "consultation_id": consultation.id,
                "specialty": consultation.specialty,
                "channel": consultation.channel,
                "red_flags": [code for code, yes in (consultation.red_flags or {}).items() if yes],
            },
        )


def red_flag_notice(flags: Sequence[str]) -> dict[str, Any]:
    """What the patient sees at once when any red flag is answered "yes" (R11.6)."""
    return {"flags": list(flags), **red_flags.emergency_instruction()}


# ----------------------------------------------------------------------------- emergency outcome


async def emergency_alert_txn(
    ctx: ServiceContext, uow: UnitOfWork, consultation: Consultation, person: InsuredPerson, notes: str, now: datetime
) -> None:
    """Completed with outcome emergency: an urgent item for the dispatchers at once, shown live."""
    doctor = await uow.session.get(StaffAccount, consultation.doctor_id) if consultation.doctor_id else None
    await alerts.raise_alert_txn(
        ctx,
        uow,
        kind="emergency",
        reason="outcome_emergency",
        consultation=consultation,
        person=person,
        details={
            "doctor_note": notes,
            "doctor_name": doctor.full_name if doctor else None,
            "icd10_code": consultation.icd10_code,
            "instruction": "call the patient now and make sure an ambulance (103/112) is on its way",
        },
        now=now,
    )


# ----------------------------------------------------------------------------- hand-over (R11.8)


@dataclass(frozen=True, slots=True)
class HandoverView:
    """One hand-over as the record shows it."""

    id: int
    kind: str
    from_doctor_id: int
    to_doctor_id: int | None
    note: str
    created_at: datetime


def handover_view(row: ConsultationHandover) -> HandoverView:
    """The row as shown."""
    return HandoverView(row.id, row.kind, row.from_doctor_id, row.to_doctor_id, row.note, row.created_at)


async def hand_over(
    ctx: ServiceContext,
    principal: Principal,
    consultation_id: int,
    *,
    to_doctor_id: int,
    note: str,
) -> HandoverView:
    """The treating doctor hands an active consultation to a colleague on duty, with a note (R11.8).

    Raises:
        NotFound: not the caller's consultation.
        Conflict: not active, to oneself, or the colleague is not on duty for it or not connected.
        InvalidInput: a meaningless note.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        c = await repo.get_consultation(session, consultation_id, for_update=True)
        if c is None or principal.subject_id not in (c.doctor_id, c.offered_to_id):
            raise NotFound("no such consultation")
        target = (await repo.doctors(session, [to_doctor_id])).get(to_doctor_id)
        shifts = await _shifts_now(session, now)
        online = await connected_ids(session, now, [to_doctor_id])
        _, text = handover_rules.validate_handover(
            ConsultationState(id=c.id, status=Status(c.status), doctor_id=c.doctor_id)
            if c.status == Status.ACTIVE
            else ConsultationState(id=c.id, status=Status.QUEUED),
            principal.subject_id,
            handover_rules.HandoverTarget(
                to_doctor_id,
                on_duty_for_specialty=to_doctor_id in roster_rules.on_duty(shifts, now, c.specialty),
                connected=to_doctor_id in online,
                active=target is not None,
            ),
            note,
        )
        if not await repo.mark_transferred(session, c.id, principal.subject_id, to_doctor_id):
            raise NotFound("no such consultation")
        row = ConsultationHandover(
            consultation_id=c.id,
            from_doctor_id=principal.subject_id,
            to_doctor_id=to_doctor_id,
            kind=handover_rules.HandoverKind.DOCTOR.value,
            note=text,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.handover",
            resource_type=RESOURCE,
            resource_id=c.id,
            patient_id=c.insured_person_id,
        )
        event = {"type": EVENT_CONSULTATION_UPDATED, "consultation_id": c.id, "status": "active", "reason": "handover"}
        for channel in (
            consultation_channel(c.id),
            user_channel(f"insured:{c.insured_person_id}"),
            user_channel(f"staff:{principal.subject_id}"),
            user_channel(f"staff:{to_doctor_id}"),
        ):
            uow.publish(channel, event)
        view = handover_view(row)
        await uow.commit()
    log.info("consultation %s handed over from doctor %s to %s", consultation_id, principal.subject_id, to_doctor_id)
    return view


async def disconnect_sweep(ctx: ServiceContext, shifts: Sequence[roster_rules.Shift], now: datetime) -> int:
    """Active consultations whose doctor is gone past the grace go back to the front of the queue (R11.8).

    When no other connected doctor of the specialty is on duty, the duty team is alerted as well.
    A doctor whose shift ended but who is still connected keeps the consultation to finish it.
    """
    grace = timedelta(seconds=ctx.settings.disconnect_grace_seconds)
    moved = 0
    async with ctx.uow() as uow:
        active = [
            (c.id, c.doctor_id)
            for c in await repo.consultations_in(uow.session, ("active",))
            if c.doctor_id is not None
        ]
        online = await connected_ids(uow.session, now, {doctor for _, doctor in active if doctor is not None})
    for consultation_id, doctor_id in active:
        if doctor_id is None or doctor_id in online:
            continue
        async with ctx.uow() as uow:
            session = uow.session
            row = await repo.refresh_consultation(session, consultation_id)
            if row is None or row.status != Status.ACTIVE or row.doctor_id != doctor_id:
                continue
            since = await clinical_repo.last_disconnect(session, doctor_id, now)
            others = await connected_ids(
                session, now, [d for d in roster_rules.on_duty(shifts, now, row.specialty) if d != doctor_id]
            )
            action = handover_rules.disconnect_action(False, since, now, bool(others), grace)
            if action is handover_rules.DisconnectAction.WAIT:
                continue
            skipped = [*(d for d in row.skipped_doctor_ids or [] if d != doctor_id), doctor_id]
            if not await repo.mark_handed_over(session, row.id, doctor_id, skipped):
                continue
            session.add(
                ConsultationHandover(
                    consultation_id=row.id,
                    from_doctor_id=doctor_id,
                    to_doctor_id=None,
                    kind=handover_rules.HandoverKind.DISCONNECT.value,
                    note=handover_rules.system_note(grace),
                    created_at=now,
                )
            )
            await audit.record_txn(
                ctx,
                session,
                SYSTEM,
                action="consultation.handover.disconnect",
                resource_type=RESOURCE,
                resource_id=row.id,
                patient_id=row.insured_person_id,
            )
            fresh = await repo.refresh_consultation(session, row.id)
            assert fresh is not None
            _tell_patient(
                ctx,
                uow,
                fresh,
                "doctor_disconnected",
                "Your doctor lost the connection. Your consultation is first in line for the next doctor; "
                "the chat stays.",
            )
            uow.publish(
                user_channel(f"staff:{doctor_id}"),
                {
                    "type": EVENT_CONSULTATION_UPDATED,
                    "consultation_id": row.id,
                    "status": "queued",
                    "reason": "doctor_disconnected",
                },
            )
            uow.publish(doctors_queue_channel(), {"type": EVENT_QUEUE_CHANGED, "specialty": row.specialty})
            if action is handover_rules.DisconnectAction.REQUEUE_AND_ESCALATE:
                await repo.clear_escalation(session, row.id)
                await escalate_txn(
                    ctx,
                    uow,
                    fresh,
                    escalation_rules.EscalationReason.DOCTOR_DISCONNECTED,
                    now,
                    details={"doctor_id": doctor_id},
                )
            await uow.commit()
            moved += 1
            log.warning("consultation %s back in the queue: doctor %s disconnected (%s)", row.id, doctor_id, action)
    return moved


# ----------------------------------------------------------------------------- addenda (R11.9)


@dataclass(frozen=True, slots=True)
class AddendumView:
    """A dated addendum to a completed record."""

    id: int
    author_id: int
    text: str
    created_at: datetime


def addendum_view(row: ConsultationAddendum) -> AddendumView:
    """The row as shown."""
    return AddendumView(row.id, row.author_id, row.text, row.created_at)


async def add_addendum(ctx: ServiceContext, principal: Principal, consultation_id: int, text: str) -> AddendumView:
    """The treating doctor adds a dated addendum to a completed consultation; the original stays (R11.9).

    Raises:
        NotFound: not the treating doctor's consultation.
        Conflict: ``record_not_final`` before completion.
        InvalidInput: empty or meaningless text.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        c = await repo.get_consultation(session, consultation_id)
        if c is None:
            raise NotFound("no such consultation")
        addendum = new_addendum(c.id, c.status, c.doctor_id, principal.subject_id, text, now)
        row = ConsultationAddendum(
            consultation_id=c.id, author_id=addendum.author_id, text=addendum.text, created_at=addendum.created_at
        )
        session.add(row)
        await session.flush()
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.addendum",
            resource_type=RESOURCE,
            resource_id=c.id,
            patient_id=c.insured_person_id,
        )
        event = {"type": EVENT_CONSULTATION_UPDATED, "consultation_id": c.id, "status": c.status, "reason": "addendum"}
        uow.publish(consultation_channel(c.id), event)
        uow.publish(user_channel(f"insured:{c.insured_person_id}"), event)
        view = addendum_view(row)
        await uow.commit()
    return view


async def addenda_for(session: AsyncSession, consultation_ids: Iterable[int]) -> dict[int, list[AddendumView]]:
    """Addenda of each consultation, oldest first."""
    rows = await clinical_repo.addenda_of(session, consultation_ids)
    return {cid: [addendum_view(r) for r in items] for cid, items in rows.items()}


# ----------------------------------------------------------------------------- queue positions pushed


_last_pushed: dict[int, tuple[int, int | None]] = {}
MAX_PUSHED: Final = 200


async def push_positions(ctx: ServiceContext, mean_minutes: float) -> int:
    """Tell every waiting patient whose place or wait changed: ``queue.position`` on their channel.

    Each process remembers what it last pushed; a patient may hear the same figures from two
    processes, never a stale one. Returns how many patients were told.
    """
    now = ctx.clock.now()
    told = 0
    async with ctx.uow() as uow:
        session = uow.session
        waiting = [c for c in await repo.consultations_in(session, ("queued", "offered"))][:MAX_PUSHED]
        if not waiting:
            _last_pushed.clear()
            return 0
        stored = await roster_repo.shifts_overlapping(session, now, now + wait_rules.DEFAULT_HORIZON)
        shifts = [roster_rules.Shift(s.id, s.doctor_id, s.specialty, s.starts_at, s.ends_at) for s in stored]
        messages: list[tuple[str, dict[str, Any]]] = []
        for c in waiting:
            estimate = await honest_wait(ctx, session, c, shifts, now, mean_minutes)
            figures = (estimate.position, estimate.minutes)
            if _last_pushed.get(c.id) == figures:
                continue
            _last_pushed[c.id] = figures
            messages.append(
                (
                    f"user:insured:{c.insured_person_id}",
                    {
                        "type": EVENT_QUEUE_POSITION,
                        "consultation_id": c.id,
                        "position": estimate.position,
                        "estimated_wait_minutes": estimate.minutes,
                        "wait_basis": estimate.basis.value,
                    },
                )
            )
        live = {c.id for c in waiting}
    for stale in [cid for cid in _last_pushed if cid not in live]:
        del _last_pushed[stale]
    for channel, message in messages:
        try:
            await ctx.bus.publish(channel, message)
            told += 1
        except Exception:
            log.warning("could not push a queue position; the patient sees it on reload")
    return told
