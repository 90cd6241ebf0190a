"""The doctor completes a consultation and it is written back to the coverage records (R3.1, R6.2, R7.4, R11.3)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import (
    EVENT_DISPATCH_QUEUE_CHANGED,
    dispatch_queue_channel,
)
from server.db.models import (
    Consultation,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    ServiceUsed,
)
from server.db.repositories import consultations as repo
from server.domain import consultation as rules
from server.domain.attachment import attachment_effective
from server.domain.consultation_coverage import EventCandidate, check_event_link, service_date, suggest_open_event
from server.domain.coverage import evaluate_coverage
from server.domain.decisions import Reason
from server.domain.errors import Conflict, InvalidInput, NotFound, RuleViolation
from server.domain.icd10 import ERR_INVALID_ICD10
from server.domain.routing import person_timezone
from server.services import audit
from server.services import consultation_safety as safety
from server.services.consultations.assignment import assign_soon
from server.services.consultations.common import COMPONENT, RESOURCE, SERVICE_NAME, announce, to_state
from server.services.consultations.views import ConsultationView, views_of
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    coverage_day,
    load_coverage_records,
    to_attachment_letter_facts,
)
from server.services.decisions import record_decision_txn
from server.services.identity import Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenEventChoice:
    """One of the patient's open insured events, offered to the doctor at completion (R11.5)."""

    id: int
    component: str
    complaints: str
    opened_at: datetime
    covered: bool
    icd10_codes: list[str]


@dataclass(frozen=True, slots=True)
class EventChoicesView:
    """What the doctor chooses from at completion: link to an open event or open a new one (R11.5).

    ``suggested_event_id`` is only a suggestion (an open event with a consultation of the same
    ICD-10 category); without a choice the completion opens a new insured event (R3.1).
    """

    consultation_id: int
    icd10_code: str | None
    events: list[OpenEventChoice]
    suggested_event_id: int | None
    default: str


async def event_choices(
    ctx: ServiceContext, principal: Principal, consultation_id: int, icd10_code: str | None = None
) -> EventChoicesView:
    """The patient's open insured events, however old (no window, R11.3), and the suggestion (R11.5).

    Raises:
        NotFound: the consultation is not the caller's (never offered to or held by them).
    """
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.get_consultation(session, consultation_id)
        if consultation is None or principal.subject_id not in (consultation.doctor_id, consultation.offered_to_id):
            raise NotFound("no such consultation")
        open_events = await repo.open_insured_events(session, consultation.insured_person_id)
        codes = await repo.icd10_codes_of_events(session, [e.id for e in open_events])
        candidates = [_candidate(e, codes.get(e.id, ())) for e in open_events]
        suggested = suggest_open_event(candidates, icd10_code) if icd10_code else None
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.open_events.read",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=consultation.insured_person_id,
        )
        await uow.commit()
    return EventChoicesView(
        consultation_id=consultation_id,
        icd10_code=icd10_code,
        events=[
            OpenEventChoice(
                id=e.id,
                component=e.component,
                complaints=e.complaints,
                opened_at=e.opened_at,
                covered=bool(e.covered),
                icd10_codes=sorted(codes.get(e.id, ())),
            )
            for e in open_events
        ],
        suggested_event_id=suggested.id if suggested else None,
        default="new_event",
    )


async def complete_consultation(
    ctx: ServiceContext,
    principal: Principal,
    consultation_id: int,
    *,
    notes: str,
    icd10_code: str,
    outcome: str,
    referral_specialty: str | None = None,
    referral_services: Sequence[str] = (),
    insured_event_id: int | None = None,
) -> ConsultationView:
    """The assigned doctor closes the consultation; it is written back to the coverage records (R11.3).

    In one transaction: the consultation joins the open insured event the doctor names
    (``insured_event_id``, one of the patient's open events, however old) or, without one, opens a
    new insured event (R11.5, R3.1: never guessed from the complaints' words); a telemedicine
    service used is recorded (unique per consultation, so never counted twice); a referral opens a
    dispatcher request for a ``dispatcher`` person (or a ``registry`` person whose attachment is not
    in force, saying why: R7.2, R6.1, R5.4, R7.4) or points a ``registry`` person to their attached
    clinic (R6.2); the decision and its reasons go to the audit trail.

    Raises:
        NotFound: the consultation is not the caller's (never offered to or held by them).
        Conflict: ``already_completed``, or not active (``invalid_transition``).
        RuleViolation: ``invalid_icd10`` (422) for a code not in the ICD-10 list;
            ``unknown_insured_event`` (422, R11.5) for an event that is not one of the patient's open ones.
        InvalidInput: missing notes, referral fields on a non-referral outcome, and the like.
    """
    doctor_id = principal.subject_id
    now = ctx.clock.now()
    today = coverage_day(now)  # replaced below by the consultation's service date (R11.4)
    async with ctx.uow() as uow:
        session = uow.session
        consultation = await repo.get_consultation(session, consultation_id, for_update=True)
        if consultation is None or doctor_id not in (consultation.doctor_id, consultation.offered_to_id):
            raise NotFound("no such consultation")
        if consultation.status == rules.Status.COMPLETED:
            raise Conflict(
                f"consultation {consultation_id} is already completed",
                code="already_completed",
                details={"consultation_id": consultation_id},
            )
        specialty = consultation.specialty
        rules.complete(to_state(consultation), doctor_id)  # active and held by this doctor, or Conflict
        completion = _validated_completion(notes, icd10_code, outcome, referral_specialty, referral_services)
        person = await repo.lock_insured_person(session, consultation.insured_person_id)
        assert person is not None
        records = await load_coverage_records(session, person, with_clinics=True)
        # R11.4: counted on the day it started (the doctor accepted), the person's local day (R10.3),
        # even when it ends after midnight or after the policy's end.
        if consultation.accepted_at is not None:
            today = service_date(consultation.accepted_at, person_timezone(person.city))
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, COMPONENT, today)

        event, event_reasons = await _insured_event_txn(
            session, consultation, person, insured_event_id, coverage.reasons, coverage.allowed, doctor_id, now
        )
        service = ServiceUsed(
            insured_person_id=person.id,
            insured_event_id=event.id,
            component=COMPONENT,
            service=SERVICE_NAME,
            consultation_id=consultation.id,
            used_on=today,
            quantity=1,
            created_at=now,
        )
        session.add(service)

        route_kind: str | None = None
        route_reasons: tuple[Reason, ...] = ()
        dispatch: DispatchRequest | None = None
        if completion.outcome is rules.Outcome.REFERRAL:
            route = await _referral_route_txn(
                session, person, completion.referral_specialty, today, records.program_facts.clinic_ids
            )
            route_kind, route_reasons = route.kind.value, route.reasons
            if route.kind is rules.RouteKind.DISPATCHER_REQUEST:
                dispatch = DispatchRequest(
                    insured_person_id=person.id,
                    insured_event_id=event.id,
                    consultation_id=consultation.id,
                    source="consultation_referral",
                    complaints=consultation.complaints,
                    requested_specialty=completion.referral_specialty,
                    requested_services=list(completion.referral_services),
                    status="open",
                    created_at=now,
                )
                session.add(dispatch)
        await session.flush()

        outcome_reason = _outcome_reason(completion, route_kind)
        reasons = [*coverage.reasons, *event_reasons, *route_reasons, outcome_reason]
        record_decision_txn(
            session,
            person_id=person.id,
            kind="telemedicine_consultation",
            allowed=coverage.allowed,
            reasons=reasons,
            subject={
                "consultation_id": consultation.id,
                "insured_event_id": event.id,
                "service_used_id": service.id,
                "icd10_code": completion.icd10_code,
                "outcome": completion.outcome.value,
                "referral_route": route_kind,
                "dispatch_request_id": dispatch.id if dispatch else None,
            },
            principal=principal,
            now=now,
        )
        completed = await repo.mark_completed(
            session,
            consultation.id,
            doctor_id,
            {
                "completed_at": now,
                "notes": completion.notes,
                "icd10_code": completion.icd10_code,
                "outcome": completion.outcome.value,
                "referral_specialty": completion.referral_specialty,
                "referral_services": list(completion.referral_services),
                "referral_route": route_kind,
                "dispatch_request_id": dispatch.id if dispatch else None,
                "insured_event_id": event.id,
            },
        )
        if not completed:
            raise Conflict("the consultation changed meanwhile; reload", code="consultation_changed")
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.complete",
            resource_type=RESOURCE,
            resource_id=consultation.id,
            patient_id=person.id,
        )
        fresh = await repo.refresh_consultation(session, consultation.id)
        assert fresh is not None
        announce(ctx, uow, fresh, rules.Status.COMPLETED.value, doctors=[doctor_id])
        if dispatch is not None:
            uow.publish(
                dispatch_queue_channel(),
                {"type": EVENT_DISPATCH_QUEUE_CHANGED, "dispatch_request_id": dispatch.id, "source": dispatch.source},
            )
        if completion.outcome is rules.Outcome.EMERGENCY:
            # An urgent item for the dispatchers at once, with the phone, the city and the doctor's note.
            await safety.emergency_alert_txn(ctx, uow, fresh, person, completion.notes, now)
        event_id = event.id
        await uow.commit()
        view = (await views_of(ctx, session, [fresh], principal, now))[0]
    log.info(
        "consultation %s completed: %s, event %s, route %s",
        consultation_id,
        completion.outcome.value,
        event_id,
        route_kind,
    )
    await assign_soon(ctx, specialty)
    return view


def _validated_completion(
    notes: str, icd10_code: str, outcome: str, referral_specialty: str | None, referral_services: Sequence[str]
) -> rules.Completion:
    try:
        return rules.validate_completion(
            rules.Completion(
                notes=notes,
                icd10_code=icd10_code,
                outcome=rules.parse_outcome(outcome),
                referral_specialty=referral_specialty,
                referral_services=tuple(referral_services),
            )
        )
    except InvalidInput as exc:
        if exc.code == ERR_INVALID_ICD10:
            # A code outside the maintained ICD-10 list is refused by rule, as 422 (the brief's contract).
            raise RuleViolation(exc.message, code=ERR_INVALID_ICD10, details=exc.details) from exc
        raise


async def _insured_event_txn(
    session: AsyncSession,
    consultation: Consultation,
    person: InsuredPerson,
    linked_event_id: int | None,
    coverage_reasons: Sequence[Reason],
    covered: bool,
    doctor_id: int,
    now: datetime,
) -> tuple[InsuredEvent, tuple[Reason, ...]]:
    """The open insured event the doctor linked, or a new one (R11.5, R3.1, R11.3); no time window."""
    open_events = await repo.open_insured_events(session, person.id)
    by_id = {e.id: e for e in open_events}
    try:
        reason = check_event_link([_candidate(e) for e in open_events], linked_event_id)
    except InvalidInput as exc:
        refusal = Reason("R11.5", exc.message, exc.details)
        raise RuleViolation(exc.message, code=exc.code, details=exc.details, reasons=[refusal]) from exc
    if linked_event_id is not None:
        return by_id[linked_event_id], (reason,)
    new_event = Reason("R3.1", "new complaints: the consultation opens a new insured event", reason.facts)
    event = InsuredEvent(
        insured_person_id=person.id,
        component=COMPONENT,
        complaints=consultation.complaints,
        status="open",
        source="consultation",
        covered=covered,
        reasons=[r.as_dict() for r in (*coverage_reasons, reason, new_event)],
        opened_at=now,
        opened_by_staff_id=doctor_id,
    )
    session.add(event)
    await session.flush()
    return event, (reason, new_event)


def _candidate(event: InsuredEvent, icd10_codes: Sequence[str] = ()) -> EventCandidate:
    return EventCandidate(
        id=event.id, complaints=event.complaints, opened_at=event.opened_at, icd10_codes=frozenset(icd10_codes)
    )


async def _referral_route_txn(
    session: AsyncSession,
    person: InsuredPerson,
    referral_specialty: str | None,
    today: date,
    program_clinic_ids: Collection[int],
) -> rules.ReferralRoute:
    """Where a referral sends the person: the console (R2/R3) or the attached clinic (R6.2, R7.4).

    When the attachment is not in force the referral says why (item 15 of issue 9): the letter is
    still on its way to the clinic (R7.2), there is no letter yet (R6.1), the clinic left the
    program (R5.4) or an installment is unpaid (R7.4).
    """
    effective = False
    why: tuple[Reason, ...] = ()
    if person.service_type == rules.SERVICE_TYPE_REGISTRY and person.attached_clinic_id is not None:
        if person.attached_clinic_id not in program_clinic_ids:
            why = (
                Reason(
                    "R5.4",
                    "the attached clinic has left the program's list: until a replacement of the same category "
                    "is chosen, the person is served through the console",
                    {"attached_clinic_id": person.attached_clinic_id, "on": today.isoformat()},
                ),
            )
        else:
            letters = [
                to_attachment_letter_facts(letter) for letter in await repo.attachment_letters_of(session, person.id)
            ]
            decision = attachment_effective(letters, today, clinic_id=person.attached_clinic_id)
            effective = decision.allowed
            why = () if effective else tuple(decision.reasons)
    return rules.referral_route(
        person.service_type,
        person.attached_clinic_id,
        attachment_effective=effective,
        referral_specialty=referral_specialty,
        attachment_reasons=why,
    )


def _outcome_reason(completion: rules.Completion, route_kind: str | None) -> Reason:
    facts = {"outcome": completion.outcome.value, "icd10_code": completion.icd10_code, "referral_route": route_kind}
    if completion.outcome is rules.Outcome.EMERGENCY:
        return Reason("R10.1", "emergency: the patient is told to call an ambulance (103/112)", facts)
    return Reason(
        "R11.3", f"consultation completed with {completion.outcome.value}, counted as a telemedicine service", facts
    )
