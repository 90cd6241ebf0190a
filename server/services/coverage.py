"""The coverage card (service type, clinic, program, who answers now, letters, visits, applications), a
person's history for the dispatcher, the clinic lists (R2.3, R5.3, R6.4) and the person search (R1, R9)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    InsuredPerson,
)
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.domain.attachment import attachment_effective
from server.domain.clinics import ClinicPurpose, allowed_clinics, check_clinic_choice
from server.domain.consultation_coverage import policy_year
from server.domain.coverage_types import PolicyFacts, ServiceType
from server.domain.errors import InvalidInput, NotFound
from server.domain.insured_list import normalise_phone
from server.domain.routing import DispatchPoint, card_phone, city_key, local_date, person_timezone, who_answers
from server.domain.service_type import recommended_service_type
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    to_attachment_letter_facts,
    to_clinic_facts,
    to_insured_facts,
    to_policy_facts,
    to_program_facts,
)
from server.services.decisions import reasons_json
from server.services.dispatch_common import points_txn, require_person_txn
from server.services.dispatch_views import (
    ApplicationView,
    AttachmentView,
    ClinicOption,
    ClinicView,
    DecisionView,
    EventView,
    LetterView,
    RequestView,
    RoutingView,
    TelemedicineView,
    VisitView,
    attachment_letter_view,
    clinic_view,
    decision_view,
    event_view,
    letter_view,
    request_view,
    routing_view,
    visit_view,
)
from server.services.identity import Principal
from server.services.program_change import applications_txn

log = logging.getLogger(__name__)

DEFAULT_CLINIC_TIMEZONE: Final = ZoneInfo("Europe/Moscow")
RESOURCE_PERSON: Final = "insured_person"
HISTORY_LIMIT: Final = 100


@dataclass(frozen=True, slots=True)
class ProgramView:
    """The person's program: components (R10.1), price category (R5.3), service types (R4.1, R8)."""

    id: int
    name: str
    components: list[str]
    price_category: int
    registry_offered: bool
    recommended_service_type: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The person's policy: period and payment mode (R7.3, R10.2)."""

    id: int
    number: str
    policyholder: str
    starts_on: date
    ends_on: date
    payment_mode: str
    valid_today: bool


@dataclass(frozen=True, slots=True)
class CoverageCard:
    """Everything the insured person's card shows (and the dispatcher sees first)."""

    insured_person_id: int
    full_name: str
    city: str
    today: date
    service_type: str
    attached_clinic: ClinicView | None
    attachment: AttachmentView | None
    program: ProgramView
    policy: PolicyView
    answers_now: RoutingView
    card_phone: RoutingView
    telemedicine: TelemedicineView
    letters: list[LetterView]
    open_events: list[EventView]
    visits: list[VisitView]
    requests: list[RequestView]
    applications: list[ApplicationView]
    pass_photo_on_file: bool


@dataclass(frozen=True, slots=True)
class PersonSummary:
    """A person found by the console: enough to pick the right one on the phone."""

    id: int
    full_name: str
    birth_date: date
    city: str
    policy_number: str
    service_type: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class PersonHistory:
    """The dispatcher's view of a person: the card plus every event, request and decision."""

    card: CoverageCard
    events: list[EventView]
    requests: list[RequestView]
    decisions: list[DecisionView]


# ----------------------------------------------------------------------------- the coverage card


async def _letters_txn(session: AsyncSession, person_id: int, today: date, policy: PolicyFacts) -> list[LetterView]:
    letters = await repo.letters_of_person(session, person_id, limit=HISTORY_LIMIT)
    clinics = await coverage_repo.clinics_by_ids(session, (letter.clinic_id for letter in letters))
    return [letter_view(letter, clinics[letter.clinic_id], today, policy) for letter in letters]


async def visits_txn(session: AsyncSession, person_id: int, points: Sequence[DispatchPoint]) -> list[VisitView]:
    """A person's visits with everything R2.6 asks to tell them, in the clinic's local time."""
    rows = await repo.visits_of_person(session, person_id)
    clinics = await coverage_repo.clinics_by_ids(session, (visit.clinic_id for visit, _ in rows))
    return [visit_view(visit, letter, clinics[visit.clinic_id], points) for visit, letter in rows]


async def card_txn(session: AsyncSession, person: InsuredPerson, now: datetime) -> CoverageCard:
    """Build the coverage card of ``person`` inside an open transaction.

    Args:
        session: The open session.
        person: The insured person.
        now: The current moment (aware UTC).

    Returns:
        The card.
    """
    points = await points_txn(session)
    # R10.3: "that day" is the person's own local date, the same local time routing uses below.
    today = local_date(now, person_timezone(person.city, points))
    policy = await coverage_repo.get_policy(session, person.policy_id)
    assert policy is not None  # a foreign key guarantees it
    program = await coverage_repo.get_program(session, policy.program_id)
    assert program is not None
    program_facts = to_program_facts(program)
    holder = await coverage_repo.policyholder_name(session, policy.policyholder_id)

    attached: ClinicView | None = None
    attachment: AttachmentView | None = None
    if person.attached_clinic_id is not None:
        clinic = await coverage_repo.get_clinic(session, person.attached_clinic_id)
        attached = clinic_view(clinic) if clinic else None
    if person.service_type == ServiceType.REGISTRY.value:
        rows = await repo.attachment_letters_of_person(session, person.id)
        decision = attachment_effective(
            [to_attachment_letter_facts(row) for row in rows], today, clinic_id=person.attached_clinic_id
        )
        attachment = AttachmentView(
            effective=decision.allowed,
            reasons=reasons_json(decision.reasons),
            letters=[attachment_letter_view(row) for row in rows],
        )

    routing = who_answers(person.city, points, now)
    printed = card_phone(person.city, points)
    # R11.4: the allowance counts per policy year (the one containing that day, clamped to the policy).
    period = policy_year(policy.starts_on, policy.ends_on, min(max(today, policy.starts_on), policy.ends_on))
    used = await coverage_repo.telemedicine_used_between(session, person.id, period.starts_on, period.ends_on)
    allowance = program.telemedicine_allowance_per_year
    recommended, why = recommended_service_type(program_facts)
    requests = [r for r in await repo.requests_of_person(session, person.id) if r.status in ("open", "in_progress")]
    return CoverageCard(
        insured_person_id=person.id,
        full_name=person.full_name,
        city=person.city,
        today=today,
        service_type=person.service_type,
        attached_clinic=attached,
        attachment=attachment,
        program=ProgramView(
            id=program.id,
            name=program.name,
            components=sorted(program_facts.components),
            price_category=program.price_category,
            registry_offered=program.registry_offered,
            recommended_service_type=recommended.value,
            recommendation=why.message,
        ),
        policy=PolicyView(
            id=policy.id,
            number=policy.number,
            policyholder=holder,
            starts_on=policy.starts_on,
            ends_on=policy.ends_on,
            payment_mode=policy.payment_mode,
            valid_today=policy.starts_on <= today <= policy.ends_on,
        ),
        answers_now=routing_view(routing.point, routing.reasons, routing.local_time),
        card_phone=routing_view(printed.point, printed.reasons, None),
        telemedicine=TelemedicineView(
            year=today.year, allowance_per_year=allowance, used=used, left=max(0, allowance - used)
        ),
        letters=await _letters_txn(session, person.id, today, to_policy_facts(policy)),
        open_events=[event_view(e) for e in await repo.events_of_person(session, person.id, statuses=["open"])],
        visits=await visits_txn(session, person.id, points),
        requests=[request_view(r, person) for r in requests],
        applications=await applications_txn(session, person.id),
        pass_photo_on_file=person.has_pass_photo,
    )


async def my_coverage(ctx: ServiceContext, principal: Principal) -> CoverageCard:
    """The insured person's own coverage card (the read is audited, checklist D1).

    Args:
        ctx: The service context.
        principal: The insured person.

    Returns:
        The card.

    Raises:
        NotFound: the person no longer exists.
    """
    async with ctx.uow() as uow:
        person = await require_person_txn(uow.session, principal.subject_id)
        card = await card_txn(uow.session, person, ctx.clock.now())
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="coverage.read",
            resource_type=RESOURCE_PERSON,
            resource_id=person.id,
            patient_id=person.id,
        )
        await uow.commit()
    return card


async def person_history(ctx: ServiceContext, principal: Principal, person_id: int) -> PersonHistory:
    """A person's card and full history for the dispatcher (the read is audited, checklist D1).

    Args:
        ctx: The service context.
        principal: The dispatcher.
        person_id: The insured person.

    Returns:
        The card, every insured event, queue item and coverage decision.

    Raises:
        NotFound: no such person.
    """
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, person_id)
        card = await card_txn(session, person, ctx.clock.now())
        events = await repo.events_of_person(session, person.id, limit=HISTORY_LIMIT)
        requests = await repo.requests_of_person(session, person.id, limit=HISTORY_LIMIT)
        decisions = await repo.decisions_of_person(session, person.id, limit=HISTORY_LIMIT)
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="coverage.read",
            resource_type=RESOURCE_PERSON,
            resource_id=person.id,
            patient_id=person.id,
        )
        await uow.commit()
    return PersonHistory(
        card=card,
        events=[event_view(e) for e in events],
        requests=[request_view(r, person) for r in requests],
        decisions=[decision_view(d) for d in decisions],
    )


async def clinic_options(
    ctx: ServiceContext, person_id: int, purpose: str, *, city: str | None = None
) -> list[ClinicOption]:
    """The clinics a person may be sent to (R2.3) or attached to (R5.3), each noting R6.4 passes.

    Args:
        ctx: The service context.
        person_id: The insured person.
        purpose: ``visit`` or ``attachment``.
        city: Only clinics of this city.

    Returns:
        Only allowed clinics, by city and name.

    Raises:
        NotFound: no such person.
    """
    chosen = ClinicPurpose(purpose)
    async with ctx.uow() as uow:
        found = await coverage_repo.person_policy_program(uow.session, person_id)
        if found is None:
            raise NotFound("no such insured person")
        person, _policy, program = found
        clinics = await coverage_repo.program_clinics(uow.session, program.id)
        program_facts = to_program_facts(program, (c.id for c in clinics))
        insured = to_insured_facts(person)
        by_id = {c.id: c for c in clinics}
        facts = [to_clinic_facts(c) for c in clinics if city is None or city_key(c.city) == city_key(city)]
        target = ServiceType.REGISTRY if chosen is ClinicPurpose.ATTACHMENT else None
        options = []
        for clinic in allowed_clinics(program_facts, facts, target):
            choice = check_clinic_choice(program_facts, clinic, chosen, insured)
            options.append(
                ClinicOption(
                    clinic=clinic_view(by_id[clinic.id]),
                    needs_pass_photo=choice.needs_pass_photo,
                    reasons=reasons_json(choice.reasons),
                )
            )
        return options


async def find_persons(
    ctx: ServiceContext,
    *,
    policy_number: str | None = None,
    name: str | None = None,
    birth_date: date | None = None,
    phone: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[PersonSummary]:
    """Find insured persons by policy number, name, birth date and/or phone, for a dispatcher taking a call.

    Args:
        ctx: The service context.
        policy_number: Exact policy number.
        name: Part of the full name (case-insensitive).
        birth_date: Exact birth date.
        phone: The caller's number as typed (``8 916 123-45-67``); compared in E.164.
        limit: Page size.
        offset: Persons to skip (``offset = page * limit``).

    Returns:
        One page of persons, by name.

    Raises:
        InvalidInput: no criterion given, or a phone that is not a valid number.
    """
    if not (policy_number or name or birth_date or phone):
        raise InvalidInput("give a policy number, a name, a birth date or a phone", code="search_criteria_required")
    e164: str | None = None
    if phone:
        e164 = normalise_phone(phone)
        if e164 is None:
            raise InvalidInput("the phone is not a valid number", code="invalid_phone")
    async with ctx.uow() as uow:
        rows = await coverage_repo.find_persons(
            uow.session,
            policy_number=policy_number,
            name=name,
            birth_date=birth_date,
            phone=e164,
            limit=limit,
            offset=offset,
        )
        return [
            PersonSummary(
                id=person.id,
                full_name=person.full_name,
                birth_date=person.birth_date,
                city=person.city,
                policy_number=policy.number,
                service_type=person.service_type,
                is_active=person.is_active,
            )
            for person, policy in rows
        ]
