"""Queries for consultations: the queue, doctors' loads, state transitions as conditional UPDATEs, write-back.

Every state change is an ``UPDATE ... WHERE id = :id AND status = :expected [AND doctor = :me]``
whose row count says whether this caller won: two server processes (or a doctor and the
assignment loop) racing on one consultation can never both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AttachmentLetter,
    Clinic,
    Consultation,
    InsuredEvent,
    InsuredPerson,
    Policy,
    Program,
    ServiceUsed,
    StaffAccount,
)

OPEN_STATUSES: Final = ("queued", "offered", "active")
WAITING_STATUSES: Final = ("queued", "offered")
TELEMEDICINE: Final = "telemedicine"


async def lock_insured_person(session: AsyncSession, person_id: int) -> InsuredPerson | None:
    """Lock the person's row so that two requests of one person are decided one after the other."""
    stmt = select(InsuredPerson).where(InsuredPerson.id == person_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def policy_and_program(session: AsyncSession, policy_id: int) -> tuple[Policy, Program] | None:
    """A policy with its program."""
    stmt = select(Policy, Program).join(Program, Program.id == Policy.program_id).where(Policy.id == policy_id)
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def open_consultation_of(session: AsyncSession, person_id: int) -> Consultation | None:
    """The person's consultation that is still queued, offered or active, if any."""
    stmt = (
        select(Consultation)
        .where(Consultation.insured_person_id == person_id, Consultation.status.in_(OPEN_STATUSES))
        .order_by(Consultation.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def telemedicine_used_between(session: AsyncSession, person_id: int, first: date, last: date) -> int:
    """Telemedicine services used by the person with ``first <= used_on <= last`` (R11.3).

    Args:
        session: The open session.
        person_id: The insured person.
        first: First day counted (e.g. 1 January).
        last: Last day counted (e.g. 31 December).

    Returns:
        The summed quantity.
    """
    stmt = select(func.coalesce(func.sum(ServiceUsed.quantity), 0)).where(
        ServiceUsed.insured_person_id == person_id,
        ServiceUsed.component == TELEMEDICINE,
        ServiceUsed.used_on >= first,
        ServiceUsed.used_on <= last,
    )
    return int((await session.execute(stmt)).scalar_one())


async def count_open_consultations(session: AsyncSession, person_id: int) -> int:
    """Consultations of the person not yet completed or cancelled (they will use the allowance)."""
    stmt = (
        select(func.count())
        .select_from(Consultation)
        .where(Consultation.insured_person_id == person_id, Consultation.status.in_(OPEN_STATUSES))
    )
    return int((await session.execute(stmt)).scalar_one())


async def get_consultation(
    session: AsyncSession, consultation_id: int, *, for_update: bool = False
) -> Consultation | None:
    """One consultation by id, optionally locked."""
    stmt = select(Consultation).where(Consultation.id == consultation_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def refresh_consultation(session: AsyncSession, consultation_id: int) -> Consultation | None:
    """Re-read a consultation after a conditional UPDATE (the identity map may hold stale values)."""
    stmt = select(Consultation).where(Consultation.id == consultation_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def queued_consultations(
    session: AsyncSession, *, limit: int = 500, specialty: str | None = None
) -> list[Consultation]:
    """Queued consultations in the order they are offered in: urgent ones first (R11.6), then oldest request.

    With ``specialty``, only that specialty's queue (its head is what a change serves at once).
    """
    stmt = (
        select(Consultation)
        .where(Consultation.status == "queued")
        .order_by(Consultation.urgent.desc(), Consultation.requested_at, Consultation.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    if specialty is not None:
        stmt = stmt.where(Consultation.specialty == specialty)
    return list((await session.execute(stmt)).scalars())


async def consultations_in(session: AsyncSession, statuses: Iterable[str]) -> list[Consultation]:
    """Every consultation in one of ``statuses`` (offered/active ones, for expiry and handover)."""
    stmt = (
        select(Consultation)
        .where(Consultation.status.in_(tuple(statuses)))
        .order_by(Consultation.requested_at, Consultation.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def doctor_loads(session: AsyncSession, doctor_ids: Iterable[int]) -> dict[int, int]:
    """How many consultations each doctor holds now: active ones plus pending offers.

    Offers count towards the load so that a doctor is never offered more than the limit
    allows even if they accept everything at once.
    """
    ids = sorted(set(doctor_ids))
    loads = dict.fromkeys(ids, 0)
    if not ids:
        return loads
    active = (
        select(Consultation.doctor_id, func.count())
        .where(Consultation.status == "active", Consultation.doctor_id.in_(ids))
        .group_by(Consultation.doctor_id)
    )
    offered = (
        select(Consultation.offered_to_id, func.count())
        .where(Consultation.status == "offered", Consultation.offered_to_id.in_(ids))
        .group_by(Consultation.offered_to_id)
    )
    for stmt in (active, offered):
        for doctor_id, count in (await session.execute(stmt)).all():
            if doctor_id is not None:
                loads[int(doctor_id)] += int(count)
    return loads


async def lock_doctor(session: AsyncSession, doctor_id: int) -> StaffAccount | None:
    """Lock a doctor's account row: offers to one doctor are made one at a time (load limit)."""
    stmt = select(StaffAccount).where(StaffAccount.id == doctor_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def doctors(session: AsyncSession, doctor_ids: Iterable[int]) -> dict[int, StaffAccount]:
    """Active doctor accounts keyed by id."""
    ids = sorted(set(doctor_ids))
    if not ids:
        return {}
    stmt = select(StaffAccount).where(
        StaffAccount.id.in_(ids), StaffAccount.role == "doctor", StaffAccount.is_active.is_(True)
    )
    return {doctor.id: doctor for doctor in (await session.execute(stmt)).scalars()}


async def waiting_counts(session: AsyncSession, specialties: Iterable[str] | None = None) -> dict[str, int]:
    """How many consultations wait (queued or offered) per specialty."""
    stmt = (
        select(Consultation.specialty, func.count())
        .where(Consultation.status.in_(WAITING_STATUSES))
        .group_by(Consultation.specialty)
    )
    if specialties is not None:
        stmt = stmt.where(Consultation.specialty.in_(tuple(specialties)))
    return {str(specialty): int(count) for specialty, count in (await session.execute(stmt)).all()}


async def waiting_ahead(session: AsyncSession, consultation: Consultation, *, queued_only: bool = False) -> int:
    """Waiting consultations of the same specialty ahead of this one (its place minus one).

    Urgent requests (R11.6) are ahead of every other; among equals the earlier request is ahead.
    With ``queued_only`` only those still waiting for an offer count (offered ones hold a slot).
    """
    same_lane = Consultation.urgent.is_(True) if consultation.urgent else Consultation.urgent.is_(False)
    earlier = or_(
        Consultation.urgent.is_(True) if not consultation.urgent else false(),
        and_(
            same_lane,
            or_(
                Consultation.requested_at < consultation.requested_at,
                and_(Consultation.requested_at == consultation.requested_at, Consultation.id < consultation.id),
            ),
        ),
    )
    stmt = (
        select(func.count())
        .select_from(Consultation)
        .where(
            Consultation.specialty == consultation.specialty,
            Consultation.status.in_(("queued",) if queued_only else WAITING_STATUSES),
            earlier,
        )
    )
    return int((await session.execute(stmt)).scalar_one())


async def recent_average_minutes(session: AsyncSession, specialty: str, *, sample: int = 50) -> float | None:
    """Mean minutes from acceptance to completion over the specialty's last ``sample`` consultations."""
    stmt = (
        select(Consultation.accepted_at, Consultation.completed_at)
        .where(
            Consultation.specialty == specialty,
            Consultation.status == "completed",
            Consultation.accepted_at.is_not(None),
        )
        .order_by(Consultation.completed_at.desc())
        .limit(sample)
    )
    durations = [
        (completed - accepted).total_seconds() / 60
        for accepted, completed in (await session.execute(stmt)).all()
        if accepted is not None and completed is not None
    ]
    return sum(durations) / len(durations) if durations else None


async def _conditional_update(
    session: AsyncSession, consultation_id: int, conditions: Sequence[ColumnElement[bool]], values: dict[str, Any]
) -> bool:
    stmt = (
        update(Consultation)
        .where(Consultation.id == consultation_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def mark_offered(
    session: AsyncSession,
    consultation_id: int,
    doctor_id: int,
    expires_at: datetime,
    *,
    skipped_doctor_ids: list[int] | None = None,
) -> bool:
    """queued -> offered to ``doctor_id`` until ``expires_at``; ``False`` if someone else moved it first.

    Args:
        session: The open session.
        consultation_id: The consultation.
        doctor_id: The doctor offered it.
        expires_at: The accept deadline.
        skipped_doctor_ids: A replacement skipped list (a new round of offers), or ``None`` to keep it.
    """
    values: dict[str, Any] = {"status": "offered", "offered_to_id": doctor_id, "offer_expires_at": expires_at}
    if skipped_doctor_ids is not None:
        values["skipped_doctor_ids"] = skipped_doctor_ids
        values["round_ended_at"] = None  # a new round of offers
    return await _conditional_update(session, consultation_id, [Consultation.status == "queued"], values)


async def mark_accepted(session: AsyncSession, consultation_id: int, doctor_id: int, now: datetime) -> bool:
    """offered (to this doctor, not expired) -> active with this doctor."""
    return await _conditional_update(
        session,
        consultation_id,
        [
            Consultation.status == "offered",
            Consultation.offered_to_id == doctor_id,
            Consultation.offer_expires_at > now,
        ],
        {
            "status": "active",
            "doctor_id": doctor_id,
            "offered_to_id": None,
            "offer_expires_at": None,
            "accepted_at": now,
        },
    )


async def mark_urgent_accepted(session: AsyncSession, consultation_id: int, doctor_id: int, now: datetime) -> bool:
    """An urgent request (R11.6), offered to every on-duty doctor at once, taken by the first who accepts.

    queued or offered (to anyone) -> active with this doctor; exactly one accepting doctor wins.
    """
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.urgent.is_(True), Consultation.status.in_(WAITING_STATUSES)],
        {
            "status": "active",
            "doctor_id": doctor_id,
            "offered_to_id": None,
            "offer_expires_at": None,
            "accepted_at": now,
        },
    )


async def mark_offer_returned(
    session: AsyncSession, consultation_id: int, doctor_id: int, skipped_doctor_ids: list[int], *, lapsed: bool = False
) -> bool:
    """offered (to this doctor) -> queued again, with the skipped list replaced (declined or expired).

    With ``lapsed`` the offer ran out unanswered, which counts towards escalation (R11.7).
    """
    values: dict[str, Any] = {
        "status": "queued",
        "offered_to_id": None,
        "offer_expires_at": None,
        "skipped_doctor_ids": skipped_doctor_ids,
    }
    if lapsed:
        values["lapses"] = Consultation.lapses + 1
    return await _conditional_update(
        session, consultation_id, [Consultation.status == "offered", Consultation.offered_to_id == doctor_id], values
    )


async def mark_round_ended(session: AsyncSession, consultation_id: int, now: datetime) -> bool:
    """Record that everyone eligible passed on a queued request this round (R11.7)."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status == "queued", Consultation.round_ended_at.is_(None)],
        {"round_ended_at": now},
    )


async def mark_escalated(session: AsyncSession, consultation_id: int, now: datetime, reason: str) -> bool:
    """Record the one escalation of a waiting request (R11.7); ``False`` if it was escalated already."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status.in_(OPEN_STATUSES), Consultation.escalated_at.is_(None)],
        {"escalated_at": now, "escalation_reason": reason},
    )


async def mark_handed_over(
    session: AsyncSession, consultation_id: int, doctor_id: int, skipped_doctor_ids: list[int]
) -> bool:
    """active (with this doctor) -> queued for another doctor; the chat stays with the consultation."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status == "active", Consultation.doctor_id == doctor_id],
        {"status": "queued", "doctor_id": None, "accepted_at": None, "skipped_doctor_ids": skipped_doctor_ids},
    )


async def mark_cancelled(
    session: AsyncSession, consultation_id: int, person_id: int, now: datetime, reason: str
) -> bool:
    """queued/offered/active (of this person) -> cancelled."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status.in_(OPEN_STATUSES), Consultation.insured_person_id == person_id],
        {
            "status": "cancelled",
            "offer_expires_at": None,  # offered_to_id is kept: that doctor's late accept is a 409, not a 404
            "cancelled_at": now,
            "cancel_reason": reason,
        },
    )


async def mark_completed(session: AsyncSession, consultation_id: int, doctor_id: int, values: dict[str, Any]) -> bool:
    """active (with this doctor) -> completed with the doctor's notes, code, outcome and route."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status == "active", Consultation.doctor_id == doctor_id],
        {"status": "completed", **values},
    )


async def consultations_of_person(session: AsyncSession, person_id: int, *, limit: int = 50) -> list[Consultation]:
    """The person's consultations, newest first."""
    stmt = (
        select(Consultation)
        .where(Consultation.insured_person_id == person_id)
        .order_by(Consultation.requested_at.desc(), Consultation.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def consultations_of_doctor(
    session: AsyncSession, doctor_id: int, *, completed_since: datetime, limit: int = 100
) -> list[Consultation]:
    """Offers to the doctor, their active consultations and those they completed since a date."""
    stmt = (
        select(Consultation)
        .where(
            or_(
                and_(Consultation.status == "offered", Consultation.offered_to_id == doctor_id),
                and_(Consultation.status == "active", Consultation.doctor_id == doctor_id),
                and_(
                    Consultation.status == "completed",
                    Consultation.doctor_id == doctor_id,
                    Consultation.completed_at >= completed_since,
                ),
            )
        )
        .order_by(Consultation.requested_at.desc(), Consultation.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def open_insured_events(session: AsyncSession, person_id: int) -> list[InsuredEvent]:
    """The person's open insured events (a consultation may belong to one of them, R11.3)."""
    stmt = (
        select(InsuredEvent)
        .where(InsuredEvent.insured_person_id == person_id, InsuredEvent.status == "open")
        .order_by(InsuredEvent.opened_at.desc(), InsuredEvent.id.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def icd10_codes_of_events(session: AsyncSession, event_ids: Sequence[int]) -> dict[int, list[str]]:
    """The ICD-10 codes of completed consultations linked to each event (the R11.5 suggestion)."""
    if not event_ids:
        return {}
    stmt = select(Consultation.insured_event_id, Consultation.icd10_code).where(
        Consultation.insured_event_id.in_(event_ids), Consultation.icd10_code.is_not(None)
    )
    codes: dict[int, list[str]] = {}
    for event_id, code in (await session.execute(stmt)).all():
        if event_id is not None and code:
            codes.setdefault(event_id, []).append(code)
    return codes


async def attachment_letters_of(session: AsyncSession, person_id: int) -> list[AttachmentLetter]:
    """The person's attachment letters (R7), to decide whether the attachment is in force (R7.4)."""
    stmt = (
        select(AttachmentLetter)
        .where(AttachmentLetter.insured_person_id == person_id)
        .order_by(AttachmentLetter.valid_from)
    )
    return list((await session.execute(stmt)).scalars())


async def service_used_for(session: AsyncSession, consultation_id: int) -> ServiceUsed | None:
    """The service-used row written back for a consultation, if any."""
    stmt = select(ServiceUsed).where(ServiceUsed.consultation_id == consultation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_clinic(session: AsyncSession, clinic_id: int) -> Clinic | None:
    """A clinic by id."""
    return await session.get(Clinic, clinic_id)


async def get_person(session: AsyncSession, person_id: int) -> InsuredPerson | None:
    """An insured person by id."""
    return await session.get(InsuredPerson, person_id)


async def staff_names(session: AsyncSession, staff_ids: Iterable[int]) -> dict[int, str]:
    """Full names of staff accounts keyed by id."""
    ids = sorted(set(staff_ids))
    if not ids:
        return {}
    stmt = select(StaffAccount.id, StaffAccount.full_name).where(StaffAccount.id.in_(ids))
    return {int(i): str(name) for i, name in (await session.execute(stmt)).all()}


async def person_names(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, str]:
    """Full names of insured persons keyed by id (what a doctor sees of their patients)."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    stmt = select(InsuredPerson.id, InsuredPerson.full_name).where(InsuredPerson.id.in_(ids))
    return {int(i): str(name) for i, name in (await session.execute(stmt)).all()}


async def busy_since(session: AsyncSession, doctor_ids: Iterable[int], now: datetime) -> dict[int, list[datetime]]:
    """For each doctor, when each slot they hold started: active ones at acceptance, offers in flight now."""
    ids = sorted(set(doctor_ids))
    result: dict[int, list[datetime]] = {i: [] for i in ids}
    if not ids:
        return result
    active = select(Consultation.doctor_id, Consultation.accepted_at).where(
        Consultation.status == "active", Consultation.doctor_id.in_(ids)
    )
    for doctor_id, accepted_at in (await session.execute(active)).all():
        if doctor_id is not None:
            result[int(doctor_id)].append(accepted_at or now)
    offered = select(Consultation.offered_to_id).where(
        Consultation.status == "offered", Consultation.offered_to_id.in_(ids)
    )
    for (doctor_id,) in (await session.execute(offered)).all():
        if doctor_id is not None:
            result[int(doctor_id)].append(now)
    return result


async def mark_transferred(session: AsyncSession, consultation_id: int, from_doctor_id: int, to_doctor_id: int) -> bool:
    """active with one doctor -> active with a colleague (a hand-over with a note, R11.8)."""
    return await _conditional_update(
        session,
        consultation_id,
        [Consultation.status == "active", Consultation.doctor_id == from_doctor_id],
        {"doctor_id": to_doctor_id},
    )


async def clear_escalation(session: AsyncSession, consultation_id: int) -> None:
    """Allow a new escalation: the consultation is waiting again for a new reason (its doctor vanished)."""
    await _conditional_update(session, consultation_id, [], {"escalated_at": None, "escalation_reason": None})
