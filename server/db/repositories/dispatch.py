"""Dispatch queries: the console's queue, insured events, letters of guarantee, visits, program changes,
payments, attachment letters, pass photos and requests, the decision trail and race-free document numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from server.db.models import (
    AdditionalAgreement,
    AttachmentLetter,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    LetterOfGuarantee,
    PassPhoto,
    PassRequest,
    Payment,
    ProgramChangeApplication,
    ScheduledPayment,
    Visit,
)

# pg_advisory_xact_lock(key, year): one allocator per document kind and year at a time.
_NUMBER_LOCK_KEYS: Final = {"LG": 727_301, "AL": 727_302, "AA": 727_303}


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# ----------------------------------------------------------------------------- document numbers


async def next_document_seq_txn(
    session: AsyncSession, column: InstrumentedAttribute[str], prefix: str, year: int
) -> int:
    """The next free sequence number of ``PREFIX-YEAR-NNNNNN`` documents, held until the transaction ends.

    Two concurrent issues must never get the same number. PostgreSQL: a transaction-scoped
    advisory lock per (kind, year) serialises allocators until commit, so the second one reads the
    first one's committed number. SQLite: ``BEGIN IMMEDIATE`` already serialises writers. The
    unique constraint on ``number`` stays as the last line of defence.

    Args:
        session: The open session (inside the use case's transaction).
        column: The ``number`` column of the document table.
        prefix: ``LG`` (letter of guarantee), ``AL`` (attachment letter) or ``AA`` (additional agreement).
        year: Year of issue.

    Returns:
        The sequence number to format with ``server.domain.letters.format_number``.
    """
    if _is_postgres(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key, :year)"), {"key": _NUMBER_LOCK_KEYS[prefix], "year": year}
        )
    low, high = f"{prefix}-{year:04d}-000000", f"{prefix}-{year:04d}-999999"
    # A range (not LIKE) so that the unique index on ``number`` answers it under any collation.
    current = (await session.execute(select(func.max(column)).where(column >= low, column <= high))).scalar()
    return int(current[-6:]) + 1 if current else 1


# ----------------------------------------------------------------------------- requests (the queue)


async def requests_by_status(
    session: AsyncSession, statuses: Sequence[str], *, limit: int = 200
) -> list[DispatchRequest]:
    """Queue items in the given statuses, oldest first (both sources: insured and referrals).

    Args:
        session: The open session.
        statuses: E.g. ``["open"]``.
        limit: At most this many.

    Returns:
        The requests.
    """
    stmt = (
        select(DispatchRequest)
        .where(DispatchRequest.status.in_(list(statuses)))
        .order_by(DispatchRequest.created_at, DispatchRequest.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def get_request(session: AsyncSession, request_id: int, *, for_update: bool = False) -> DispatchRequest | None:
    """One queue item, optionally locked."""
    stmt = select(DispatchRequest).where(DispatchRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def take_request(session: AsyncSession, request_id: int, dispatcher_id: int) -> bool:
    """Assign an open request to a dispatcher; only one dispatcher wins a race.

    Args:
        session: The open session.
        request_id: The request.
        dispatcher_id: The staff account taking it.

    Returns:
        True when this call moved it from ``open`` to ``in_progress``.
    """
    result = await session.execute(
        update(DispatchRequest)
        .where(DispatchRequest.id == request_id, DispatchRequest.status == "open")
        .values(status="in_progress", assigned_dispatcher_id=dispatcher_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def requests_of_person(session: AsyncSession, person_id: int, *, limit: int = 50) -> list[DispatchRequest]:
    """A person's queue items, newest first."""
    stmt = (
        select(DispatchRequest)
        .where(DispatchRequest.insured_person_id == person_id)
        .order_by(DispatchRequest.created_at.desc(), DispatchRequest.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def unfinished_requests_of_event(session: AsyncSession, event_id: int) -> list[DispatchRequest]:
    """Open or in-progress requests linked to an insured event (finished when its letter is sent)."""
    stmt = select(DispatchRequest).where(
        DispatchRequest.insured_event_id == event_id, DispatchRequest.status.in_(["open", "in_progress"])
    )
    return list((await session.execute(stmt)).scalars())


# ----------------------------------------------------------------------------- insured events


async def get_event(session: AsyncSession, event_id: int, *, for_update: bool = False) -> InsuredEvent | None:
    """One insured event, optionally locked."""
    stmt = select(InsuredEvent).where(InsuredEvent.id == event_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def events_of_person(
    session: AsyncSession, person_id: int, *, statuses: Sequence[str] | None = None, limit: int = 100
) -> list[InsuredEvent]:
    """A person's insured events, newest first.

    Args:
        session: The open session.
        person_id: The person.
        statuses: Only these statuses (``None``: all).
        limit: At most this many.

    Returns:
        The events.
    """
    stmt = select(InsuredEvent).where(InsuredEvent.insured_person_id == person_id)
    if statuses is not None:
        stmt = stmt.where(InsuredEvent.status.in_(list(statuses)))
    stmt = stmt.order_by(InsuredEvent.opened_at.desc(), InsuredEvent.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


# ----------------------------------------------------------------------------- letters of guarantee


async def get_letter(session: AsyncSession, letter_id: int, *, for_update: bool = False) -> LetterOfGuarantee | None:
    """One letter of guarantee, optionally locked."""
    stmt = select(LetterOfGuarantee).where(LetterOfGuarantee.id == letter_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def letters_of_event(session: AsyncSession, event_id: int) -> list[LetterOfGuarantee]:
    """Every letter of one insured event (any status), oldest first."""
    stmt = (
        select(LetterOfGuarantee)
        .where(LetterOfGuarantee.insured_event_id == event_id)
        .order_by(LetterOfGuarantee.issued_on, LetterOfGuarantee.id)
    )
    return list((await session.execute(stmt)).scalars())


async def letters_of_open_events(session: AsyncSession, person_id: int) -> list[LetterOfGuarantee]:
    """The letters of a person's open insured events (the treatments still going on, R3.3).

    Args:
        session: The open session.
        person_id: The person.

    Returns:
        The letters (any status), oldest first; uses ``ix_letters_person_status`` and the events' index.
    """
    stmt = (
        select(LetterOfGuarantee)
        .join(InsuredEvent, InsuredEvent.id == LetterOfGuarantee.insured_event_id)
        .where(LetterOfGuarantee.insured_person_id == person_id, InsuredEvent.status == "open")
        .order_by(LetterOfGuarantee.issued_on, LetterOfGuarantee.id)
    )
    return list((await session.execute(stmt)).scalars())


async def letters_of_person(session: AsyncSession, person_id: int, *, limit: int = 100) -> list[LetterOfGuarantee]:
    """A person's letters of guarantee, newest first."""
    stmt = (
        select(LetterOfGuarantee)
        .where(LetterOfGuarantee.insured_person_id == person_id)
        .order_by(LetterOfGuarantee.issued_on.desc(), LetterOfGuarantee.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def active_letters_of_event(session: AsyncSession, event_id: int) -> list[LetterOfGuarantee]:
    """Active letters of an event (closed together with it)."""
    stmt = select(LetterOfGuarantee).where(
        LetterOfGuarantee.insured_event_id == event_id, LetterOfGuarantee.status == "active"
    )
    return list((await session.execute(stmt)).scalars())


# ----------------------------------------------------------------------------- visits


async def visits_of_person(
    session: AsyncSession, person_id: int, *, limit: int = 50
) -> list[tuple[Visit, LetterOfGuarantee | None]]:
    """A person's booked visits (R2.6) with their letters, latest appointment first."""
    stmt = (
        select(Visit, LetterOfGuarantee)
        .join(InsuredEvent, InsuredEvent.id == Visit.insured_event_id)
        .outerjoin(LetterOfGuarantee, LetterOfGuarantee.id == Visit.letter_id)
        .where(InsuredEvent.insured_person_id == person_id)
        .order_by(Visit.scheduled_at.desc(), Visit.id.desc())
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


# ----------------------------------------------------------------------------- decisions


async def decisions_of_person(
    session: AsyncSession, person_id: int, *, limit: int = 100
) -> list[CoverageDecisionRecord]:
    """The coverage decisions about a person (who, when, why), newest first."""
    stmt = (
        select(CoverageDecisionRecord)
        .where(CoverageDecisionRecord.insured_person_id == person_id)
        .order_by(CoverageDecisionRecord.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


# ----------------------------------------------------------------------------- program change (R4)


async def applications_of_person(session: AsyncSession, person_id: int) -> list[ProgramChangeApplication]:
    """A person's service type change applications, newest first."""
    stmt = (
        select(ProgramChangeApplication)
        .where(ProgramChangeApplication.insured_person_id == person_id)
        .order_by(ProgramChangeApplication.id.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def pending_application(session: AsyncSession, person_id: int) -> ProgramChangeApplication | None:
    """The application in flight for a person (``pending_key`` set), if any."""
    stmt = select(ProgramChangeApplication).where(ProgramChangeApplication.pending_key == person_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_application(
    session: AsyncSession, application_id: int, *, for_update: bool = False
) -> ProgramChangeApplication | None:
    """One application, optionally locked."""
    stmt = select(ProgramChangeApplication).where(ProgramChangeApplication.id == application_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def agreements_of_applications(
    session: AsyncSession, application_ids: Iterable[int]
) -> dict[int, AdditionalAgreement]:
    """Additional agreements by application id (R4.3)."""
    ids = sorted(set(application_ids))
    if not ids:
        return {}
    rows = (
        await session.execute(select(AdditionalAgreement).where(AdditionalAgreement.application_id.in_(ids)))
    ).scalars()
    return {agreement.application_id: agreement for agreement in rows}


async def get_agreement(session: AsyncSession, agreement_id: int) -> AdditionalAgreement | None:
    """One additional agreement."""
    return await session.get(AdditionalAgreement, agreement_id)


async def agreement_schedules(session: AsyncSession, agreement_ids: Iterable[int]) -> dict[int, list[ScheduledPayment]]:
    """The additional premium schedules (R4.4) of some agreements, by agreement id, by due date."""
    ids = sorted(set(agreement_ids))
    if not ids:
        return {}
    stmt = (
        select(ScheduledPayment)
        .where(ScheduledPayment.additional_agreement_id.in_(ids))
        .order_by(ScheduledPayment.due_on, ScheduledPayment.id)
    )
    out: dict[int, list[ScheduledPayment]] = {agreement_id: [] for agreement_id in ids}
    for row in (await session.execute(stmt)).scalars():
        assert row.additional_agreement_id is not None
        out[row.additional_agreement_id].append(row)
    return out


# ----------------------------------------------------------------------------- payments (R4.6, R7)


async def get_scheduled_payment(
    session: AsyncSession, scheduled_id: int, *, for_update: bool = False
) -> ScheduledPayment | None:
    """One scheduled payment, optionally locked."""
    stmt = select(ScheduledPayment).where(ScheduledPayment.id == scheduled_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def paid_scheduled_ids(session: AsyncSession, scheduled_ids: Iterable[int]) -> set[int]:
    """Which of these scheduled payments already have a bundled payment."""
    ids = sorted(set(scheduled_ids))
    if not ids:
        return set()
    stmt = select(Payment.scheduled_payment_id).where(Payment.scheduled_payment_id.in_(ids))
    return {row for row in (await session.execute(stmt)).scalars() if row is not None}


async def unpaid_scheduled_payments(
    session: AsyncSession, *, policy_id: int | None = None, due_by: date | None = None, limit: int = 500
) -> list[ScheduledPayment]:
    """Scheduled payments with no bundled payment yet, by due date (the admin's "payments due" list).

    Args:
        session: The open session.
        policy_id: Only this policy.
        due_by: Only payments due on or before this day.
        limit: At most this many.

    Returns:
        The unpaid scheduled payments.
    """
    stmt = select(ScheduledPayment).outerjoin(Payment, Payment.scheduled_payment_id == ScheduledPayment.id)
    stmt = stmt.where(Payment.id.is_(None))
    if policy_id is not None:
        stmt = stmt.where(ScheduledPayment.policy_id == policy_id)
    if due_by is not None:
        stmt = stmt.where(ScheduledPayment.due_on <= due_by)
    stmt = stmt.order_by(ScheduledPayment.due_on, ScheduledPayment.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def first_unpaid_matching(session: AsyncSession, policy_id: int, amount: Decimal) -> ScheduledPayment | None:
    """The earliest unpaid scheduled payment of a policy for exactly ``amount`` (premium before additional)."""
    stmt = (
        select(ScheduledPayment)
        .outerjoin(Payment, Payment.scheduled_payment_id == ScheduledPayment.id)
        .where(Payment.id.is_(None), ScheduledPayment.policy_id == policy_id, ScheduledPayment.amount == amount)
        .order_by(ScheduledPayment.due_on, ScheduledPayment.purpose.desc(), ScheduledPayment.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def schedule_with_references(
    session: AsyncSession, policy_id: int, policy_number: str
) -> list[tuple[ScheduledPayment, str, bool, int | None]]:
    """Every scheduled payment of a policy with the reference that names its schedule (R7.4, R7.6).

    Returns:
        ``(row, reference, paid, insured_person_id)`` by due date: the policy number for the policy's
        premium (``insured_person_id`` ``None``: it concerns every person), the agreement number and
        its person for an additional premium. Schedules of withdrawn applications are left out.
    """
    stmt = (
        select(
            ScheduledPayment,
            AdditionalAgreement.number,
            ProgramChangeApplication.insured_person_id,
            ProgramChangeApplication.status,
            Payment.id,
        )
        .outerjoin(AdditionalAgreement, AdditionalAgreement.id == ScheduledPayment.additional_agreement_id)
        .outerjoin(ProgramChangeApplication, ProgramChangeApplication.id == AdditionalAgreement.application_id)
        .outerjoin(Payment, Payment.scheduled_payment_id == ScheduledPayment.id)
        .where(ScheduledPayment.policy_id == policy_id)
        .order_by(ScheduledPayment.due_on, ScheduledPayment.id)
    )
    out: list[tuple[ScheduledPayment, str, bool, int | None]] = []
    for row, agreement_number, person_id, status, payment_id in (await session.execute(stmt)).all():
        if row.additional_agreement_id is not None and status == "withdrawn":
            continue
        out.append((row, agreement_number or policy_number, payment_id is not None, person_id))
    return out


async def bundled_total_for_agreement(session: AsyncSession, agreement_id: int) -> Decimal:
    """The additional premium bundled so far under one agreement (R4.6)."""
    stmt = (
        select(func.coalesce(func.sum(Payment.amount), 0))
        .join(ScheduledPayment, ScheduledPayment.id == Payment.scheduled_payment_id)
        .where(ScheduledPayment.additional_agreement_id == agreement_id)
    )
    return Decimal((await session.execute(stmt)).scalar_one())


# ----------------------------------------------------------------------------- attachment letters (R6.1, R7)


async def attachment_letters_of_person(session: AsyncSession, person_id: int) -> list[AttachmentLetter]:
    """A person's attachment letters, oldest first."""
    stmt = (
        select(AttachmentLetter)
        .where(AttachmentLetter.insured_person_id == person_id)
        .order_by(AttachmentLetter.valid_from, AttachmentLetter.id)
    )
    return list((await session.execute(stmt)).scalars())


async def attachment_letters_to_send(
    session: AsyncSession, on: date, *, include_sent: bool = False, limit: int = 1000
) -> list[AttachmentLetter]:
    """Attachment letters due to go to clinics by ``on`` (R7.2), oldest first.

    Args:
        session: The open session.
        on: Letters with ``send_on <= on``.
        include_sent: Also list letters already sent.
        limit: At most this many.

    Returns:
        The letters.
    """
    stmt = select(AttachmentLetter).where(AttachmentLetter.send_on <= on)
    if not include_sent:
        stmt = stmt.where(AttachmentLetter.sent_at.is_(None))
    stmt = stmt.order_by(AttachmentLetter.send_on, AttachmentLetter.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def mark_attachment_letter_sent(session: AsyncSession, letter_id: int, now: datetime) -> bool:
    """Record that staff sent the letter; only the first call wins.

    Returns:
        True when this call marked it sent.
    """
    result = await session.execute(
        update(AttachmentLetter)
        .where(AttachmentLetter.id == letter_id, AttachmentLetter.sent_at.is_(None))
        .values(sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- passes (R6.4)


async def pass_requests_of_person(session: AsyncSession, person_id: int) -> list[PassRequest]:
    """A person's pass requests, newest first."""
    stmt = select(PassRequest).where(PassRequest.insured_person_id == person_id).order_by(PassRequest.id.desc())
    return list((await session.execute(stmt)).scalars())


async def add_pass_photo_txn(session: AsyncSession, photo: PassPhoto) -> PassPhoto:
    """Store a pass photo (its bytes and facts)."""
    session.add(photo)
    await session.flush()
    return photo


async def pass_photo_facts(session: AsyncSession, photo_id: int) -> tuple[str, int, int] | None:
    """A stored photo's type, width and height, without reading its bytes."""
    stmt = select(PassPhoto.mime, PassPhoto.width, PassPhoto.height).where(PassPhoto.id == photo_id)
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row.mime, row.width, row.height)


async def delete_pass_photo_if_unused_txn(session: AsyncSession, photo_id: int) -> bool:
    """Delete a replaced photo that no pass request refers to: a person's image is not kept without a purpose.

    The caller has already pointed the person at their new photo (a photo belongs to one person only).
    """
    await session.flush()
    in_use = select(PassRequest.id).where(PassRequest.photo_id == photo_id).exists()
    result = await session.execute(
        delete(PassPhoto).where(PassPhoto.id == photo_id, ~in_use).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
