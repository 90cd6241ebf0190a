"""The employer signs a corporate employee's application to switch to registry (R4.2).

For a corporate policy the policyholder is the employer: the employee asks
(``program_change.request_service_type_change`` leaves the application ``submitted``), and the
employer's representative, an ``hr`` account bound to that policyholder, approves and signs it.
Only then is the additional agreement drawn up (R4.3) and the additional premium put on the
employer's (the policy's) schedule (R4.4). HR may also refuse, with a reason the employee sees.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import InsuredPerson, Policy, Policyholder, ProgramChangeApplication
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.db.repositories import hr as hr_repo
from server.domain.decisions import Reason
from server.domain.errors import Conflict, NotFound, RuleViolation
from server.domain.service_type import plan_additional_agreement
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import load_coverage_records, to_clinic_facts
from server.services.decisions import record_decision_txn, record_refusal
from server.services.dispatch_common import today_of
from server.services.dispatch_views import ApplicationView, application_view
from server.services.identity import Principal
from server.services.program_change import issue_agreement_txn

RESOURCE = "program_change_application"


async def _company_txn(session: AsyncSession, principal: Principal) -> Policyholder:
    company = await hr_repo.hr_policyholder_of(session, principal.subject_id)
    if company is None or company.kind != "corporate":
        raise NotFound("no such application")
    return company


async def _views_txn(session: AsyncSession, rows: list[ProgramChangeApplication]) -> list[ApplicationView]:
    views = []
    for application in rows:
        clinic = await coverage_repo.get_clinic(session, application.clinic_id)
        assert clinic is not None  # foreign key
        views.append(application_view(application, clinic, None, [], set()))
    return views


async def pending_applications(ctx: ServiceContext, principal: Principal) -> list[ApplicationView]:
    """The applications of the HR user's own company waiting for approval and signature (R4.2), oldest first."""
    async with ctx.uow() as uow:
        session = uow.session
        company = await _company_txn(session, principal)
        stmt = (
            select(ProgramChangeApplication)
            .join(Policy, Policy.id == ProgramChangeApplication.policy_id)
            .where(Policy.policyholder_id == company.id, ProgramChangeApplication.status == "submitted")
            .order_by(ProgramChangeApplication.created_at, ProgramChangeApplication.id)
        )
        rows = list((await session.execute(stmt)).scalars())
        views = await _views_txn(session, rows)
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="hr.applications.read",
            resource_type=RESOURCE,
            resource_id="pending",
            patient_id=None,
        )
        await uow.commit()
    return views


async def _own_submitted_txn(
    session: AsyncSession, principal: Principal, application_id: int
) -> tuple[ProgramChangeApplication, InsuredPerson]:
    company = await _company_txn(session, principal)
    application = await repo.get_application(session, application_id, for_update=True)
    policy = await session.get(Policy, application.policy_id) if application is not None else None
    if application is None or policy is None or policy.policyholder_id != company.id:
        raise NotFound("no such application")  # another company's application is not revealed
    if application.status != "submitted":
        raise Conflict(
            f"application {application_id} is {application.status}, not waiting for approval",
            code="application_not_pending",
            details={"status": application.status},
        )
    person = await coverage_repo.get_person(session, application.insured_person_id, for_update=True)
    assert person is not None  # foreign key
    return application, person


async def approve_application(ctx: ServiceContext, principal: Principal, application_id: int) -> ApplicationView:
    """HR of the policyholder approves and signs (R4.2): the agreement (R4.3) and the schedule (R4.4) follow.

    The switch is checked again on the day of signing (R4.1, R5, R7.7: time may have passed); a
    refusal rejects the application with its reasons, recorded, and is answered 422.

    Raises:
        NotFound: not an application of the HR user's company.
        Conflict: it is not waiting for approval (``application_not_pending``).
        RuleViolation: the switch is no longer allowed (the rule that refused it).
    """
    today = today_of(ctx)
    now = ctx.clock.now()
    refusal: RuleViolation | None = None
    async with ctx.uow() as uow:
        session = uow.session
        application, person = await _own_submitted_txn(session, principal, application_id)
        person_id = person.id
        records = await load_coverage_records(session, person, with_clinics=True)
        clinic = await coverage_repo.get_clinic(session, application.clinic_id)
        assert clinic is not None  # foreign key
        try:
            plan = plan_additional_agreement(
                records.insured, records.program_facts, records.policy_facts, to_clinic_facts(clinic), today
            )
        except RuleViolation as exc:
            refusal = RuleViolation(exc.message, code="change_refused", reasons=exc.reasons)
            application.status = "rejected"
            application.pending_key = None
            application.reasons = [*(application.reasons or []), *(r.as_dict() for r in exc.reasons)]
            await uow.commit()
        else:
            signed = Reason(
                "R4.2",
                "the employer's representative approved and signed the application; the additional agreement is "
                "drawn up and the additional premium goes on the employer's schedule",
                {"approved_by": principal.subject_id, "on": today.isoformat()},
            )
            application.approved_by = principal.subject_id
            application.approved_at = now
            application.additional_premium = plan.premium
            application.reasons = [*(application.reasons or []), signed.as_dict()]
            agreement, schedule = await issue_agreement_txn(session, application, plan, today, now)
            record_decision_txn(
                session,
                person_id=person.id,
                kind="service_type_change",
                allowed=True,
                reasons=[*plan.reasons, signed],
                subject={
                    "application_id": application.id,
                    "agreement_number": agreement.number,
                    "additional_premium": str(plan.premium),
                    "effective": False,
                },
                principal=principal,
                now=now,
            )
            await audit.record_txn(
                ctx,
                session,
                principal,
                action="service_type_change.approve",
                resource_type=RESOURCE,
                resource_id=application.id,
                patient_id=person.id,
            )
            await uow.commit()
            return application_view(application, clinic, agreement, schedule, set())
    assert refusal is not None
    await record_refusal(
        ctx,
        principal,
        person_id=person_id,
        kind="service_type_change",
        error=refusal,
        subject={"application_id": application_id},
    )
    raise refusal


async def refuse_application(
    ctx: ServiceContext, principal: Principal, application_id: int, reason: str
) -> ApplicationView:
    """HR of the policyholder refuses to sign (R4.2): nothing is charged; the employee sees the reason.

    Raises:
        NotFound: not an application of the HR user's company.
        Conflict: it is not waiting for approval.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        application, person = await _own_submitted_txn(session, principal, application_id)
        refused = Reason(
            "R4.2",
            "the employer (the policyholder) did not sign the application: " + reason.strip(),
            {"refused_by": principal.subject_id},
        )
        application.status = "rejected"
        application.pending_key = None
        application.reasons = [*(application.reasons or []), refused.as_dict()]
        record_decision_txn(
            session,
            person_id=person.id,
            kind="service_type_change",
            allowed=False,
            reasons=[refused],
            subject={"application_id": application.id},
            principal=principal,
            now=now,
        )
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="service_type_change.refuse",
            resource_type=RESOURCE,
            resource_id=application.id,
            patient_id=person.id,
        )
        clinic = await coverage_repo.get_clinic(session, application.clinic_id)
        assert clinic is not None
        await uow.commit()
        return application_view(application, clinic, None, [], set())
