"""Rules for the insurer's reference data: programs (R10.1, R4.5), policies and their payment schedule (R7.3).

Each check returns every problem it finds as ``(field, problem)`` so that an admin fixes a form in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from server.domain.coverage_types import Component, PaymentMode, ServiceType

Problem = tuple[str, str]
POLICYHOLDER_KINDS: Final = ("corporate", "individual")


@dataclass(frozen=True, slots=True)
class ProgramTerms:
    """What an admin sets on a program."""

    components: Sequence[str]
    price_category: int
    tariffs: Mapping[str, Decimal]
    registry_offered: bool
    telemedicine_allowance_per_year: int


def check_program(terms: ProgramTerms) -> list[Problem]:
    """A program's components are the standard ones (R10.1), its tariffs are money, registry has a price (R4.5)."""
    problems: list[Problem] = []
    known = {c.value for c in Component}
    if not terms.components:
        problems.append(("components", "a program needs at least one component (R10.1)"))
    for component in terms.components:
        if component not in known:
            problems.append(("components", f"R10.1: {component!r} is not a component ({', '.join(sorted(known))})"))
    if len(set(terms.components)) != len(terms.components):
        problems.append(("components", "a component is listed twice"))
    if terms.price_category not in (1, 2, 3):
        problems.append(("price_category", "the price category is 1, 2 or 3"))
    for service_type, tariff in terms.tariffs.items():
        if service_type not in {t.value for t in ServiceType}:
            problems.append((f"tariffs.{service_type}", "not a service type (dispatcher or registry)"))
        elif tariff < 0:
            problems.append((f"tariffs.{service_type}", "a tariff cannot be negative"))
    if ServiceType.DISPATCHER.value not in terms.tariffs:
        problems.append(("tariffs.dispatcher", "the dispatcher tariff is required"))
    registry = terms.tariffs.get(ServiceType.REGISTRY.value)
    if terms.registry_offered and registry is None:
        problems.append(("tariffs.registry", "R4.5: registry is offered, so it needs its tariff"))
    dispatcher = terms.tariffs.get(ServiceType.DISPATCHER.value)
    if registry is not None and dispatcher is not None and registry < dispatcher:
        problems.append(("tariffs.registry", "R4.5: the registry tariff is below the dispatcher tariff"))
    if terms.telemedicine_allowance_per_year < 0:
        problems.append(("telemedicine_allowance_per_year", "cannot be negative"))
    elif terms.telemedicine_allowance_per_year > 0 and Component.TELEMEDICINE.value not in terms.components:
        problems.append(("telemedicine_allowance_per_year", "the program has no telemedicine component"))
    return problems


@dataclass(frozen=True, slots=True)
class Installment:
    """One due payment of a policy's premium schedule."""

    due_on: date
    amount: Decimal


def check_policy(
    *,
    starts_on: date,
    ends_on: date,
    payment_mode: str,
    premium: Decimal,
    installments: Sequence[Installment],
) -> list[Problem]:
    """A policy's period and schedule: the installments fall in the period and add up to the premium (R7.3)."""
    problems: list[Problem] = []
    if ends_on < starts_on:
        problems.append(("ends_on", "the policy ends before it starts"))
    if premium < 0:
        problems.append(("premium", "the premium cannot be negative"))
    modes = {m.value for m in PaymentMode}
    if payment_mode not in modes:
        problems.append(("payment_mode", f"one of {', '.join(sorted(modes))}"))
    if not installments:
        problems.append(("installments", "the schedule needs at least one payment"))
    if payment_mode == PaymentMode.LUMP_SUM.value and len(installments) > 1:
        problems.append(("installments", "a lump-sum policy has exactly one payment"))
    if payment_mode == PaymentMode.INSTALLMENTS.value and len(installments) < 2:
        problems.append(("installments", "payment by installments needs at least two payments"))
    days = [i.due_on for i in installments]
    if days != sorted(days) or len(set(days)) != len(days):
        problems.append(("installments", "due dates must be distinct and in order"))
    for index, installment in enumerate(installments):
        if installment.amount <= 0:
            problems.append((f"installments.{index}.amount", "must be positive"))
        if not starts_on <= installment.due_on <= ends_on:
            problems.append((f"installments.{index}.due_on", "outside the policy period"))
    total = sum((i.amount for i in installments), Decimal(0))
    if installments and total != premium:
        problems.append(("installments", f"the payments add up to {total}, the premium is {premium}"))
    return problems
