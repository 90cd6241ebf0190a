"""Coverage facts refuse impossible states: one service type, one registry clinic, valid categories and tariffs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from server.domain.coverage_types import (
    Component,
    InsuredFacts,
    LetterFacts,
    PaymentMode,
    PolicyFacts,
    ServiceType,
    money,
    parse_component,
    parse_service_type,
)
from server.domain.errors import InvalidInput
from tests.domain.coverage_facts import make_clinic, make_letter, make_program


def test_service_type_is_exactly_dispatcher_or_registry_R1_1() -> None:
    assert {t.value for t in ServiceType} == {"dispatcher", "registry"}
    assert parse_service_type("registry") is ServiceType.REGISTRY
    with pytest.raises(InvalidInput) as err:
        parse_service_type("both")
    assert err.value.rules == ("R1.1",)


def test_insured_service_type_from_wire_string_is_coerced_R1_1() -> None:
    person = InsuredFacts(id=1, service_type="dispatcher", attached_clinic_id=None)  # type: ignore[arg-type]
    assert person.service_type is ServiceType.DISPATCHER


def test_registry_person_without_clinic_is_impossible_R1_3() -> None:
    with pytest.raises(InvalidInput) as err:
        InsuredFacts(id=1, service_type=ServiceType.REGISTRY, attached_clinic_id=None)
    assert err.value.rules == ("R1.3",)


def test_dispatcher_person_has_no_attached_clinic_R1_1() -> None:
    with pytest.raises(InvalidInput) as err:
        InsuredFacts(id=1, service_type=ServiceType.DISPATCHER, attached_clinic_id=5)
    assert err.value.rules == ("R1.1",)


def test_program_components_are_the_five_standard_ones_R10_1() -> None:
    assert {c.value for c in Component} == {"outpatient", "dental", "ambulance", "inpatient", "telemedicine"}
    with pytest.raises(InvalidInput) as err:
        parse_component("cosmetic")
    assert err.value.rules == ("R10.1",)


def test_program_components_from_strings_are_coerced_R10_1() -> None:
    program = make_program(components=frozenset({"dental"}))  # type: ignore[arg-type]
    assert program.components == frozenset({Component.DENTAL})


@pytest.mark.parametrize("category", [0, 4])
def test_price_category_is_1_2_or_3_R5_3(category: int) -> None:
    with pytest.raises(InvalidInput) as err:
        make_program(price_category=category)
    assert err.value.rules == ("R5.3",)
    with pytest.raises(InvalidInput):
        make_clinic(category=category)


def test_registry_must_cost_more_than_dispatcher_R8_1() -> None:
    with pytest.raises(InvalidInput) as err:
        make_program(tariff_dispatcher=Decimal("100"), tariff_registry=Decimal("100"))
    assert err.value.rules == ("R8.1",)


def test_program_offering_registry_needs_its_tariff_R4_5() -> None:
    with pytest.raises(InvalidInput) as err:
        make_program(tariff_registry=None, registry_offered=True)
    assert err.value.rules == ("R4.5",)


def test_policy_validity_is_inclusive_of_both_ends_R10_2() -> None:
    policy = PolicyFacts(1, "P-1", date(2026, 1, 1), date(2026, 12, 31), PaymentMode.LUMP_SUM)
    assert policy.is_valid_on(date(2026, 1, 1))
    assert policy.is_valid_on(date(2026, 12, 31))
    assert not policy.is_valid_on(date(2025, 12, 31))
    assert not policy.is_valid_on(date(2027, 1, 1))


def test_policy_due_dates_are_sorted_and_unique() -> None:
    """R7.3: the schedule's due dates decide how long an attachment letter runs, so they are kept sorted."""
    policy = PolicyFacts(
        1,
        "P-1",
        date(2026, 1, 1),
        date(2026, 12, 31),
        "installments",  # type: ignore[arg-type]
        (date(2026, 7, 1), date(2026, 1, 1), date(2026, 7, 1)),
    )
    assert policy.payment_mode is PaymentMode.INSTALLMENTS
    assert policy.installment_due_dates == (date(2026, 1, 1), date(2026, 7, 1))


def test_letter_validity_window_and_status_decide_validity_R3_3() -> None:
    letter = make_letter()
    assert letter.is_valid_on(letter.issued_on)
    assert letter.is_valid_on(letter.valid_until)
    assert not letter.is_valid_on(date(2026, 4, 3))
    assert not make_letter(status="closed").is_valid_on(date(2026, 3, 10))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        LetterFacts("LG-2026-000001", 1, frozenset(), date(2026, 3, 2), date(2026, 3, 1))


def test_money_rounds_to_kopecks() -> None:
    """R4.4: schedules are exact in kopecks."""
    assert money("1.005") == Decimal("1.01")
    assert str(money(5)) == "5.00"
