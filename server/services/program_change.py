"""Changing the service type: the R4.2 application, the additional agreement and its premium schedule
(R4.1-R4.5), refusals R5.1-R5.3, and the printable application. Activation on payment is in payments.py (R4.6)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AdditionalAgreement,
    AttachmentLetter,
    Clinic,
    Policyholder,
    ProgramChangeApplication,
    ScheduledPayment,
)
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.db.uow import UnitOfWork
from server.domain.attachment import (
    ATTACHMENT_LETTER_PREFIX,
    format_attachment_letter_number,
    replacement_attachment_letter,
)
from server.domain.coverage_types import ServiceType, parse_service_type
from server.domain.decisions import Reason
from server.domain.errors import Conflict, NotFound, RuleViolation
from server.domain.letters import format_number
from server.domain.service_type import (
    AdditionalAgreementPlan,
    check_service_type_change,
    money_text,
    plan_additional_agreement,
)
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage_facts import (
    CoverageRecords,
    load_coverage_records,
    to_attachment_letter_facts,
    to_clinic_facts,
    to_insured_facts,
)
from server.services.decisions import reasons_json, record_decision_txn, record_refusal, rule_violation
from server.services.dispatch_common import require_person_txn, today_of
from server.services.dispatch_views import ApplicationView, ClinicView, ReasonJson, application_view, clinic_view
from server.services.identity import Principal

AGREEMENT_PREFIX: Final = "AA"
IN_FLIGHT: Final = ("submitted", "agreement_issued")


@dataclass(frozen=True, slots=True)
class ServiceTypeChange:
    """The outcome of asking for a service type change.

    Attributes:
        service_type: The person's type now (unchanged until R4.6 for a change during the policy).
        attached_clinic: The attached clinic now.
        effective: The change already applies (chosen before the policy started, R1.4).
        application: The R4.2 application with its additional agreement and schedule, during the policy.
        reasons: Why it was allowed, with the premium and the next steps.
    """

    service_type: str
    attached_clinic: ClinicView | None
    effective: bool
    application: ApplicationView | None
    reasons: list[ReasonJson]


def _conflict_in_flight(application_id: int | None) -> Conflict:
    return Conflict(
        "a service type change application is already in progress for this person",
        code="application_in_flight",
        details={"application_id": application_id} if application_id else {},
    )


async def request_service_type_change(
    ctx: ServiceContext, principal: Principal, *, service_type: str, clinic_id: int | None
) -> ServiceTypeChange:
    """Ask to change the insured person's service type (R1.4, R4, R5).

    During the policy, dispatcher -> registry produces the R4.2 application naming one clinic, the
    additional agreement (R4.3) and its premium schedule (R4.4, R4.5); the change takes effect when
    the first additional payment is bundled (R4.6). On a corporate policy the employee only asks: the
    application waits, without agreement or schedule, for HR of the policyholder to approve and sign
    it (R4.2, ``program_signing``). Before the policy starts the type is simply
    chosen (R1.4). A concurrent double submission gets 409: the person's row is locked, and the
    unique ``pending_key`` refuses a second application in flight even without the lock.

    Args:
        ctx: The service context.
        principal: The insured person.
        service_type: ``registry`` or ``dispatcher``.
        clinic_id: The one clinic to attach (registry).

    Returns:
        What changed or was drawn up, and why.

    Raises:
        InvalidInput: an unknown service type (R1.1).
        RuleViolation: R4.1, R5.1, R5.2, R5.3, R2.3, R1.3 ... (the refusal is recorded).
        Conflict: an application is already in flight.
    """
    target = parse_service_type(service_type)
    now = ctx.clock.now()
    today = today_of(ctx)
    subject: dict[str, Any] = {"target": target.value, "clinic_id": clinic_id, "on": today.isoformat()}
    refusal: RuleViolation | None = None
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, principal.subject_id, for_update=True)
        pending = await repo.pending_application(session, person.id)
        if pending is not None:
            raise _conflict_in_flight(pending.id)
        records = await load_coverage_records(session, person, with_clinics=True)
        clinic = await coverage_repo.get_clinic(session, clinic_id) if clinic_id is not None else None
        if clinic_id is not None and clinic is None:
            refusal = rule_violation(
                "R2.3",
                f"clinic {clinic_id} is not known: choose a clinic from the program's list",
                {"clinic_id": clinic_id},
                code="unknown_clinic",
            )
        elif target is ServiceType.DISPATCHER or (
            today < records.policy.starts_on and records.insured.service_type is ServiceType.REGISTRY
        ):
            decision = check_service_type_change(
                records.insured,
                records.program_facts,
                records.policy_facts,
                target,
                to_clinic_facts(clinic) if clinic else None,
                today,
            )
            if not decision.allowed:
                refusal = RuleViolation(decision.reasons[0].message, code="change_refused", reasons=decision.reasons)
            else:
                # Before the policy starts (R1.4): the type is chosen, not changed. Registry itself is
                # priced through the agreement path below; here only a clinic re-chosen or a return to dispatcher.
                person.service_type = target.value
                person.attached_clinic_id = clinic.id if clinic and target is ServiceType.REGISTRY else None
                record_decision_txn(
                    session,
                    person_id=person.id,
                    kind="service_type_change",
                    allowed=True,
                    reasons=decision.reasons,
                    subject={**subject, "effective": True},
                    principal=principal,
                    now=now,
                )
                await audit.record_txn(
                    ctx,
                    session,
                    principal,
                    action="service_type.choose",
                    resource_type="insured_person",
                    resource_id=person.id,
                    patient_id=person.id,
                )
                await uow.commit()
                return ServiceTypeChange(
                    service_type=person.service_type,
                    attached_clinic=clinic_view(clinic) if person.attached_clinic_id and clinic else None,
                    effective=True,
                    application=None,
                    reasons=reasons_json(decision.reasons),
                )
        elif records.insured.service_type is ServiceType.REGISTRY and clinic is not None:
            decision = check_service_type_change(
                records.insured, records.program_facts, records.policy_facts, target, to_clinic_facts(clinic), today
            )
            if not decision.allowed or "R5.4" not in decision.rules:
                refusal = RuleViolation(decision.reasons[0].message, code="change_refused", reasons=decision.reasons)
            else:
                return await _replace_clinic_txn(ctx, uow, principal, records, clinic, decision.reasons, subject, now)
        elif clinic is None:
            decision = check_service_type_change(
                records.insured, records.program_facts, records.policy_facts, target, None, today
            )  # registry needs exactly one clinic, chosen now (R1.3)
            refusal = RuleViolation(decision.reasons[0].message, code="change_refused", reasons=decision.reasons)
        else:
            try:
                plan = plan_additional_agreement(
                    records.insured, records.program_facts, records.policy_facts, to_clinic_facts(clinic), today
                )
            except RuleViolation as exc:
                refusal = RuleViolation(exc.message, code="change_refused", reasons=exc.reasons)
            else:
                holder = await session.get(Policyholder, records.policy.policyholder_id)
                corporate = holder is not None and holder.kind == "corporate"
                reasons = list(plan.reasons)
                if corporate:
                    # R4.2: the employer is the policyholder: the employee asks, HR approves and signs.
                    reasons.append(
                        Reason(
                            "R4.2",
                            "the policy is corporate: the application waits for the employer's HR to approve and "
                            "sign it; the agreement and the additional premium on the employer's schedule follow",
                            {"policyholder_id": records.policy.policyholder_id},
                        )
                    )
                application = ProgramChangeApplication(
                    insured_person_id=person.id,
                    policy_id=records.policy.id,
                    clinic_id=clinic.id,
                    status="submitted" if corporate else "agreement_issued",
                    additional_premium=plan.premium,
                    pending_key=person.id,
                    created_at=now,
                    reasons=reasons_json(reasons),
                )
                session.add(application)
                try:
                    await session.flush()
                except IntegrityError as exc:
                    raise _conflict_in_flight(None) from exc
                agreement: AdditionalAgreement | None = None
                schedule: list[ScheduledPayment] = []
                if not corporate:
                    agreement, schedule = await issue_agreement_txn(session, application, plan, today, now)
                record_decision_txn(
                    session,
                    person_id=person.id,
                    kind="service_type_change",
                    allowed=True,
                    reasons=reasons,
                    subject={
                        **subject,
                        "application_id": application.id,
                        "agreement_number": agreement.number if agreement else None,
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
                    action="service_type_change.submit",
                    resource_type="program_change_application",
                    resource_id=application.id,
                    patient_id=person.id,
                )
                await uow.commit()
                current = await _attached_view(ctx, person.attached_clinic_id)
                return ServiceTypeChange(
                    service_type=person.service_type,
                    attached_clinic=current,
                    effective=False,
                    application=application_view(application, clinic, agreement, schedule, set()),
                    reasons=reasons_json(reasons),
                )
    assert refusal is not None
    await record_refusal(
        ctx, principal, person_id=principal.subject_id, kind="service_type_change", error=refusal, subject=subject
    )
    raise refusal


async def issue_agreement_txn(
    session: AsyncSession,
    application: ProgramChangeApplication,
    plan: AdditionalAgreementPlan,
    today: date,
    now: datetime,
) -> tuple[AdditionalAgreement, list[ScheduledPayment]]:
    """The additional agreement (R4.3) and its premium schedule on the policy's schedule (R4.4, R4.5)."""
    seq = await repo.next_document_seq_txn(session, AdditionalAgreement.number, AGREEMENT_PREFIX, today.year)
    agreement = AdditionalAgreement(
        number=format_number(AGREEMENT_PREFIX, today.year, seq),
        application_id=application.id,
        policy_id=application.policy_id,
        premium=plan.premium,
        agreed_on=today,
        created_at=now,
    )
    session.add(agreement)
    await session.flush()
    schedule = [
        ScheduledPayment(
            policy_id=application.policy_id,
            due_on=payment.due_on,
            amount=payment.amount,
            purpose="additional_premium",
            additional_agreement_id=agreement.id,
        )
        for payment in plan.schedule
    ]
    session.add_all(schedule)
    await session.flush()
    application.status = "agreement_issued"
    return agreement, schedule


async def _replace_clinic_txn(
    ctx: ServiceContext,
    uow: UnitOfWork,
    principal: Principal,
    records: CoverageRecords,
    clinic: Clinic,
    reasons: Sequence[Reason],
    subject: dict[str, Any],
    now: datetime,
) -> ServiceTypeChange:
    """R5.4: the attached clinic left the program; the person names a replacement of the same category.

    No additional premium: the person already pays for registry. The time already paid carries
    over to the new clinic with an attachment letter sent the next business day; no letter goes to
    the clinic that left.
    """
    session = uow.session
    person = records.person
    previous = [to_attachment_letter_facts(row) for row in await repo.attachment_letters_of_person(session, person.id)]
    person.attached_clinic_id = clinic.id
    today = today_of(ctx)
    plan = replacement_attachment_letter(
        to_insured_facts(person), records.policy_facts, to_clinic_facts(clinic), today, previous
    )
    all_reasons = list(reasons)
    if plan is not None:
        seq = await repo.next_document_seq_txn(session, AttachmentLetter.number, ATTACHMENT_LETTER_PREFIX, today.year)
        last_payment = max(
            (row.payment_id for row in await repo.attachment_letters_of_person(session, person.id)), default=None
        )
        assert last_payment is not None  # a running letter was found, so a payment made it
        session.add(
            AttachmentLetter(
                number=format_attachment_letter_number(today.year, seq),
                insured_person_id=person.id,
                clinic_id=clinic.id,
                payment_id=last_payment,
                generated_on=plan.generated_on,
                send_on=plan.send_on,
                valid_from=plan.valid_from,
                valid_until=plan.valid_until,
            )
        )
        all_reasons.extend(plan.reasons)
    await session.flush()
    record_decision_txn(
        session,
        person_id=person.id,
        kind="service_type_change",
        allowed=True,
        reasons=all_reasons,
        subject={**subject, "effective": True, "replacement": True},
        principal=principal,
        now=now,
    )
    await audit.record_txn(
        ctx,
        session,
        principal,
        action="service_type.replace_clinic",
        resource_type="insured_person",
        resource_id=person.id,
        patient_id=person.id,
    )
    await uow.commit()
    return ServiceTypeChange(
        service_type=person.service_type,
        attached_clinic=clinic_view(clinic),
        effective=True,
        application=None,
        reasons=reasons_json(all_reasons),
    )


async def _attached_view(ctx: ServiceContext, clinic_id: int | None) -> ClinicView | None:
    if clinic_id is None:
        return None
    async with ctx.uow() as uow:
        clinic = await coverage_repo.get_clinic(uow.session, clinic_id)
    return clinic_view(clinic) if clinic else None


async def _own_application(ctx: ServiceContext, principal: Principal, application_id: int) -> ApplicationView:
    async with ctx.uow() as uow:
        application = await repo.get_application(uow.session, application_id)
        if application is None or application.insured_person_id != principal.subject_id:
            raise NotFound("no such application")
        clinic = await coverage_repo.get_clinic(uow.session, application.clinic_id)
        agreements = await repo.agreements_of_applications(uow.session, [application.id])
        agreement = agreements.get(application.id)
        schedules = await repo.agreement_schedules(uow.session, [agreement.id] if agreement else [])
        schedule = schedules.get(agreement.id, []) if agreement else []
        paid = await repo.paid_scheduled_ids(uow.session, (row.id for row in schedule))
        assert clinic is not None
        return application_view(application, clinic, agreement, schedule, paid)


async def withdraw_application(ctx: ServiceContext, principal: Principal, application_id: int) -> ApplicationView:
    """Withdraw an application before any additional premium is bundled; its unpaid schedule is removed.

    Raises:
        NotFound: not the caller's application.
        Conflict: already effective, withdrawn, or money was bundled.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        application = await repo.get_application(session, application_id, for_update=True)
        if application is None or application.insured_person_id != principal.subject_id:
            raise NotFound("no such application")
        if application.status not in IN_FLIGHT:
            raise Conflict(f"the application is already {application.status}", code="application_final")
        agreement = (await repo.agreements_of_applications(session, [application.id])).get(application.id)
        schedule = (await repo.agreement_schedules(session, [agreement.id])).get(agreement.id, []) if agreement else []
        if await repo.paid_scheduled_ids(session, (row.id for row in schedule)):
            raise Conflict("additional premium is already bundled: ask the insurer", code="already_bundled")
        for row in schedule:
            await session.delete(row)
        application.status = "withdrawn"
        application.pending_key = None
        reason = Reason(
            "R4.6",
            "application withdrawn before any additional premium was bundled; nothing changes",
            {"application_id": application.id},
        )
        record_decision_txn(
            session,
            person_id=application.insured_person_id,
            kind="service_type_change_withdrawn",
            allowed=True,
            reasons=[reason],
            subject={"application_id": application.id},
            principal=principal,
            now=now,
        )
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="service_type_change.withdraw",
            resource_type="program_change_application",
            resource_id=application.id,
            patient_id=application.insured_person_id,
        )
        await uow.commit()
    return await _own_application(ctx, principal, application_id)


async def applications_txn(session: AsyncSession, person_id: int) -> list[ApplicationView]:
    """A person's service type change applications with agreements and schedules."""
    applications = await repo.applications_of_person(session, person_id)
    if not applications:
        return []
    agreements = await repo.agreements_of_applications(session, (a.id for a in applications))
    schedules = await repo.agreement_schedules(session, (a.id for a in agreements.values()))
    paid = await repo.paid_scheduled_ids(session, (row.id for rows in schedules.values() for row in rows))
    clinics = await coverage_repo.clinics_by_ids(session, (a.clinic_id for a in applications))
    views = []
    for application in applications:
        agreement = agreements.get(application.id)
        schedule = schedules.get(agreement.id, []) if agreement else []
        views.append(application_view(application, clinics[application.clinic_id], agreement, schedule, paid))
    return views


async def my_applications(ctx: ServiceContext, principal: Principal) -> list[ApplicationView]:
    """The insured person's applications (newest first)."""
    async with ctx.uow() as uow:
        return await applications_txn(uow.session, principal.subject_id)


# ----------------------------------------------------------------------------- the printable application (R4.2)


_PAGE_CSS: Final = """
body { font-family: "Times New Roman", serif; font-size: 12pt; margin: 2cm; color: #000; }
h1 { font-size: 15pt; text-align: center; margin-bottom: 0.2cm; }
p.sub { text-align: center; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 0.3cm 0; }
th, td { border: 1px solid #000; padding: 4px 6px; text-align: left; vertical-align: top; }
.sign { margin-top: 1.5cm; display: flex; justify-content: space-between; }
.sign div { width: 45%; border-top: 1px solid #000; padding-top: 4px; }
@media print { body { margin: 1.5cm; } .noprint { display: none; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


async def application_html(ctx: ServiceContext, principal: Principal, application_id: int) -> str:
    """The print-ready R4.2 application the policyholder signs (every value HTML-escaped).

    Args:
        ctx: The service context.
        principal: The insured person who submitted it.
        application_id: The application.

    Returns:
        A complete HTML page.

    Raises:
        NotFound: not the caller's application.
    """
    view = await _own_application(ctx, principal, application_id)
    async with ctx.uow() as uow:
        session = uow.session
        person = await require_person_txn(session, view.insured_person_id)
        policy = await coverage_repo.get_policy(session, view.policy_id)
        assert policy is not None
        program = await coverage_repo.get_program(session, policy.program_id)
        assert program is not None
        holder = await coverage_repo.policyholder_name(session, policy.policyholder_id)
        await audit.record_txn(
            ctx,
            session,
            principal,
            action="service_type_change.print",
            resource_type="program_change_application",
            resource_id=view.id,
            patient_id=person.id,
        )
        await uow.commit()
    tariff_registry = program.tariff_registry or Decimal(0)
    rows = "".join(
        f"<tr><td>{index}</td><td>{_e(p.due_on.isoformat())}</td><td>{_e(money_text(p.amount))}</td>"
        f"<td>{'paid' if p.paid else 'due'}</td></tr>"
        for index, p in enumerate(view.schedule, start=1)
    )
    clinic = view.clinic
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Application {_e(view.id)} to change the insurance program</title>
<style>{_PAGE_CSS}</style></head>
<body>
<h1>Application to change the insurance program</h1>
<p class="sub">to voluntary health insurance policy No. {_e(policy.number)}
({_e(policy.starts_on.isoformat())} &ndash; {_e(policy.ends_on.isoformat())}), application No. {_e(view.id)}
of {_e(view.created_at.date().isoformat())}</p>
<p>Policyholder: <strong>{_e(holder)}</strong></p>
<p>Insured person: <strong>{_e(person.full_name)}</strong>, born {_e(person.birth_date.isoformat())}</p>
<p>Program: {_e(program.name)} (price category {_e(program.price_category)})</p>
<p>The policyholder asks to change the service type of the insured person from <em>dispatcher</em>
(every insured event approved by the insurer's dispatch console) to <em>registry</em>
(registration through the registry of a health care facility), and names exactly one clinic
from the program for the attachment (R4.2):</p>
<table>
<tr><th>Clinic</th><td>{_e(clinic.name)}</td></tr>
<tr><th>Address</th><td>{_e(clinic.address)}, {_e(clinic.city)}</td></tr>
<tr><th>Reception phone</th><td>{_e(clinic.phone)}</td></tr>
<tr><th>Price category</th><td>{_e(clinic.price_category)}</td></tr>
</table>
<p>All other clinics of the program stay reachable through the dispatch console (R4.2, R6.3).</p>
<p>The insurer draws up additional agreement No. {_e(view.agreement_number or "-")}
of {_e(view.agreed_on.isoformat() if view.agreed_on else "-")} to the policy (R4.3).
Additional premium: <strong>{_e(money_text(view.additional_premium))} RUB</strong> = registry tariff
{_e(money_text(tariff_registry))} &minus; dispatcher tariff {_e(money_text(program.tariff_dispatcher))},
whatever part of the insurance period remains (R4.5), payable on this schedule (R4.4):</p>
<table><tr><th>#</th><th>Due on</th><th>Amount, RUB</th><th>Status</th></tr>{rows}</table>
<p>The change takes effect when the additional premium (or its first installment) is bundled with the
policy (R4.6); the insurer then sends the clinic an attachment letter on the next business day (R7.1, R7.2).
The choice is final until the policy ends: the attached clinic cannot be replaced (R5.1) and the service type
cannot be changed back to dispatcher (R5.2).</p>
<div class="sign"><div>Policyholder (signature, name, date)</div><div>Insurer (signature, name, date)</div></div>
</body></html>
"""
