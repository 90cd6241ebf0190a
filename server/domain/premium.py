"""The additional premium for switching to registry and its payment schedule (R4.3-R4.6, R8.1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from server.domain.coverage_types import KOPECK, PaymentMode, PolicyFacts, ProgramFacts, money
from server.domain.decisions import Decision, Reason
from server.domain.errors import InvalidInput, RuleViolation


@dataclass(frozen=True, slots=True)
class ScheduledPayment:
    """One due payment of an additional agreement's schedule (R4.4).

    Attributes:
        due_on: The day it is due.
        amount: Roubles, exact to the kopeck.
    """

    due_on: date
    amount: Decimal

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (amount as a string, never a float)."""
        return {"due_on": self.due_on.isoformat(), "amount": str(self.amount)}


def additional_premium(program: ProgramFacts) -> Decimal:
    """The extra premium per person for switching from dispatcher to registry (R4.5).

    It is the difference of the program's two tariffs and deliberately takes no date: it does not
    depend on how much of the insurance period remains (no pro-rating).

    Args:
        program: The person's program.

    Returns:
        ``tariff_registry - tariff_dispatcher``, in kopecks; positive because registry costs more (R8.1).

    A program sold as dispatcher-only still has a registry tariff (R4.1): the switch then changes
    the program, at the same difference.

    Raises:
        RuleViolation: the program has no registry tariff (R4.1: every program needs one).
    """
    if program.tariff_registry is None:
        reason = Reason(
            "R4.1",
            f"{program.label} has no registry tariff for its price category: the insurer must set one",
            {"program_id": program.id},
        )
        raise RuleViolation(reason.message, reasons=(reason,))
    return money(program.tariff_registry - program.tariff_dispatcher)


def _split_kopecks(total: Decimal, parts: int) -> list[Decimal]:
    """Split ``total`` into ``parts`` amounts summing to it exactly; the first takes the leftover kopecks."""
    kopecks = int((total / KOPECK).to_integral_value())
    base, leftover = divmod(kopecks, parts)
    amounts = [base + leftover] + [base] * (parts - 1)
    return [money(Decimal(k) * KOPECK) for k in amounts]


def additional_agreement_schedule(
    policy: PolicyFacts, premium: Decimal, agreed_on: date
) -> tuple[ScheduledPayment, ...]:
    """The payment schedule of the additional agreement (R4.3, R4.4).

    Choices, documented:
      * The first (or only) payment is due on ``agreed_on`` itself. The change only takes effect
        when money is bundled (R4.6), so a grace period would only delay the person's access; the
        policyholder pays when ready.
      * Lump-sum policy: one payment of the whole premium.
      * Installment policy: the premium is split over the agreement day plus every remaining
        installment due date of the policy after it, so that the extra premium follows the policy's
        own schedule and each bundled installment renews the attachment to the next one (R7.3).
        Equal parts in kopecks; the leftover kopecks go to the first payment, so the amounts sum
        exactly to the premium and the payment that makes the change effective is never the smallest.

    Args:
        policy: The policy and its schedule.
        premium: From ``additional_premium`` (positive, rounded to kopecks).
        agreed_on: The day the additional agreement is signed, within the policy (R1.4).

    Returns:
        The payments, sorted by due date; their amounts sum exactly to ``premium``.

    Raises:
        InvalidInput: for a non-positive premium or one with fractions of a kopeck.
        RuleViolation: when the policy has already ended (R1.4).
    """
    if premium <= 0 or money(premium) != premium:
        raise InvalidInput(
            "the additional premium must be a positive amount in kopecks", details={"premium": str(premium)}
        )
    if agreed_on > policy.ends_on:
        reason = Reason(
            "R1.4",
            f"policy {policy.number} ended on {policy.ends_on.isoformat()}: no additional agreement is possible",
            {"policy_number": policy.number, "ends_on": policy.ends_on.isoformat(), "agreed_on": agreed_on.isoformat()},
        )
        raise RuleViolation(reason.message, reasons=(reason,))
    if policy.payment_mode is PaymentMode.LUMP_SUM:
        return (ScheduledPayment(agreed_on, money(premium)),)
    remaining = [due for due in policy.installment_due_dates if agreed_on < due <= policy.ends_on]
    # Never a zero payment: a premium of fewer kopecks than due dates uses only the first dates.
    due_dates = [agreed_on, *remaining][: int(premium / KOPECK)]
    return tuple(
        ScheduledPayment(due, amount)
        for due, amount in zip(due_dates, _split_kopecks(premium, len(due_dates)), strict=True)
    )


def check_registry_activation(
    schedule: Sequence[ScheduledPayment], bundled_amount: Decimal, bundled_on: date
) -> Decision:
    """Whether the money bundled makes the switch to registry take effect (R4.6).

    Args:
        schedule: The additional agreement's schedule.
        bundled_amount: The total of the additional premium bundled with the policy so far.
        bundled_on: The day of bundling.

    Returns:
        ``allowed`` once at least the first installment (or the whole lump sum) is bundled.
    """
    if not schedule:
        raise InvalidInput("an additional agreement has at least one payment")
    first = min(schedule, key=lambda p: p.due_on)
    facts = {
        "bundled_amount": str(money(bundled_amount)),
        "first_installment": str(first.amount),
        "bundled_on": bundled_on.isoformat(),
    }
    if money(bundled_amount) >= first.amount:
        return Decision.allow(
            Reason(
                "R4.6",
                f"the additional premium's first payment ({first.amount}) is bundled: registry takes effect on "
                f"{bundled_on.isoformat()}",
                facts,
            )
        )
    return Decision.deny(
        Reason(
            "R4.6",
            f"registry takes effect only when the first payment of {first.amount} is bundled "
            f"({money(bundled_amount)} so far)",
            facts,
        )
    )
