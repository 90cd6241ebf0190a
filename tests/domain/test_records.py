"""Reference data rules: program terms (R10.1, R4.5) and the policy's payment schedule (R7.3)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from server.domain.records import Installment, ProgramTerms, check_policy, check_program


def _terms(**overrides: object) -> ProgramTerms:
    values: dict[str, object] = {
        "components": ["outpatient", "telemedicine"],
        "price_category": 2,
        "tariffs": {"dispatcher": Decimal(40000), "registry": Decimal(52000)},
        "registry_offered": True,
        "telemedicine_allowance_per_year": 12,
    }
    values.update(overrides)
    return ProgramTerms(**values)  # type: ignore[arg-type]


def test_a_valid_program_has_no_problems() -> None:
    assert check_program(_terms()) == []


def test_components_are_the_standard_ones_r10_1() -> None:
    fields = [f for f, _ in check_program(_terms(components=["telemedicine", "spa"]))]
    assert fields == ["components"]


def test_a_negative_tariff_and_a_missing_registry_tariff_are_refused_r4_5() -> None:
    problems = check_program(_terms(tariffs={"dispatcher": Decimal(-1)}))
    assert ("tariffs.dispatcher", "a tariff cannot be negative") in problems
    assert any(f == "tariffs.registry" and p.startswith("R4.5") for f, p in problems)


def test_price_category_and_allowance() -> None:
    problems = check_program(_terms(price_category=4, components=["outpatient"], telemedicine_allowance_per_year=3))
    assert {f for f, _ in problems} == {"price_category", "telemedicine_allowance_per_year"}


def test_installments_add_up_to_the_premium_within_the_period_r7_3() -> None:
    start, end = date(2026, 1, 1), date(2026, 12, 31)
    good = [Installment(date(2026, 1, 1), Decimal(500)), Installment(date(2026, 7, 1), Decimal(500))]
    assert (
        check_policy(
            starts_on=start, ends_on=end, payment_mode="installments", premium=Decimal(1000), installments=good
        )
        == []
    )
    bad = [Installment(date(2027, 1, 1), Decimal(500)), Installment(date(2026, 7, 1), Decimal(400))]
    fields = {
        f
        for f, _ in check_policy(
            starts_on=start, ends_on=end, payment_mode="installments", premium=Decimal(1000), installments=bad
        )
    }
    assert fields == {"installments", "installments.0.due_on"}
    lump = check_policy(starts_on=start, ends_on=end, payment_mode="lump_sum", premium=Decimal(1000), installments=good)
    assert ("installments", "a lump-sum policy has exactly one payment") in lump


def test_a_policy_ending_before_it_starts_is_refused() -> None:
    problems = check_policy(
        starts_on=date(2026, 2, 1),
        ends_on=date(2026, 1, 1),
        payment_mode="lump_sum",
        premium=Decimal(0),
        installments=[Installment(date(2026, 2, 1), Decimal(1))],
    )
    assert ("ends_on", "the policy ends before it starts") in problems
