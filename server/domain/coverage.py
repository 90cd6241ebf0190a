"""Is it an insured event? Coverage of a component for a person on a day (R2.1, R2.2, R10.1, R10.2)."""

from __future__ import annotations

from datetime import date
from typing import Final

from server.domain.coverage_types import (
    Component,
    InsuredFacts,
    PolicyFacts,
    ProgramFacts,
    parse_component,
)
from server.domain.decisions import Decision, Reason
from server.domain.errors import InvalidInput

MAX_COMPLAINTS_CHARS: Final = 2_000


def _check_facts_belong_together(insured: InsuredFacts, policy: PolicyFacts, program: ProgramFacts) -> None:
    """Refuse facts of different policies: that is a caller's bug, not an uncovered event."""
    if insured.policy_id is not None and insured.policy_id != policy.id:
        raise InvalidInput(
            "the insured person is not on this policy",
            details={"insured_id": insured.id, "policy_id": policy.id},
        )
    if policy.program_id is not None and policy.program_id != program.id:
        raise InvalidInput(
            "the policy is not on this program",
            details={"policy_id": policy.id, "program_id": program.id},
        )


def evaluate_coverage(
    insured: InsuredFacts,
    policy: PolicyFacts,
    program: ProgramFacts,
    component: Component | str,
    on: date,
) -> Decision:
    """Decide whether a problem is an insured event, and say why not when it is not (R2.2).

    Every failing condition is listed, so that the console can tell the person everything at once.

    Args:
        insured: The person (must still be on the policy).
        policy: Their policy; it must be valid on ``on`` (R10.2).
        program: The policy's program; it must include ``component`` (R10.1, R10.2).
        component: The component the problem falls under.
        on: The day of the event (a parameter: the domain has no clock).

    Returns:
        ``allowed`` when covered; reasons cite R10.1/R10.2 for each fact and R2.2 for the verdict.

    Raises:
        InvalidInput: for an unknown component (R10.1) or facts that do not belong together.
    """
    component = parse_component(component)
    _check_facts_belong_together(insured, policy, program)
    facts = {
        "insured_id": insured.id,
        "policy_number": policy.number,
        "program_id": program.id,
        "component": component.value,
        "on": on.isoformat(),
    }
    failures: list[Reason] = []
    if not insured.is_active:
        failures.append(
            Reason("R10.2", "the person is no longer insured under this policy", {"insured_id": insured.id})
        )
    if on < policy.starts_on:
        failures.append(
            Reason(
                "R10.2",
                f"policy {policy.number} only starts on {policy.starts_on.isoformat()}",
                {"policy_number": policy.number, "starts_on": policy.starts_on.isoformat(), "on": on.isoformat()},
            )
        )
    elif on > policy.ends_on:
        failures.append(
            Reason(
                "R10.2",
                f"policy {policy.number} ended on {policy.ends_on.isoformat()}",
                {"policy_number": policy.number, "ends_on": policy.ends_on.isoformat(), "on": on.isoformat()},
            )
        )
    if component not in program.components:
        covered = sorted(c.value for c in program.components)
        failures.append(
            Reason(
                "R10.1",
                f"{program.label} does not include {component.value} care "
                f"(it covers: {', '.join(covered) or 'nothing'})",
                {"program_id": program.id, "component": component.value, "program_components": covered},
            )
        )
    if failures:
        verdict = Reason("R2.2", "not an insured event: " + "; ".join(r.message for r in failures), facts)
        return Decision.deny(verdict, *failures)
    return Decision.allow(
        Reason(
            "R2.2",
            f"an insured event: {component.value} care is in {program.label} and policy {policy.number} "
            f"is valid on {on.isoformat()}",
            facts,
        ),
        Reason(
            "R10.2",
            f"policy {policy.number} runs {policy.starts_on.isoformat()} to {policy.ends_on.isoformat()}",
            {"starts_on": policy.starts_on.isoformat(), "ends_on": policy.ends_on.isoformat()},
        ),
    )


def check_complaints(complaints: str) -> Decision:
    """Check the problem the console records for an insured event (R2.1).

    Args:
        complaints: The person's complaints as typed by them or the dispatcher.

    Returns:
        ``allowed`` when there is something to record, of a size the record can hold.
    """
    text = " ".join(complaints.split())
    if not text:
        return Decision.deny(Reason("R2.1", "the console must record the complaints the person contacts about"))
    if len(text) > MAX_COMPLAINTS_CHARS:
        return Decision.deny(
            Reason(
                "R2.1",
                f"complaints are limited to {MAX_COMPLAINTS_CHARS} characters",
                {"length": len(text), "max": MAX_COMPLAINTS_CHARS},
            )
        )
    return Decision.allow(Reason("R2.1", "complaints recorded", {"length": len(text)}))
