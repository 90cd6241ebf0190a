"""Attachment letters: generated on bundling, sent next business day, running to the next installment (R6.1, R7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.attachment import (
    attachment_effective,
    attachment_letter_for_payment,
    format_attachment_letter_number,
    next_due_date,
)
from server.domain.calendar import is_business_day
from server.domain.coverage_types import AttachmentLetterFacts, PaymentMode, PolicyFacts
from server.domain.errors import InvalidInput, RuleViolation
from tests.domain.coverage_facts import (
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    CLINICS,
    attachment,
    dispatcher,
    make_policy,
    quarterly_policy,
    registry,
)

CLINIC = CLINICS[CLINIC_CAT2]


def test_letter_is_generated_on_the_bundling_day_R7_1() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    assert plan.generated_on == date(2026, 6, 10)
    assert plan.reasons[0].rule == "R7.1"


def test_letter_is_sent_on_the_next_business_day_R7_2() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 11))
    assert plan.send_on == date(2026, 6, 15)  # Russia Day (Friday) and the weekend skipped
    assert plan.reasons[1].rule == "R7.2"
    assert plan.valid_from == date(2026, 6, 15)  # R6.2: effective once the clinic has it


def test_installment_letter_attaches_until_the_next_due_date_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 1, 12))
    assert plan.valid_until == date(2026, 4, 1)
    assert any(r.rule == "R7.3" and "next installment due on 2026-04-01" in r.message for r in plan.reasons)


def test_lump_sum_letter_attaches_until_the_policy_end_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), make_policy(), CLINIC, date(2026, 3, 3))
    assert plan.valid_until == date(2026, 12, 31)
    assert "lump sum" in plan.reasons[-1].message


def test_last_installment_attaches_until_the_policy_end_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 10, 1))
    assert plan.valid_until == date(2026, 12, 31)


def test_early_payment_runs_to_the_installment_after_the_one_paid_R7_3() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(),
        quarterly_policy(),
        CLINIC,
        date(2026, 3, 25),
        covers_due_on=date(2026, 4, 1),
        previous_letters=[previous],
    )
    assert plan.valid_until == date(2026, 7, 1)
    assert plan.valid_from == date(2026, 3, 25)  # continues the letter in force: no gap


def test_payment_on_the_due_date_continues_without_a_gap_R7_3() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2026, 4, 1), previous_letters=[previous]
    )
    assert plan.valid_from == date(2026, 4, 1)
    assert plan.valid_until == date(2026, 7, 1)
    assert any("continues letter AL-2026-000001" in r.message for r in plan.reasons)


def test_late_payment_reattaches_only_when_the_clinic_gets_the_letter_R7_4() -> None:
    previous = attachment(valid_until=date(2026, 4, 1))
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2026, 4, 10), previous_letters=[previous]
    )
    assert plan.send_on == date(2026, 4, 13)
    assert plan.valid_from == date(2026, 4, 13)
    letters = [previous, plan.to_facts("AL-2026-000002")]
    assert attachment_effective(letters, date(2026, 4, 1)).allowed
    gap = attachment_effective(letters, date(2026, 4, 5))
    assert not gap.allowed
    assert gap.rules == ("R7.2",)
    assert attachment_effective(letters, date(2026, 4, 13)).allowed


def test_payment_before_the_policy_starts_attaches_from_its_start_R7_3() -> None:
    plan = attachment_letter_for_payment(
        registry(), quarterly_policy(), CLINIC, date(2025, 12, 15), covers_due_on=date(2026, 1, 1)
    )
    assert plan.valid_from == date(2026, 1, 1)
    assert plan.valid_until == date(2026, 4, 1)


def test_letter_goes_only_to_a_registry_persons_attached_clinic_R6_1() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(dispatcher(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    assert err.value.rules == ("R6.1",)
    with pytest.raises(RuleViolation):
        attachment_letter_for_payment(registry(), quarterly_policy(), CLINICS[CLINIC_CAT2_OTHER], date(2026, 6, 10))


def test_no_letter_after_the_policy_ended_R7_3() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2027, 1, 10))
    assert err.value.rules == ("R7.3",)


def test_person_of_another_policy_is_a_caller_error() -> None:
    """R7.3: the letter follows the person's own policy schedule."""
    with pytest.raises(InvalidInput):
        other = PolicyFacts(8, "VHI-2026-0008", date(2026, 1, 1), date(2026, 12, 31), PaymentMode.LUMP_SUM)
        attachment_letter_for_payment(registry(), other, CLINIC, date(2026, 6, 10))


def test_plan_becomes_stored_facts_with_a_number_R6_1() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    number = format_attachment_letter_number(2026, 42)
    assert number == "AL-2026-000042"
    facts = plan.to_facts(number)
    assert facts.clinic_id == CLINIC_CAT2
    assert facts.valid_until == date(2026, 7, 1)
    assert plan.as_dict()["send_on"] == "2026-06-11"


def test_attachment_in_force_exempts_visits_and_cites_the_letter_R6_2() -> None:
    decision = attachment_effective([attachment()], date(2026, 2, 1))
    assert decision.allowed
    assert decision.rules == ("R6.2",)
    assert decision.reasons[0].facts["attachment_letter"] == "AL-2026-000001"


def test_attachment_ends_at_the_unpaid_installments_due_date_R7_4() -> None:
    assert attachment_effective([attachment()], date(2026, 4, 1)).allowed
    decision = attachment_effective([attachment()], date(2026, 4, 2))
    assert not decision.allowed
    assert decision.rules == ("R7.4",)
    assert "dispatcher access only until it is paid" in decision.reasons[0].message


def test_no_attachment_letter_means_no_attachment_R6_1() -> None:
    assert attachment_effective([], date(2026, 2, 1)).rules == ("R6.1",)


def test_letters_to_another_clinic_do_not_attach_R6_2() -> None:
    decision = attachment_effective([attachment(clinic_id=CLINIC_CAT2_OTHER)], date(2026, 2, 1), clinic_id=CLINIC_CAT2)
    assert not decision.allowed


def test_next_due_date_ignores_lump_sum_and_dates_after_the_policy() -> None:
    """R7.3: only installments within the policy end an attachment letter."""
    assert next_due_date(make_policy(), date(2026, 1, 1)) is None
    assert next_due_date(quarterly_policy(), date(2026, 4, 1)) == date(2026, 7, 1)
    assert next_due_date(quarterly_policy(), date(2026, 10, 1)) is None


@settings(deadline=None, max_examples=150)
@given(
    offsets=st.lists(st.integers(1, 364), min_size=1, max_size=11, unique=True),
    early=st.lists(st.integers(0, 20), min_size=12, max_size=12),
    start_offset=st.integers(0, 5),
)
def test_paying_every_installment_on_time_leaves_no_gap_property_R7_3_R7_4(
    offsets: list[int], early: list[int], start_offset: int
) -> None:
    start = date(2026, 1, 1)
    dues = (start, *sorted(start + timedelta(days=o) for o in offsets))
    policy = make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=dues)
    letters: list[AttachmentLetterFacts] = []
    bundled = start + timedelta(days=start_offset)
    for i, due in enumerate(dues):
        if i > 0:
            # on time: on or before the due date, in the order of the schedule
            bundled = max(due - timedelta(days=early[i]), bundled)
        plan = attachment_letter_for_payment(
            registry(), policy, CLINIC, bundled, covers_due_on=due, previous_letters=letters
        )
        assert plan.generated_on == bundled
        assert plan.send_on > bundled and is_business_day(plan.send_on)
        assert plan.valid_until in (*dues, policy.ends_on)
        letters.append(plan.to_facts(f"AL-2026-{i + 1:06d}"))
    day = min(letter.valid_from for letter in letters if letter.valid_from <= letter.valid_until)
    while day <= policy.ends_on:
        assert attachment_effective(letters, day).allowed, day
        day += timedelta(days=1)
    assert not attachment_effective(letters, policy.ends_on + timedelta(days=1)).allowed
