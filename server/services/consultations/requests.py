"""An insured person asks for a consultation (R10.2, R11), and their yearly telemedicine allowance (R11.3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    Consultation,
)
from server.db.repositories import consultations as repo
from server.domain import consultation as rules
from server.domain import red_flags as red_flag_rules
from server.domain import roster as roster_rules
from server.domain.consultation_coverage import PolicyYear, policy_year
from server.domain.coverage import evaluate_coverage
from server.domain.decisions import Reason
from server.domain.errors import Conflict, NotFound, RuleViolation
from server.domain.escalation import EscalationReason
from server.domain.routing import local_date, person_timezone
from server.services import audit, consents
from server.services import consultation_safety as safety
from server.services.consultations.assignment import assign_soon
from server.services.consultations.common import COMPONENT, RESOURCE, announce
from server.services.consultations.views import AllowanceView, ConsultationView, view_for
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    load_coverage_records,
)
from server.services.identity import Principal
from server.services.roster import ensure_gap_alert_now

log = logging.getLogger(__name__)


async def request_consultation(
    ctx: ServiceContext,
    principal: Principal,
    *,
    channel: str,
    specialty: str,
    complaints: str,
    red_flags: Mapping[str, object] | None = None,
    confirm_urgent: bool = False,
) -> ConsultationView:
    """An insured person asks for a consultation; it is checked, queued and offered (R10.2, R11).

    Args:
        ctx: Service context.
        principal: The insured person.
        channel: ``text``, ``audio`` or ``video``.
        specialty: ``general_practice`` or another telemedicine specialty.
        complaints: What the person complains of (1-2000 characters).
        red_flags: The answers to the red-flag checklist (R11.6), every question true or false.
        confirm_urgent: After being told to call 103/112 the patient still asks for an urgent consultation.

    Returns:
        The queued (or already offered) consultation with its queue position and estimated wait.
        If nobody of the specialty is on duty it is still queued, the view says so, and for
        general practice the roster gap is raised as an alert (R11.2).

    Raises:
        InvalidInput: unknown specialty or channel, empty or too long complaints.
        RuleViolation: no telemedicine in the program or policy not valid today (R10.1, R10.2,
            R2.2), or the yearly allowance is used up (R11.3).
        Conflict: ``consultation_open`` when the person already has an open consultation.
        RuleViolation: ``red_flags_call_emergency`` (R11.6) when a red flag is "yes" and the patient has
            not yet confirmed after being told to call 103/112.
        ConsentRequired: 428 ``consent_required`` without both consents (checklist E1).
    """
    request = rules.validate_request(complaints, specialty, channel)
    assessment = red_flag_rules.assess_red_flags(red_flags)
    if assessment.urgent and not confirm_urgent:
        notice = safety.red_flag_notice(assessment.flags)
        raise RuleViolation(
            str(notice["en"]),
            code=red_flag_rules.ERR_CALL_EMERGENCY,
            reasons=(
                Reason("R11.6", "a red flag was answered yes: call 103/112 now", {"flags": list(assessment.flags)}),
            ),
            details={**notice, "confirm_with": {"confirm_urgent": True}},
        )
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        person = await repo.lock_insured_person(session, principal.subject_id)
        if person is None:
            raise NotFound("no such insured person")
        today = local_date(now, person_timezone(person.city))  # R10.3: the person's own date
        await consents.require_txn(session, person.id)
        records = await load_coverage_records(session, person)
        coverage = evaluate_coverage(records.insured, records.policy_facts, records.program_facts, COMPONENT, today)
        if not coverage.allowed:
            raise RuleViolation(
                "telemedicine is not covered for you today: " + "; ".join(r.message for r in coverage.reasons[1:]),
                reasons=coverage.reasons,
                details={"refusal": "not_covered"},
            )
        existing = await repo.open_consultation_of(session, person.id)
        if existing is not None:
            raise Conflict(
                "you already have an open consultation; finish or cancel it first",
                code="consultation_open",
                details={"consultation_id": existing.id, "status": existing.status},
            )
        period = policy_year(records.policy.starts_on, records.policy.ends_on, today)
        used, pending = await _allowance_counts(session, person.id, period)
        allowance = rules.check_allowance(
            used, records.program.telemedicine_allowance_per_year, period=period, pending=pending
        )
        if not allowance.allowed:
            raise RuleViolation(
                allowance.reasons[0].message,
                reasons=allowance.reasons,
                details={"refusal": "allowance_used_up"},
            )
        consultation = Consultation(
            insured_person_id=person.id,
            policyholder_id=records.policy.policyholder_id,
            department=person.department,
            channel=request.channel.value,
            specialty=request.specialty,
            complaints=request.complaints,
            status=rules.Status.QUEUED.value,
            skipped_doctor_ids=[],
            referral_services=[],
            last_seq=0,
            requested_at=now,
            red_flags=assessment.as_dict(),
            urgent=assessment.urgent,
            lapses=0,
        )
        session.add(consultation)
        await session.flush()
        if assessment.urgent:
            await safety.urgent_request_txn(ctx, uow, consultation, now)
        consultation_id = consultation.id
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="consultation.request",
            resource_type=RESOURCE,
            resource_id=consultation.id,
            patient_id=person.id,
        )
        announce(ctx, uow, consultation, rules.Status.QUEUED.value)
        await uow.commit()
    log.info("consultation %s queued (%s, %s)", consultation_id, request.specialty, request.channel.value)
    await assign_soon(ctx, request.specialty)
    view = await view_for(ctx, consultation_id, principal)
    if view.doctors_on_duty == 0:
        log.warning(
            "consultation %s queued with no %s doctor on duty%s",
            consultation_id,
            request.specialty,
            " (R11.2 roster gap)" if request.specialty in roster_rules.ALWAYS_COVERED else "",
        )
        await ensure_gap_alert_now(ctx, request.specialty)
        async with ctx.uow() as uow:
            row = await repo.get_consultation(uow.session, consultation_id)
            if row is not None and row.escalated_at is None:
                await safety.escalate_txn(ctx, uow, row, EscalationReason.NOBODY_ON_DUTY, ctx.clock.now())
                await uow.commit()
        view = await view_for(ctx, consultation_id, principal)
    return view


async def _allowance_counts(session: AsyncSession, person_id: int, period: PolicyYear) -> tuple[int, int]:
    """Services used in the policy year (R11.4) and the consultations still open."""
    used = await repo.telemedicine_used_between(session, person_id, period.starts_on, period.ends_on)
    pending = await repo.count_open_consultations(session, person_id)
    return used, pending


async def telemedicine_allowance(ctx: ServiceContext, person_id: int) -> AllowanceView:
    """How many consultations the person has left this year (R11.3): allowance - used - open.

    Raises:
        NotFound: no such person.
    """
    async with ctx.uow() as uow:
        person = await repo.get_person(uow.session, person_id)
        if person is None:
            raise NotFound("no such insured person")
        today = local_date(ctx.clock.now(), person_timezone(person.city))  # R10.3
        records = await load_coverage_records(uow.session, person)
        policy = records.policy
        day = min(max(today, policy.starts_on), policy.ends_on)
        used, pending = await _allowance_counts(
            uow.session, person_id, policy_year(policy.starts_on, policy.ends_on, day)
        )
        allowance = records.program.telemedicine_allowance_per_year
    return AllowanceView(
        year=today.year, allowance_per_year=allowance, used=used, open=pending, left=max(0, allowance - used - pending)
    )
