"""Additional premium for registry: tariff difference, exact schedule in kopecks, effect on bundling (R4.3-R4.6)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage_types import PaymentMode
from server.domain.errors import InvalidInput, RuleViolation
from server.domain.premium import (
    ScheduledPayment,
    additional_agreement_schedule,
    additional_premium,
    check_registry_activation,
)
from tests.domain.coverage_facts import make_policy, make_program, quarterly_policy


def test_additional_premium_is_registry_minus_dispatcher_tariff_R4_5() -> None:
    assert additional_premium(make_program()) == Decimal("12500.50")


def test_registry_costs_more_so_the_premium_is_positive_R8_1() -> None:
    program = make_program(tariff_dispatcher=Decimal("100"), tariff_registry=Decimal("100.01"))
    assert additional_premium(program) == Decimal("0.01")


def test_no_premium_without_a_registry_tariff_R4_1() -> None:
    with pytest.raises(RuleViolation) as err:
        additional_premium(make_program(registry_offered=False, tariff_registry=None))
    assert err.value.rules == ("R4.1",)
    assert err.value.reasons[0].facts == {"program_id": 1}


def test_dispatcher_only_program_still_prices_the_switch_at_its_registry_tariff_R4_1_R4_5() -> None:
    """R4.1 corrected: a program sold as dispatcher-only is switched by changing the program."""
    program = make_program(registry_offered=False, tariff_registry=Decimal("42500.50"))
    assert additional_premium(program) == Decimal("12500.50")


def test_lump_sum_policy_pays_the_whole_premium_at_agreement_R4_4() -> None:
    schedule = additional_agreement_schedule(make_policy(), Decimal("12500.50"), date(2026, 5, 15))
    assert schedule == (ScheduledPayment(date(2026, 5, 15), Decimal("12500.50")),)


def test_installment_policy_splits_over_the_remaining_due_dates_R4_3_R4_4() -> None:
    schedule = additional_agreement_schedule(quarterly_policy(), Decimal("12500.50"), date(2026, 5, 15))
    assert [p.due_on for p in schedule] == [date(2026, 5, 15), date(2026, 7, 1), date(2026, 10, 1)]
    assert [p.amount for p in schedule] == [Decimal("4166.84"), Decimal("4166.83"), Decimal("4166.83")]
    assert sum(p.amount for p in schedule) == Decimal("12500.50")
    assert schedule[0].as_dict() == {"due_on": "2026-05-15", "amount": "4166.84"}


def test_agreement_on_a_due_date_does_not_double_that_date_R4_4() -> None:
    schedule = additional_agreement_schedule(quarterly_policy(), Decimal("900.00"), date(2026, 4, 1))
    assert [p.due_on for p in schedule] == [date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]
    assert {p.amount for p in schedule} == {Decimal("300.00")}


def test_agreement_after_the_last_installment_is_one_payment_R4_4() -> None:
    schedule = additional_agreement_schedule(quarterly_policy(), Decimal("900.00"), date(2026, 11, 2))
    assert schedule == (ScheduledPayment(date(2026, 11, 2), Decimal("900.00")),)


def test_no_agreement_after_the_policy_ended_R1_4() -> None:
    with pytest.raises(RuleViolation) as err:
        additional_agreement_schedule(quarterly_policy(), Decimal("900.00"), date(2027, 1, 1))
    assert err.value.rules == ("R1.4",)


@pytest.mark.parametrize("premium", [Decimal("0"), Decimal("-1"), Decimal("1.001")])
def test_premium_must_be_positive_kopecks(premium: Decimal) -> None:
    """R4.4, R8.1: the additional premium is a positive amount in kopecks."""
    with pytest.raises(InvalidInput):
        additional_agreement_schedule(quarterly_policy(), premium, date(2026, 5, 15))


def test_tiny_premium_never_schedules_a_zero_payment_R4_4() -> None:
    schedule = additional_agreement_schedule(quarterly_policy(), Decimal("0.02"), date(2026, 2, 1))
    assert [p.amount for p in schedule] == [Decimal("0.01"), Decimal("0.01")]


def test_registry_takes_effect_when_the_first_installment_is_bundled_R4_6() -> None:
    schedule = additional_agreement_schedule(quarterly_policy(), Decimal("12500.50"), date(2026, 5, 15))
    short = check_registry_activation(schedule, Decimal("4000"), date(2026, 5, 20))
    assert not short.allowed
    assert short.rules == ("R4.6",)
    enough = check_registry_activation(schedule, Decimal("4166.84"), date(2026, 5, 20))
    assert enough.allowed
    assert "takes effect on 2026-05-20" in enough.reasons[0].message
    with pytest.raises(InvalidInput):
        check_registry_activation((), Decimal("1"), date(2026, 5, 20))


@settings(deadline=None, max_examples=300)
@given(
    kopecks=st.integers(1, 10**9),
    agreed_offset=st.integers(-30, 364),
    due_offsets=st.sets(st.integers(0, 364), max_size=12),
    lump=st.booleans(),
)
def test_schedule_sums_exactly_to_the_premium_whatever_the_date_property_R4_4_R4_5(
    kopecks: int, agreed_offset: int, due_offsets: set[int], lump: bool
) -> None:
    start = date(2026, 1, 1)
    premium = Decimal(kopecks) / 100
    dues = tuple(start + timedelta(days=o) for o in due_offsets)
    policy = make_policy() if lump else make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=dues)
    agreed_on = start + timedelta(days=agreed_offset)
    schedule = additional_agreement_schedule(policy, premium, agreed_on)
    assert sum(p.amount for p in schedule) == premium
    assert schedule[0].due_on == agreed_on
    assert all(a.due_on < b.due_on for a, b in pairwise(schedule))
    assert all(p.due_on <= policy.ends_on for p in schedule)
    assert all(p.amount > 0 for p in schedule)
    assert schedule[0].amount == max(p.amount for p in schedule)
    assert max(p.amount for p in schedule) - min(p.amount for p in schedule) <= Decimal(len(schedule)) / 100
