"""The dispatch console's use cases: the queue, insured events, letters of guarantee, visits and the
approval check (R2, R3, R6.2-R6.4, R7.4, R10.2). One transaction each; every coverage decision is recorded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import EVENT_DISPATCH_QUEUE_CHANGED, dispatch_queue_channel
from server.db.models import (
    Clinic,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    LetterOfGuarantee,
    PassRequest,
    Visit,
)
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.db.uow import UnitOfWork
from server.domain import letters as letter_rules
from server.domain.approval import needs_approval
from server.domain.coverage import check_complaints, evaluate_coverage
from server.domain.coverage_types import Component, EventStatus, ServiceType, parse_component
from server.domain.decisions import Reason
from server.domain.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.domain.passes import check_pass_photo
from server.domain.visits import compose_visit_notice
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    load_coverage_records,
    to_attachment_letter_facts,
    to_clinic_facts,
    to_insured_event_facts,
    to_insured_facts,
    to_letter_facts,
    to_policy_facts,
)
from server.services.decisions import reasons_json, record_decision_txn, record_refusal, rule_violation
from server.services.dispatch_common import (
    clinic_timezone,
    person_day_txn,
    points_txn,
    require_clinic_on_program_txn,
    require_person_txn,
)
from server.services.dispatch_views import (
    EventView,
    LetterView,
    ReasonJson,
    RequestView,
    VisitView,
    event_view,
    letter_view,
    request_view,
    visit_view,
)
from server.services.identity import Principal

log = logging.getLogger(__name__)

QUEUE_STATUSES: Final = ("open", "in_progress", "done", "cancelled")
UNFINISHED: Final = ("open", "in_progress")
RESOURCE_PERSON: Final = "insured_person"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PassNote:
    """Whether the clinic needs a pass and the person's photo (R6.4)."""

    needed: bool
    photo_on_file: bool
    pass_request_id: int | None
    reasons: list[ReasonJson]


@dataclass(frozen=True, slots=True)
class LetterIssued:
    """A letter sent to the clinic (R2.5) and why it was allowed."""

    letter: LetterView
    reasons: list[ReasonJson]
    pass_photo: PassNote
    finished_request_ids: list[int]


@dataclass(frozen=True, slots=True)
class LetterChanged:
    """A letter after extend/close/cancel (R3.3, R2.5) and why."""

    letter: LetterView
    reasons: list[ReasonJson]


@dataclass(frozen=True, slots=True)
class LetterRef:
    """The valid letter that authorizes a visit (R3)."""

    id: int
    number: str
    clinic_id: int
    services: list[str]
    issued_on: date
    valid_until: date


@dataclass(frozen=True, slots=True)
class ApprovalAnswer:
    """Does this visit need the console's (new) approval? Always explained (R3.1-R3.3, R6.2, R6.3, R7.4)."""

    needs_approval: bool
    channel: str
    reasons: list[ReasonJson]
    letter: LetterRef | None
    insured_person_id: int
    clinic_id: int
    insured_event_id: int | None
    on: date
    new_event: bool


# ----------------------------------------------------------------------------- helpers


def _queue_changed(ctx: ServiceContext, uow: UnitOfWork, request_id: int, status: str) -> None:
    uow.publish(
        dispatch_queue_channel(),
        {"type": EVENT_DISPATCH_QUEUE_CHANGED, "dispatch_request_id": request_id, "status": status},
    )


def _checked_complaints(complaints: str) -> str:
    decision = check_complaints(complaints)
    if not decision.allowed:
        raise RuleViolation(decision.reasons[0].message, code="invalid_complaints", reasons=decision.reasons)
    return " ".join(complaints.split())


async def _audit(
    ctx: ServiceContext,
    session: AsyncSession,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: int,
    patient_id: int | None,
) -> None:
    await audit.record_txn(
        ctx,
        session,
        principal,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        patient_id=patient_id,
    )


# ----------------------------------------------------------------------------- insured requests and the queue


async def submit_insured_request(
    ctx: ServiceContext,
    principal: Principal,
    *,
    component: str,
    complaints: str,
    services: Sequence[str] = (),
) -> RequestView:
    """An insured person asks the console for care: coverage is checked first (R2.1, R2.2, R10.2).

    A covered request joins the dispatchers' queue; an uncovered one is refused with its reasons,
    and the refusal is still recorded in the decision trail.

    Args:
        ctx: The service context.
        principal: The insured person.
        component: The program component the problem falls under (R10.1).
        complaints: What the person contacts about (R2.1).
        services: Services the person asks for, if known.

    Returns:
        The queued request.

    Raises:
        InvalidInput: unknown component (R10.1).
        RuleViolation: empty complaints (R2.1), or not an insured event (R2.2 with R10.1/R10.2).
    """
    chosen = parse_component(component)
    text = _checked_complaints(complaints)
    wanted = list(letter_rules.normalize_services(services))
    now = ctx.clock.now()
    refusal: RuleViolation | None = None
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, principal.subject_id, for_update=True)
        today = await person_day_txn(session, person, now)  # R10.3: the person's local day
        records = await load_coverage_records(session, person)
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, chosen, today)
        if not coverage.allowed:
            refusal = RuleViolation(coverage.reasons[0].message, code="not_covered", reasons=coverage.reasons)
        else:
            request = DispatchRequest(
                insured_person_id=person.id,
                source="insured",
                complaints=text,
                requested_specialty=None,
                requested_services=wanted,
                status="open",
                created_at=now,
            )
            session.add(request)
            await session.flush()
            record_decision_txn(
                session,
                person_id=person.id,
                kind="insured_request",
                allowed=True,
                reasons=coverage.reasons,
                subject={"dispatch_request_id": request.id, "component": chosen.value, "on": today.isoformat()},
                principal=principal,
                now=now,
            )
            await _audit(ctx, session, principal, "dispatch_request.create", "dispatch_request", request.id, person.id)
            _queue_changed(ctx, uow, request.id, "open")
            await uow.commit()
            return request_view(request, person)
    assert refusal is not None
    await record_refusal(
        ctx,
        principal,
        person_id=principal.subject_id,
        kind="insured_request",
        error=refusal,
        subject={"component": chosen.value, "on": today.isoformat()},
    )
    raise refusal


async def queue(
    ctx: ServiceContext,
    statuses: Sequence[str] = ("open",),
    *,
    limit: int = 200,
    principal: Principal | None = None,
) -> list[RequestView]:
    """The dispatchers' queue, oldest first, from insured persons and consultation referrals.

    Args:
        ctx: The service context.
        statuses: Which statuses to list.
        limit: At most this many.
        principal: Who reads it; the queue shows names and complaints, so each person shown is an
            audit row (checklist D1).

    Returns:
        The queue items with the person's name, city and service type.
    """
    async with ctx.uow() as uow:
        requests = await repo.requests_by_status(uow.session, statuses, limit=limit)
        persons = await coverage_repo.person_names(uow.session, (r.insured_person_id for r in requests))
        views = [request_view(r, persons.get(r.insured_person_id)) for r in requests]
        if principal is not None:
            for patient_id in sorted({r.insured_person_id for r in requests}):
                await audit.record_txn(
                    ctx,
                    uow.session,
                    principal,
                    action="dispatch.queue.read",
                    resource_type="dispatch_queue",
                    resource_id=",".join(statuses)[:40],
                    patient_id=patient_id,
                )
            await uow.commit()
        return views


async def take_request(ctx: ServiceContext, principal: Principal, request_id: int) -> RequestView:
    """A dispatcher takes an open request; of two dispatchers racing, one wins and the other gets 409.

    Raises:
        NotFound: no such request.
        Conflict: taken by someone else, or already finished.
    """
    async with ctx.uow() as uow:
        session = uow.session
        taken = await repo.take_request(session, request_id, principal.subject_id)
        request = await repo.get_request(session, request_id)
        if request is None:
            raise NotFound("no such request")
        if not taken:
            if request.status == "in_progress" and request.assigned_dispatcher_id == principal.subject_id:
                return request_view(request, await coverage_repo.get_person(session, request.insured_person_id))
            raise Conflict(
                f"request {request_id} is {request.status}"
                + (" and taken by another dispatcher" if request.status == "in_progress" else ""),
                code="request_taken" if request.status == "in_progress" else "request_finished",
                details={"status": request.status},
            )
        await _audit(
            ctx, session, principal, "dispatch_request.take", "dispatch_request", request.id, request.insured_person_id
        )
        _queue_changed(ctx, uow, request.id, "in_progress")
        person = await coverage_repo.get_person(session, request.insured_person_id)
        await uow.commit()
    return request_view(request, person)


async def finish_request(ctx: ServiceContext, principal: Principal, request_id: int, status: str) -> RequestView:
    """Mark a request done or cancelled (a request is also finished when its event's letter is sent).

    Raises:
        NotFound: no such request.
        InvalidInput: a status other than ``done`` or ``cancelled``.
        Conflict: already finished.
    """
    if status not in ("done", "cancelled"):
        raise InvalidInput("a request is finished as done or cancelled", details={"status": status})
    async with ctx.uow() as uow:
        session = uow.session
        request = await repo.get_request(session, request_id, for_update=True)
        if request is None:
            raise NotFound("no such request")
        if request.status not in UNFINISHED:
            raise Conflict(f"request {request_id} is already {request.status}", code="request_finished")
        request.status = status
        request.closed_at = ctx.clock.now()
        if request.assigned_dispatcher_id is None:
            request.assigned_dispatcher_id = principal.subject_id
        await _audit(
            ctx,
            session,
            principal,
            f"dispatch_request.{status}",
            "dispatch_request",
            request.id,
            request.insured_person_id,
        )
        _queue_changed(ctx, uow, request.id, status)
        person = await coverage_repo.get_person(session, request.insured_person_id)
        await uow.commit()
    return request_view(request, person)


# ----------------------------------------------------------------------------- insured events


async def open_event(
    ctx: ServiceContext,
    principal: Principal,
    *,
    person_id: int,
    component: str,
    complaints: str,
    request_id: int | None = None,
    on: date | None = None,
) -> EventView:
    """Record the problem and decide whether it is an insured event (R2.1, R2.2, R10.2).

    An uncovered problem is still recorded, as a rejected event with its reasons, so that the
    console can tell the person why. A linked request moves to ``in_progress`` (or ``done`` when
    rejected).

    Args:
        ctx: The service context.
        principal: The dispatcher.
        person_id: The insured person.
        component: The program component (R10.1).
        complaints: The complaints (R2.1).
        request_id: The queue item this classifies, if any.
        on: The day of the event (default: today).

    Returns:
        The event, ``status`` ``open`` (covered) or ``rejected``.

    Raises:
        NotFound: no such person or request.
        InvalidInput: unknown component; the request is another person's.
        RuleViolation: empty complaints (R2.1).
        Conflict: the request is already finished.
    """
    chosen = parse_component(component)
    text = _checked_complaints(complaints)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, person_id, for_update=True)
        day = on or await person_day_txn(session, person, now)  # R10.3: the person's local day
        request: DispatchRequest | None = None
        if request_id is not None:
            request = await repo.get_request(session, request_id, for_update=True)
            if request is None:
                raise NotFound("no such request")
            if request.insured_person_id != person.id:
                raise InvalidInput(f"request {request_id} is another person's", code="request_of_another_person")
            if request.status not in UNFINISHED:
                raise Conflict(f"request {request_id} is already {request.status}", code="request_finished")
        records = await load_coverage_records(session, person)
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, chosen, day)
        recorded = Reason("R2.1", "complaints recorded by the console", {"length": len(text)})
        reasons = [recorded, *coverage.reasons]
        event = InsuredEvent(
            insured_person_id=person.id,
            component=chosen.value,
            complaints=text,
            status=EventStatus.OPEN.value if coverage.allowed else EventStatus.REJECTED.value,
            source=request.source if request is not None else "dispatcher",
            covered=coverage.allowed,
            reasons=reasons_json(reasons),
            opened_at=now,
            closed_at=None if coverage.allowed else now,
            opened_by_staff_id=principal.subject_id,
        )
        session.add(event)
        await session.flush()
        if request is not None:
            request.insured_event_id = event.id
            if request.assigned_dispatcher_id is None:
                request.assigned_dispatcher_id = principal.subject_id
            if coverage.allowed:
                request.status = "in_progress"
            else:
                request.status = "done"
                request.closed_at = now
            _queue_changed(ctx, uow, request.id, request.status)
        record_decision_txn(
            session,
            person_id=person.id,
            kind="insured_event",
            allowed=coverage.allowed,
            reasons=reasons,
            subject={
                "insured_event_id": event.id,
                "dispatch_request_id": request_id,
                "component": chosen.value,
                "on": day.isoformat(),
            },
            principal=principal,
            now=now,
        )
        await _audit(ctx, session, principal, "insured_event.create", "insured_event", event.id, person.id)
        await uow.commit()
    return event_view(event)


async def close_event(ctx: ServiceContext, principal: Principal, event_id: int) -> EventView:
    """Treatment is complete: close the event and its active letters (R3.3 no longer applies).

    Raises:
        NotFound: no such event.
        Conflict: the event is not open.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        event = await repo.get_event(session, event_id, for_update=True)
        if event is None:
            raise NotFound("no such insured event")
        if event.status != EventStatus.OPEN.value:
            raise Conflict(f"insured event {event_id} is already {event.status}", code="event_not_open")
        event.status = EventStatus.CLOSED.value
        event.closed_at = now
        closed = []
        for letter in await repo.active_letters_of_event(session, event.id):
            letter.status = "closed"
            closed.append(letter.number)
        reason = Reason(
            "R3.3",
            f"treatment of insured event {event.id} is complete; its letters are closed",
            {"insured_event_id": event.id, "closed_letters": closed},
        )
        event.reasons = [*(event.reasons or []), reason.as_dict()]
        record_decision_txn(
            session,
            person_id=event.insured_person_id,
            kind="insured_event_close",
            allowed=True,
            reasons=[reason],
            subject={"insured_event_id": event.id},
            principal=principal,
            now=now,
        )
        await _audit(ctx, session, principal, "insured_event.close", "insured_event", event.id, event.insured_person_id)
        await uow.commit()
    return event_view(event)


# ----------------------------------------------------------------------------- letters of guarantee


async def _pass_note_txn(session: AsyncSession, person: InsuredPerson, clinic: Clinic, now: datetime) -> PassNote:
    """R6.4: for a clinic with an access system, request the pass when the photo is on file."""
    decision = check_pass_photo(to_clinic_facts(clinic), to_insured_facts(person))
    request_id: int | None = None
    if clinic.has_access_system and person.has_pass_photo:
        existing = [p for p in await repo.pass_requests_of_person(session, person.id) if p.clinic_id == clinic.id]
        if existing:
            request_id = existing[0].id
        else:
            pass_request = await create_pass_request_txn(session, person, clinic, now)
            request_id = pass_request.id
    return PassNote(
        needed=clinic.has_access_system,
        photo_on_file=person.has_pass_photo,
        pass_request_id=request_id,
        reasons=reasons_json(decision.reasons),
    )


async def create_pass_request_txn(
    session: AsyncSession, person: InsuredPerson, clinic: Clinic, now: datetime
) -> PassRequest:
    """Ask a clinic with an access system for a pass, with the photo on file (R6.4)."""
    assert person.has_pass_photo
    meta = None if person.pass_photo_id is None else await repo.pass_photo_facts(session, person.pass_photo_id)
    if meta is None:
        meta = person_photo_meta(person)
    pass_request = PassRequest(
        insured_person_id=person.id,
        clinic_id=clinic.id,
        photo_id=person.pass_photo_id,
        photo_path=person.pass_photo_path,
        photo_mime=meta[0],
        photo_width=meta[1],
        photo_height=meta[2],
        status="submitted",
        created_at=now,
    )
    session.add(pass_request)
    await session.flush()
    return pass_request


def person_photo_meta(person: InsuredPerson) -> tuple[str, int, int]:
    """A photo file's type and size, encoded in its name (``<random>-<w>x<h>.jpg``; uploads before 0003)."""
    path = person.pass_photo_path or ""
    try:
        size = path.rsplit("-", 1)[1].split(".", 1)[0]
        width, height = (int(part) for part in size.split("x", 1))
    except (IndexError, ValueError):
        width = height = 0
    return "image/jpeg", width, height


async def issue_letter(
    ctx: ServiceContext,
    principal: Principal,
    event_id: int,
    *,
    clinic_id: int,
    services: Sequence[str],
    component: str | None = None,
    issued_on: date | None = None,
) -> LetterIssued:
    """Send a clinic a letter of guarantee for the agreed services of an open insured event (R2.5).

    The clinic must be on the program's list (R2.3), the component covered and the policy valid on
    the day of issue (R2.2, R10.1, R10.2), the event open (R3.1). The number ``LG-YYYY-NNNNNN`` is
    allocated race-free. Linked queue items are finished. A clinic with an access system gets a
    pass request when the photo is on file (R6.4).

    Args:
        ctx: The service context.
        principal: The dispatcher.
        event_id: The insured event.
        clinic_id: The clinic chosen with the person.
        services: The agreed services, or ``"diagnosis of the complaints"``.
        component: The component of the services (default: the event's).
        issued_on: Day of issue (default: today).

    Returns:
        The letter, valid one month (R3.3), and the reasons.

    Raises:
        NotFound: no such event.
        RuleViolation: any refusal above (recorded in the decision trail).
    """
    now = ctx.clock.now()
    refusal: RuleViolation | None = None
    person_id: int | None = None
    subject: dict[str, Any] = {"insured_event_id": event_id, "clinic_id": clinic_id}
    async with ctx.uow() as uow:
        session = uow.session
        event = await repo.get_event(session, event_id, for_update=True)
        if event is None:
            raise NotFound("no such insured event")
        person = await require_person_txn(session, event.insured_person_id, for_update=True)
        person_id = person.id
        day = issued_on or await person_day_txn(session, person, now)  # R10.3: the person's local day
        subject["on"] = day.isoformat()
        records = await load_coverage_records(session, person, with_clinics=True)
        clinic = await coverage_repo.get_clinic(session, clinic_id)
        chosen = parse_component(component) if component is not None else Component(event.component)
        subject["component"] = chosen.value
        if clinic is None:
            refusal = rule_violation(
                "R2.3",
                f"clinic {clinic_id} is not known: choose a clinic from the program's list",
                {"clinic_id": clinic_id},
                code="unknown_clinic",
            )
        else:
            decision = letter_rules.check_letter_issue(
                records.program_facts,
                to_clinic_facts(clinic),
                services,
                chosen,
                insured=records.insured,
                policy=records.policy_facts,
                event=to_insured_event_facts(event),
                on=day,
            )
            if not decision.allowed:
                refusal = RuleViolation(decision.reasons[0].message, code="letter_refused", reasons=decision.reasons)
            else:
                year = day.year
                seq = await repo.next_document_seq_txn(
                    session, LetterOfGuarantee.number, letter_rules.LETTER_PREFIX, year
                )
                number = letter_rules.format_letter_number(year, seq)
                facts = letter_rules.draft_letter(
                    number,
                    to_clinic_facts(clinic),
                    services,
                    to_insured_event_facts(event),
                    day,
                    policy=records.policy_facts,
                )
                letter = LetterOfGuarantee(
                    number=number,
                    insured_event_id=event.id,
                    insured_person_id=person.id,
                    clinic_id=clinic.id,
                    services=list(letter_rules.normalize_services(services)),
                    issued_on=facts.issued_on,
                    valid_until=facts.valid_until,
                    status="active",
                    sent_to_clinic_at=now,
                    issued_by_staff_id=principal.subject_id,
                    created_at=now,
                )
                session.add(letter)
                await session.flush()
                finished = []
                for request in await repo.unfinished_requests_of_event(session, event.id):
                    request.status = "done"
                    request.closed_at = now
                    if request.assigned_dispatcher_id is None:
                        request.assigned_dispatcher_id = principal.subject_id
                    finished.append(request.id)
                    _queue_changed(ctx, uow, request.id, "done")
                pass_note = await _pass_note_txn(session, person, clinic, now)
                record_decision_txn(
                    session,
                    person_id=person.id,
                    kind="letter_issue",
                    allowed=True,
                    reasons=decision.reasons,
                    subject={**subject, "letter_id": letter.id, "letter_number": number},
                    principal=principal,
                    now=now,
                )
                await _audit(ctx, session, principal, "letter.issue", "letter_of_guarantee", letter.id, person.id)
                await uow.commit()
                return LetterIssued(
                    letter=letter_view(letter, clinic, await person_day_txn(session, person, now)),
                    reasons=reasons_json(decision.reasons),
                    pass_photo=pass_note,
                    finished_request_ids=finished,
                )
    assert refusal is not None
    await record_refusal(ctx, principal, person_id=person_id, kind="letter_issue", error=refusal, subject=subject)
    raise refusal


async def _letter_with_event_txn(
    session: AsyncSession, letter_id: int
) -> tuple[LetterOfGuarantee, InsuredEvent, Clinic]:
    letter = await repo.get_letter(session, letter_id, for_update=True)
    if letter is None:
        raise NotFound("no such letter of guarantee")
    event = await repo.get_event(session, letter.insured_event_id)
    clinic = await coverage_repo.get_clinic(session, letter.clinic_id)
    assert event is not None and clinic is not None  # foreign keys
    return letter, event, clinic


async def change_letter(
    ctx: ServiceContext, principal: Principal, letter_id: int, action: str, *, on: date | None = None
) -> LetterChanged:
    """Extend a letter by a month (the new approval of R3.3), close it (treatment complete) or cancel it.

    Args:
        ctx: The service context.
        principal: The dispatcher.
        letter_id: The letter.
        action: ``extend``, ``close`` or ``cancel``.
        on: The day of the change (default: today).

    Returns:
        The letter after the change and why.

    Raises:
        NotFound: no such letter.
        RuleViolation: extension refused (R3.3).
        Conflict: the letter is already closed or cancelled (R2.5).
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        letter, event, clinic = await _letter_with_event_txn(session, letter_id)
        facts = to_letter_facts(letter)
        owner = await require_person_txn(session, letter.insured_person_id)
        today = await person_day_txn(session, owner, now)  # R10.3: the person's local day
        day = on or today
        if action == "extend":
            policy = (await load_coverage_records(session, owner)).policy_facts
            transition = letter_rules.extend_letter(facts, to_insured_event_facts(event), day, policy=policy)
            letter.valid_until = transition.letter.valid_until
        elif action == "close":
            transition = letter_rules.close_letter(facts, day)
        elif action == "cancel":
            transition = letter_rules.cancel_letter(facts, day)
        else:  # pragma: no cover - the routes pass one of the three
            raise InvalidInput(f"unknown letter action {action!r}")
        letter.status = transition.letter.status.value
        record_decision_txn(
            session,
            person_id=letter.insured_person_id,
            kind=f"letter_{action}",
            allowed=True,
            reasons=transition.reasons,
            subject={"letter_id": letter.id, "letter_number": letter.number, "on": day.isoformat()},
            principal=principal,
            now=now,
        )
        await _audit(
            ctx, session, principal, f"letter.{action}", "letter_of_guarantee", letter.id, letter.insured_person_id
        )
        await uow.commit()
    return LetterChanged(letter=letter_view(letter, clinic, today), reasons=reasons_json(transition.reasons))


# ----------------------------------------------------------------------------- visits (R2.4, R2.6)


async def book_visit(
    ctx: ServiceContext,
    principal: Principal,
    letter_id: int,
    *,
    doctor_name: str,
    scheduled_at: datetime,
    services: Sequence[str],
) -> VisitView:
    """Book the person into the letter's clinic and record the visit details they are told (R2.4, R2.6).

    Args:
        ctx: The service context.
        principal: The dispatcher.
        letter_id: The letter of guarantee.
        doctor_name: Whom the person sees.
        scheduled_at: When (timezone-aware); checked in the clinic's local time.
        services: The services booked (named in the letter).

    Returns:
        The visit as the notice the person sees on their coverage card.

    Raises:
        NotFound: no such letter.
        InvalidInput: a naive time.
        RuleViolation: the booking does not fit the letter (R2.4) or a detail is missing (R2.6).
    """
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        raise InvalidInput("the appointment time needs a UTC offset", code="naive_datetime")
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        letter, event, clinic = await _letter_with_event_txn(session, letter_id)
        points = await points_txn(session)
        local = scheduled_at.astimezone(clinic_timezone(clinic.city, points))
        owner = await require_person_txn(session, letter.insured_person_id)
        policy = (await load_coverage_records(session, owner)).policy_facts
        notice = compose_visit_notice(
            to_clinic_facts(clinic), doctor_name, local, services, to_letter_facts(letter), policy=policy
        )
        visit = Visit(
            insured_event_id=event.id,
            letter_id=letter.id,
            clinic_id=clinic.id,
            doctor_name=notice.doctor_name,
            scheduled_at=local,
            services=list(notice.services),
            created_at=now,
            created_by_staff_id=principal.subject_id,
        )
        session.add(visit)
        await session.flush()
        await _audit(ctx, session, principal, "visit.create", "visit", visit.id, letter.insured_person_id)
        await uow.commit()
    return visit_view(visit, letter, clinic, points)


# ----------------------------------------------------------------------------- approval check (R3, R6, R7.4)


async def approval_check(
    ctx: ServiceContext,
    principal: Principal,
    *,
    person_id: int,
    clinic_id: int,
    services: Sequence[str],
    on: date | None = None,
    insured_event_id: int | None = None,
    complaints: str | None = None,
    new_event: bool = False,
) -> ApprovalAnswer:
    """Does this visit need the console's (new) approval? The answer says which rule decided.

    Letters considered: those of ``insured_event_id`` when given (a closed or rejected event makes
    it a new event, R3.1), otherwise those of the person's open events. A registry person's
    attachment letters decide R6.2/R7.4.

    Args:
        ctx: The service context.
        principal: The dispatcher.
        person_id: The insured person.
        clinic_id: The clinic of the visit.
        services: The services requested or prescribed.
        on: The day of the visit (default: today).
        insured_event_id: The event the visit belongs to, if known.
        complaints: Without an event: the complaints; they make a new insured event (R3.1, R11.5), since
            which open event a visit continues is named, never guessed from words.
        new_event: The visit is for new complaints (R3.1).

    Returns:
        The explained answer.

    Raises:
        NotFound: no such person, or the event is not theirs.
        RuleViolation: the day is outside the policy (R10.2); the clinic is unknown or off the list (R2.3).
    """
    async with ctx.uow() as uow:
        session = uow.session
        found = await coverage_repo.person_policy_program(session, person_id)
        if found is None:
            raise NotFound("no such insured person")
        person, policy, program = found
        day = on or await person_day_txn(session, person, ctx.clock.now())  # R10.3: the person's local day
        insured = to_insured_facts(person)
        policy_facts = to_policy_facts(policy)
        if not policy_facts.is_valid_on(day) or not person.is_active:
            raise rule_violation(
                "R10.2",
                f"{day.isoformat()} is outside policy {policy.number} "
                f"({policy.starts_on.isoformat()} to {policy.ends_on.isoformat()})"
                if person.is_active
                else "the person is no longer insured under this policy",
                {
                    "on": day.isoformat(),
                    "starts_on": policy.starts_on.isoformat(),
                    "ends_on": policy.ends_on.isoformat(),
                },
                code="outside_policy",
            )
        clinic = await require_clinic_on_program_txn(session, clinic_id, program.id)
        context: list[Reason] = []
        is_new = new_event
        if insured_event_id is not None:
            event = await repo.get_event(session, insured_event_id)
            if event is None or event.insured_person_id != person.id:
                raise NotFound("no such insured event")
            letters = await repo.letters_of_event(session, event.id)
            if event.status != EventStatus.OPEN.value and not new_event:
                is_new = True
                context.append(
                    Reason(
                        "R3.1",
                        f"insured event {event.id} is {event.status}: a visit now belongs to a new insured event",
                        {"insured_event_id": event.id, "status": event.status},
                    )
                )
        elif complaints and not new_event:
            # R11.5: whether complaints continue an open event is decided by a person (the event id),
            # never guessed from words; complaints given without an event are a new insured event (R3.1).
            is_new = True
            letters = []
            context.append(
                Reason(
                    "R11.5",
                    "complaints were given without naming one of the person's open insured events: they are a new "
                    "insured event (name the event to continue it)",
                    {"insured_event_id": None},
                )
            )
        else:
            letters = [] if new_event else await repo.letters_of_open_events(session, person.id)
        attachment_rows = (
            await repo.attachment_letters_of_person(session, person.id)
            if person.service_type == ServiceType.REGISTRY.value
            else []
        )
        attached_listed = True
        if person.attached_clinic_id is not None:
            _, attached_listed = await coverage_repo.clinic_on_program(session, person.attached_clinic_id, program.id)
        decision = needs_approval(
            insured,
            clinic.id,
            services,
            day,
            new_event=is_new,
            letters=[to_letter_facts(letter) for letter in letters],
            attachment_letters=[to_attachment_letter_facts(row) for row in attachment_rows],
            attached_clinic_listed=attached_listed,
        )
        reasons = [*context, *decision.reasons]
        if clinic.has_access_system:
            reasons.extend(check_pass_photo(to_clinic_facts(clinic), insured).reasons)
        ref: LetterRef | None = None
        if decision.letter is not None:
            row = next(letter for letter in letters if letter.number == decision.letter.number)
            ref = LetterRef(
                id=row.id,
                number=row.number,
                clinic_id=row.clinic_id,
                services=list(row.services or ()),
                issued_on=row.issued_on,
                valid_until=row.valid_until,
            )
        await _audit(ctx, session, principal, "approval.check", RESOURCE_PERSON, person.id, person.id)
        await uow.commit()
    return ApprovalAnswer(
        needs_approval=decision.needs_approval,
        channel=decision.channel.value,
        reasons=reasons_json(reasons),
        letter=ref,
        insured_person_id=person_id,
        clinic_id=clinic_id,
        insured_event_id=insured_event_id,
        on=day,
        new_event=is_new,
    )
