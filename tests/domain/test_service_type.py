"""Service type changes: dispatcher to registry during the policy, final within it (R1, R4, R5, R8)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage_types import InsuredFacts, ServiceType
from server.domain.decisions import Decision
from server.domain.errors import InvalidInput, RuleViolation
from server.domain.service_type import (
    check_service_type_change,
    plan_additional_agreement,
    recommended_service_type,
)
from tests.domain.coverage_facts import (
    CLINIC_CAT1,
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    CLINIC_OFF_LIST,
    CLINIC_PASS,
    CLINICS,
    dispatcher,
    make_policy,
    make_program,
    quarterly_policy,
    registry,
)

DURING = date(2026, 5, 15)
BEFORE_START = date(2025, 12, 20)
AFTER_END = date(2027, 1, 1)


def change(
    person: InsuredFacts, target: str, clinic_id: int | None = CLINIC_CAT2, on: date = DURING, **program: object
) -> Decision:
    """Ask for a change with the default program and lump-sum policy."""
    clinic = CLINICS[clinic_id] if clinic_id is not None else None
    return check_service_type_change(person, make_program(**program), make_policy(), target, clinic, on)  # type: ignore[arg-type]


def test_dispatcher_to_registry_during_the_policy_is_allowed_and_explained_R1_4_R4() -> None:
    decision = change(dispatcher(), "registry")
    assert decision.allowed
    rules = decision.rules
    for rule in ("R1.4", "R4.1", "R4.2", "R2.3", "R5.3", "R8.1", "R4.5", "R4.3", "R4.4", "R4.6", "R5.1", "R8.2"):
        assert rule in rules, rule
    premium = next(r for r in decision.reasons if r.rule == "R4.5")
    assert premium.facts["additional_premium"] == "12500.50"


def test_application_names_exactly_one_clinic_and_keeps_the_others_via_console_R4_2() -> None:
    reason = next(r for r in change(dispatcher(), "registry").reasons if r.rule == "R4.2")
    assert reason.facts == {"clinic_id": CLINIC_CAT2}
    assert "all other clinics stay reachable through the console" in reason.message


def test_registry_needs_the_clinic_chosen_now_R1_3() -> None:
    decision = change(dispatcher(), "registry", clinic_id=None)
    assert not decision.allowed
    assert decision.rules == ("R1.3",)


def test_registry_clinic_must_be_on_the_program_list_R4_2_R2_3() -> None:
    decision = change(dispatcher(), "registry", clinic_id=CLINIC_OFF_LIST)
    assert not decision.allowed
    assert decision.rules == ("R2.3",)


def test_registry_clinic_must_be_of_the_programs_category_R5_3() -> None:
    decision = change(dispatcher(), "registry", clinic_id=CLINIC_CAT1)
    assert not decision.allowed
    assert decision.rules == ("R5.3",)


def test_access_system_clinic_is_allowed_and_flags_the_pass_R6_4() -> None:
    decision = change(dispatcher(), "registry", clinic_id=CLINIC_PASS)
    assert decision.allowed
    assert "R6.4" in decision.rules


def test_registry_refused_only_when_the_program_has_no_registry_tariff_R4_1() -> None:
    decision = change(dispatcher(), "registry", registry_offered=False, tariff_registry=None)
    assert not decision.allowed
    assert decision.rules == ("R4.1",)
    assert "no registry tariff" in decision.reasons[0].message


def test_dispatcher_only_program_switches_to_registry_by_changing_the_program_R4_1() -> None:
    """R4.1 (corrected 2026-12-01): sold as dispatcher-only, the switch is still allowed, at the registry tariff."""
    decision = change(dispatcher(), "registry", registry_offered=False)
    assert decision.allowed
    offer = next(r for r in decision.reasons if r.rule == "R4.1")
    assert offer.facts["registry_offered"] is False
    assert "changing the program" in offer.message
    assert next(r for r in decision.reasons if r.rule == "R4.5").facts["additional_premium"] == "12500.50"


def test_switch_whose_letter_cannot_reach_the_clinic_before_the_end_is_refused_R7_7() -> None:
    """Agreed on the policy's last working day: the letter would go out on 2027-01-11, after the end."""
    decision = change(dispatcher(), "registry", on=date(2026, 12, 30))
    assert not decision.allowed
    assert decision.rules == ("R7.7",)
    assert decision.reasons[0].facts["send_on"] == "2027-01-11"
    assert decision.reasons[0].facts["ends_on"] == "2026-12-31"
    with pytest.raises(RuleViolation) as err:
        plan_additional_agreement(dispatcher(), make_program(), make_policy(), CLINICS[CLINIC_CAT2], date(2026, 12, 31))
    assert err.value.rules == ("R7.7",)


def test_switch_whose_letter_reaches_the_clinic_on_the_last_day_is_allowed_R7_7() -> None:
    """Boundary: sent on the policy's last day attaches for that day (send_on == ends_on is allowed)."""
    ends_fri = make_policy(ends_on=date(2026, 12, 25))  # Fri; agreed Thu 12-24, sent Fri 12-25
    decision = check_service_type_change(
        dispatcher(), make_program(), ends_fri, "registry", CLINICS[CLINIC_CAT2], date(2026, 12, 24)
    )
    assert decision.allowed
    decision = check_service_type_change(
        dispatcher(), make_program(), ends_fri, "registry", CLINICS[CLINIC_CAT2], date(2026, 12, 25)
    )
    assert decision.rules == ("R7.7",)


def test_attached_clinic_that_left_the_program_is_replaced_by_one_of_the_same_category_R5_4() -> None:
    """The only exception to R5.1: the person keeps registry and names a new clinic, with no premium."""
    listed_without_old = frozenset({CLINIC_CAT2_OTHER, CLINIC_CAT1})
    decision = change(
        registry(clinic_id=CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT2_OTHER, clinic_ids=listed_without_old
    )
    assert decision.allowed
    assert decision.rules[0] == "R5.4"
    assert decision.reasons[0].facts["attached_clinic_id"] == CLINIC_CAT2
    assert "R4.5" not in decision.rules
    # still R5.3: a replacement of another category is refused
    wrong = change(registry(clinic_id=CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT1, clinic_ids=listed_without_old)
    assert not wrong.allowed and "R5.3" in wrong.rules
    # and while the clinic is still listed, R5.1 holds
    assert change(registry(clinic_id=CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT2_OTHER).rules == ("R5.1",)
    with pytest.raises(InvalidInput):
        plan_additional_agreement(
            registry(clinic_id=CLINIC_CAT2),
            make_program(clinic_ids=listed_without_old),
            make_policy(),
            CLINICS[CLINIC_CAT2_OTHER],
            DURING,
        )


def test_registry_back_to_dispatcher_is_refused_during_the_policy_R5_2_R8_2() -> None:
    decision = change(registry(), "dispatcher", clinic_id=None)
    assert not decision.allowed
    assert decision.rules == ("R5.2", "R8.2")
    assert "switching to registry later is always possible, the reverse is not" in decision.reasons[1].message


def test_replacing_the_attached_clinic_is_refused_during_the_policy_R5_1() -> None:
    decision = change(registry(CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT2_OTHER)
    assert not decision.allowed
    assert decision.rules == ("R5.1",)
    assert decision.reasons[0].facts["attached_clinic_id"] == CLINIC_CAT2


def test_choosing_the_same_type_again_is_refused_R1_1() -> None:
    assert change(dispatcher(), "dispatcher", clinic_id=None).rules == ("R1.1",)
    assert change(registry(CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT2).rules == ("R1.1",)


def test_unknown_service_type_is_invalid_R1_1() -> None:
    with pytest.raises(InvalidInput) as err:
        change(dispatcher(), "concierge")
    assert err.value.rules == ("R1.1",)


def test_type_is_chosen_freely_at_conclusion_before_the_policy_starts_R1_4() -> None:
    to_registry = change(dispatcher(), "registry", on=BEFORE_START)
    assert to_registry.allowed
    assert "at conclusion" in to_registry.reasons[0].message
    assert "R4.5" not in to_registry.rules  # no additional agreement at conclusion
    assert change(registry(), "dispatcher", clinic_id=None, on=BEFORE_START).allowed
    assert change(registry(CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT2_OTHER, on=BEFORE_START).allowed
    assert not change(registry(CLINIC_CAT2), "registry", clinic_id=CLINIC_CAT1, on=BEFORE_START).allowed


def test_no_change_after_the_policy_ended_R1_4() -> None:
    decision = change(dispatcher(), "registry", on=AFTER_END)
    assert not decision.allowed
    assert decision.rules == ("R1.4",)


def test_person_removed_from_the_policy_cannot_change_R10_2() -> None:
    assert change(dispatcher(active=False), "registry").rules == ("R10.2",)


def test_each_person_on_a_policy_has_their_own_type_R1_2() -> None:
    """One policy, three persons: registry may be given to one, several or all; the rest stay dispatcher."""
    people = [dispatcher(id=1), dispatcher(id=2), dispatcher(id=3)]
    switched = {p.id: change(p, "registry").allowed for p in people[:2]}
    assert switched == {1: True, 2: True}
    after = [registry(CLINIC_CAT2, id=1), registry(CLINIC_CAT2_OTHER, id=2), people[2]]
    assert [p.service_type for p in after] == [ServiceType.REGISTRY, ServiceType.REGISTRY, ServiceType.DISPATCHER]
    assert change(after[2], "registry", clinic_id=CLINIC_PASS).allowed  # unaffected by the others


def test_system_recommends_starting_with_dispatcher_R8_2() -> None:
    kind, reason = recommended_service_type(make_program())
    assert kind is ServiceType.DISPATCHER
    assert reason.rule == "R8.2"
    assert "reverse is not" in reason.message


def test_additional_agreement_plan_has_the_premium_and_schedule_R4_3_R4_4() -> None:
    policy = quarterly_policy()
    plan = plan_additional_agreement(dispatcher(), make_program(), policy, CLINICS[CLINIC_CAT2], DURING)
    assert plan.premium == Decimal("12500.50")
    assert [p.due_on for p in plan.schedule] == [DURING, date(2026, 7, 1), date(2026, 10, 1)]
    assert plan.as_dict()["premium"] == "12500.50"


def test_additional_agreement_refused_with_the_rules_reasons_R5_2() -> None:
    with pytest.raises(RuleViolation) as err:
        plan_additional_agreement(registry(), make_program(), make_policy(), CLINICS[CLINIC_CAT2_OTHER], DURING)
    assert err.value.rules == ("R5.1",)


def test_registry_chosen_before_the_policy_starts_is_priced_at_the_registry_tariff_R1_4_R8_1() -> None:
    """Item 4: nothing about registry is free; the difference follows the policy's schedule."""
    plan = plan_additional_agreement(
        dispatcher(), make_program(), quarterly_policy(), CLINICS[CLINIC_CAT2], BEFORE_START
    )
    assert plan.premium == Decimal("12500.50")
    assert sum(p.amount for p in plan.schedule) == Decimal("12500.50")
    assert [p.due_on for p in plan.schedule] == [
        BEFORE_START,
        date(2026, 1, 1),
        date(2026, 4, 1),
        date(2026, 7, 1),
        date(2026, 10, 1),
    ]
    priced = next(r for r in plan.reasons if r.rule == "R1.4" and "registry tariff" in r.message)
    assert priced.facts["premium"] == "12500.50"
    assert priced.facts["starts_on"] == "2026-01-01"
    assert "R8.1" in [r.rule for r in plan.reasons]


policy_days = st.integers(0, 364).map(lambda n: date(2026, 1, 1) + timedelta(days=n))
# R7.7 refuses a switch in the last days of the year, so the premium's independence is checked before them.
switch_days = st.integers(0, 340).map(lambda n: date(2026, 1, 1) + timedelta(days=n))


@settings(deadline=None, max_examples=200)
@given(
    on=policy_days,
    attached=st.sampled_from([CLINIC_CAT2, CLINIC_CAT2_OTHER, CLINIC_PASS]),
    other=st.sampled_from(list(CLINICS)),
)
def test_no_way_back_from_registry_within_a_policy_property_R5_1_R5_2(on: date, attached: int, other: int) -> None:
    person = registry(attached)
    back = change(person, "dispatcher", clinic_id=None, on=on)
    assert not back.allowed
    assert back.rules[0] == "R5.2"
    move = change(person, "registry", clinic_id=other, on=on)
    assert not move.allowed
    assert move.rules[0] == ("R1.1" if other == attached else "R5.1")


@settings(deadline=None, max_examples=100)
@given(
    first=switch_days,
    second=switch_days,
    dispatcher_kopecks=st.integers(0, 10**8),
    extra_kopecks=st.integers(1, 10**8),
)
def test_premium_does_not_depend_on_the_date_of_change_property_R4_5(
    first: date, second: date, dispatcher_kopecks: int, extra_kopecks: int
) -> None:
    tariff_dispatcher = Decimal(dispatcher_kopecks) / 100
    tariff_registry = Decimal(dispatcher_kopecks + extra_kopecks) / 100

    def premium(on: date) -> str:
        decision = change(
            dispatcher(), "registry", on=on, tariff_dispatcher=tariff_dispatcher, tariff_registry=tariff_registry
        )
        return str(next(r for r in decision.reasons if r.rule == "R4.5").facts["additional_premium"])

    assert premium(first) == premium(second) == str(Decimal(extra_kopecks).scaleb(-2))


@settings(deadline=None, max_examples=200)
@given(on=policy_days, program_category=st.integers(1, 3), clinic_id=st.sampled_from(list(CLINICS)))
def test_no_attachment_outside_the_category_property_R5_3(on: date, program_category: int, clinic_id: int) -> None:
    decision = change(dispatcher(), "registry", clinic_id=clinic_id, on=on, price_category=program_category)
    if decision.allowed:
        assert CLINICS[clinic_id].price_category == program_category
