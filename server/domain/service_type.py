"""Choosing and changing a service type: dispatcher to registry, never back within a policy (R1, R4, R5, R8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from server.domain.calendar import next_business_day
from server.domain.clinics import ClinicPurpose, check_clinic_choice
from server.domain.coverage_types import (
    ClinicFacts,
    InsuredFacts,
    PolicyFacts,
    ProgramFacts,
    ServiceType,
    parse_service_type,
)
from server.domain.decisions import Decision, Reason
from server.domain.errors import InvalidInput, RuleViolation
from server.domain.premium import ScheduledPayment, additional_agreement_schedule, additional_premium

RECOMMENDATION: Final = (
    "we recommend starting with the dispatcher service type: switching to registry later is always "
    "possible, the reverse is not"
)


def recommended_service_type(program: ProgramFacts) -> tuple[ServiceType, Reason]:
    """The service type the system suggests when a policy is concluded (R8.2).

    Args:
        program: The program being sold.

    Returns:
        ``DISPATCHER`` and the explanation to show next to the choice.
    """
    offered = (
        "registry is offered by this program at a higher price"
        if program.registry_offered
        else ("this program offers only the dispatcher type")
    )
    return ServiceType.DISPATCHER, Reason("R8.2", f"{RECOMMENDATION} ({offered})", {"program_id": program.id})


def _r82(facts: dict[str, Any]) -> Reason:
    return Reason("R8.2", RECOMMENDATION, facts)


def check_service_type_change(
    insured: InsuredFacts,
    program: ProgramFacts,
    policy: PolicyFacts,
    target_type: ServiceType | str,
    clinic: ClinicFacts | None,
    on: date,
) -> Decision:
    """Whether a person's service type may change to ``target_type`` on ``on`` (R1, R4, R5).

    Before the policy starts the type is still being chosen at conclusion (R1.4) and may be
    changed freely (within R1.3, R4.1, R5.3). During the policy only dispatcher -> registry is
    possible (R4), and the choice is final: no other clinic (R5.1) unless the attached one left the
    program's list (R5.4), no way back (R5.2). A switch too late for its first attachment letter to
    reach the clinic before the policy ends is refused (R7.7). After the
    policy's end nothing changes on it.

    Args:
        insured: The person; their current type and attached clinic.
        program: Their program (registry offered? tariffs, clinic list, price category).
        policy: Their policy (its period decides R1.4/R5.1/R5.2).
        target_type: ``"dispatcher"`` or ``"registry"``.
        clinic: For registry, the one clinic to attach (R1.3, R4.2); ignored for dispatcher.
        on: The day of the change (no clock in the domain).

    Returns:
        A decision; allowing reasons include the additional premium (R4.5) and the next steps
        (R4.3, R4.4, R4.6) and warn that the choice is final (R5.1, R5.2, R8.2).

    Raises:
        InvalidInput: an unknown service type (R1.1), or facts that do not belong together.
    """
    target = parse_service_type(target_type)
    if insured.policy_id is not None and insured.policy_id != policy.id:
        raise InvalidInput("the insured person is not on this policy", details={"insured_id": insured.id})
    if policy.program_id is not None and policy.program_id != program.id:
        raise InvalidInput("the policy is not on this program", details={"policy_id": policy.id})
    current = insured.service_type
    facts: dict[str, Any] = {
        "insured_id": insured.id,
        "policy_number": policy.number,
        "current": current.value,
        "target": target.value,
        "clinic_id": clinic.id if clinic else None,
        "on": on.isoformat(),
    }
    concluding = on < policy.starts_on
    if on > policy.ends_on:
        return Decision.deny(
            Reason(
                "R1.4",
                f"policy {policy.number} ended on {policy.ends_on.isoformat()}: the service type is chosen when a "
                "policy is concluded or during its validity",
                facts,
            )
        )
    if not insured.is_active:
        return Decision.deny(Reason("R10.2", "the person is no longer insured under this policy", facts))

    if target is ServiceType.DISPATCHER:
        if current is ServiceType.DISPATCHER:
            return Decision.deny(Reason("R1.1", "the person already has the dispatcher service type", facts))
        if not concluding:
            return Decision.deny(
                Reason(
                    "R5.2",
                    f"registry cannot be changed back to dispatcher while policy {policy.number} is valid "
                    f"(until {policy.ends_on.isoformat()})",
                    facts,
                ),
                _r82(facts),
            )
        return Decision.allow(
            Reason("R1.4", "the policy has not started: the service type is still being chosen at conclusion", facts),
            Reason("R1.1", "the person will have the dispatcher service type, without an attached clinic", facts),
        )

    # target is registry
    replacing = False
    if current is ServiceType.REGISTRY:
        if clinic is None or clinic.id == insured.attached_clinic_id:
            return Decision.deny(
                Reason("R1.1", "the person already has the registry service type at this clinic", facts)
            )
        # R5.4: a clinic that left the program's list is the one exception to R5.1.
        replacing = not concluding and insured.attached_clinic_id not in program.clinic_ids
        if not concluding and not replacing:
            return Decision.deny(
                Reason(
                    "R5.1",
                    f"the attached clinic cannot be replaced while policy {policy.number} is valid "
                    f"(until {policy.ends_on.isoformat()})",
                    {**facts, "attached_clinic_id": insured.attached_clinic_id},
                )
            )

    failures: list[Reason] = []
    if program.tariff_registry is None:
        failures.append(
            Reason(
                "R4.1",
                f"{program.label} has no registry tariff for its price category: the insurer must set one before "
                "anyone can switch",
                facts,
            )
        )
    if not concluding and not replacing and current is ServiceType.DISPATCHER:
        send_on = next_business_day(on)
        if send_on > policy.ends_on:
            failures.append(
                Reason(
                    "R7.7",
                    f"the first attachment letter would reach the clinic on {send_on.isoformat()}, after policy "
                    f"{policy.number} ends on {policy.ends_on.isoformat()}: the switch would attach the person for "
                    "no day, so nothing is charged",
                    {**facts, "send_on": send_on.isoformat(), "ends_on": policy.ends_on.isoformat()},
                )
            )
    if clinic is None:
        failures.append(Reason("R1.3", "registry needs exactly one clinic from the program, chosen now", facts))
        choice_reasons: tuple[Reason, ...] = ()
    else:
        choice = check_clinic_choice(program, clinic, ClinicPurpose.ATTACHMENT, insured)
        choice_reasons = choice.reasons
        if not choice.allowed:
            failures.extend(r for r in choice.reasons if r.rule != "R6.4")
    if failures:
        return Decision.deny(*failures)
    assert clinic is not None  # narrowed by the failure above

    if replacing:
        return Decision.allow(
            Reason(
                "R5.4",
                f"the attached clinic {insured.attached_clinic_id} has left the list of {program.label}: the person "
                f"keeps registry and {clinic.name} (price category {clinic.price_category}) replaces it, with no "
                "additional premium",
                {**facts, "attached_clinic_id": insured.attached_clinic_id, "price_category": clinic.price_category},
            ),
            *choice_reasons,
            Reason(
                "R5.1",
                f"the choice of {clinic.name} is final until policy {policy.number} ends",
                {"ends_on": policy.ends_on.isoformat()},
            ),
        )
    when = (
        Reason("R1.4", "the policy has not started: the service type is chosen at conclusion", facts)
        if concluding
        else Reason("R1.4", f"policy {policy.number} is valid: the type may be changed during its validity", facts)
    )
    now_dispatcher = " and the person is dispatcher now" if current is ServiceType.DISPATCHER else ""
    offer = (
        Reason("R4.1", f"{program.label} offers the registry service type{now_dispatcher}", facts)
        if program.registry_offered
        else Reason(
            "R4.1",
            f"{program.label} was sold as dispatcher-only: the policyholder issues registry service by changing the "
            f"program (R4.2-R4.4), at its registry tariff{now_dispatcher}",
            {**facts, "registry_offered": False},
        )
    )
    reasons = [
        when,
        offer,
        Reason(
            "R4.2",
            f"exactly one clinic is named, {clinic.name}; all other clinics stay reachable through the console",
            {"clinic_id": clinic.id},
        ),
        *choice_reasons,
        Reason("R8.1", "registry costs more: without the console's filter clinics may prescribe more", facts),
    ]
    if not concluding:
        premium = additional_premium(program)
        reasons += [
            Reason(
                "R4.5",
                f"additional premium {premium} = registry tariff {money_text(program.tariff_registry)} - "
                f"dispatcher tariff {money_text(program.tariff_dispatcher)}, whatever part of the period remains",
                {"additional_premium": str(premium)},
            ),
            Reason("R4.3", "the insurer draws up an additional agreement to the policy", facts),
            Reason("R4.4", "the policyholder pays the additional premium on the agreement's schedule", facts),
            Reason("R4.6", "registry takes effect when the premium (or its first installment) is bundled", facts),
            Reason(
                "R5.1",
                f"the choice of {clinic.name} is final until policy {policy.number} ends: no replacement, and "
                "no way back to dispatcher (R5.2)",
                {"ends_on": policy.ends_on.isoformat()},
            ),
            _r82(facts),
        ]
    return Decision.allow(*reasons)


def money_text(amount: Decimal | None) -> str:
    """An amount for messages.

    Args:
        amount: Roubles, or ``None`` when there is no tariff.

    Returns:
        The amount with two decimals, or ``"n/a"``.
    """
    return "n/a" if amount is None else str(amount.quantize(Decimal("0.01")))


@dataclass(frozen=True, slots=True)
class AdditionalAgreementPlan:
    """What the insurer draws up when a person switches to registry during the policy (R4.3, R4.4).

    Attributes:
        insured_id: The person.
        clinic_id: The clinic named in the application (R4.2).
        premium: The additional premium (R4.5).
        schedule: Its payment schedule (R4.4).
        reasons: The allowing decision's reasons.
    """

    insured_id: int
    clinic_id: int
    premium: Decimal
    schedule: tuple[ScheduledPayment, ...]
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {
            "insured_id": self.insured_id,
            "clinic_id": self.clinic_id,
            "premium": str(self.premium),
            "schedule": [p.as_dict() for p in self.schedule],
            "reasons": [r.as_dict() for r in self.reasons],
        }


def plan_additional_agreement(
    insured: InsuredFacts,
    program: ProgramFacts,
    policy: PolicyFacts,
    clinic: ClinicFacts,
    agreed_on: date,
) -> AdditionalAgreementPlan:
    """Check the switch to registry and plan the additional agreement for it (R4.2-R4.5).

    Args:
        insured: The dispatcher person switching.
        program: Their program.
        policy: Their policy.
        clinic: The clinic named in the application.
        agreed_on: The day the agreement is drawn up.

    Returns:
        The premium and its schedule, with the reasons.

    Before the policy starts (R1.4) the same plan prices registry from the start: the difference is
    due with the policy's schedule and nothing about registry is free.

    Raises:
        RuleViolation: when ``check_service_type_change`` refuses (its reasons included).
    """
    decision = check_service_type_change(insured, program, policy, ServiceType.REGISTRY, clinic, agreed_on)
    if not decision.allowed:
        raise RuleViolation(decision.reasons[0].message, reasons=decision.reasons)
    if "R5.4" in decision.rules:
        raise InvalidInput("replacing a clinic that left the program (R5.4) needs no additional agreement")
    premium = additional_premium(program)
    schedule = additional_agreement_schedule(policy, premium, agreed_on)
    reasons = decision.reasons
    if agreed_on < policy.starts_on:
        reasons = (
            *reasons,
            Reason(
                "R1.4",
                f"registry chosen at conclusion is priced at the registry tariff from the start: the difference "
                f"{premium} is scheduled with the policy, and the attachment letter follows the first payment of it",
                {
                    "policy_number": policy.number,
                    "starts_on": policy.starts_on.isoformat(),
                    "agreed_on": agreed_on.isoformat(),
                    "premium": str(premium),
                },
            ),
            Reason("R8.1", "registry costs more than dispatcher, also when chosen at conclusion", {}),
        )
    return AdditionalAgreementPlan(insured.id, clinic.id, premium, schedule, reasons)
