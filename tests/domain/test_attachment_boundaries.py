"""Boundaries of attachment letters and payment matching (R5.4, R6.1, R6.2, R7.2-R7.6), from mutation testing.

Each test pins a comparison, a choice between several letters or payments, or the exact facts a
reason carries (the audit trail), that a surviving mutant of ``server/domain/attachment.py`` could
change without any other domain test noticing (issue 9).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from server.domain.attachment import (
    AttachmentLetterPlan,
    DuePayment,
    Installment,
    attachment_effective,
    attachment_letter_for_payment,
    match_payment,
    next_due_date,
    overdue_installments,
    replacement_attachment_letter,
    same_day_letter,
)
from server.domain.coverage_types import PaymentMode, PolicyFacts
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
AA1 = "AA-2026-000001"


def test_of_two_letters_in_force_the_one_running_longest_is_cited_R6_2() -> None:
    short = attachment(number="AL-2026-000001", valid_until=date(2026, 4, 1))
    long = attachment(number="AL-2026-000002", valid_from=date(2026, 3, 1), valid_until=date(2026, 7, 1))
    for letters in ([short, long], [long, short]):
        decision = attachment_effective(letters, date(2026, 3, 10), clinic_id=CLINIC_CAT2)
        assert decision.allowed
        assert decision.reasons[0].facts == {
            "attachment_letter": "AL-2026-000002",
            "clinic_id": CLINIC_CAT2,
            "valid_from": "2026-03-01",
            "valid_until": "2026-07-01",
            "on": "2026-03-10",
        }


def test_a_letter_attaches_from_its_first_day_and_the_day_before_it_is_pending_R7_2() -> None:
    """R7.2 boundary: the day before ``valid_from`` the letter is on its way; on ``valid_from`` it attaches."""
    letter = attachment(valid_from=date(2026, 1, 13))
    assert attachment_effective([letter], date(2026, 1, 13)).allowed
    pending = attachment_effective([letter], date(2026, 1, 12))
    assert pending.rules == ("R7.2",)
    assert pending.reasons[0].facts == {
        "attachment_letter": "AL-2026-000001",
        "send_on": "2026-01-13",
        "valid_from": "2026-01-13",
        "on": "2026-01-12",
    }


def test_the_first_pending_letter_is_cited_R7_2() -> None:
    later = attachment(number="AL-2026-000003", send_on=date(2026, 5, 4), valid_from=date(2026, 5, 4))
    sooner = attachment(number="AL-2026-000002", send_on=date(2026, 4, 6), valid_from=date(2026, 4, 6))
    for letters in ([later, sooner], [sooner, later]):
        decision = attachment_effective(letters, date(2026, 4, 2))
        assert decision.rules == ("R7.2",)
        assert decision.reasons[0].facts["attachment_letter"] == "AL-2026-000002"


def test_a_lapsed_attachment_cites_the_letter_that_ended_last_R7_4() -> None:
    first = attachment(number="AL-2026-000001", valid_until=date(2026, 4, 1))
    second = attachment(number="AL-2026-000002", valid_from=date(2026, 4, 1), valid_until=date(2026, 7, 1))
    for letters in ([first, second], [second, first]):
        decision = attachment_effective(letters, date(2026, 7, 2))
        assert decision.rules == ("R7.4",)
        assert decision.reasons[0].facts == {
            "attachment_letter": "AL-2026-000002",
            "valid_until": "2026-07-01",
            "on": "2026-07-02",
        }


def test_no_letter_at_all_carries_the_day_and_the_clinic_R6_1() -> None:
    decision = attachment_effective([], date(2026, 2, 1), clinic_id=CLINIC_CAT2)
    assert decision.rules == ("R6.1",)
    assert decision.reasons[0].facts == {"on": "2026-02-01", "clinic_id": CLINIC_CAT2}


def test_a_person_of_another_policy_is_named_in_the_error_R7_3() -> None:
    other = PolicyFacts(8, "VHI-2026-0008", date(2026, 1, 1), date(2026, 12, 31), PaymentMode.LUMP_SUM)
    with pytest.raises(InvalidInput) as err:
        attachment_letter_for_payment(registry(), other, CLINIC, date(2026, 6, 10))
    assert err.value.details == {"insured_id": 101}


def test_the_r6_1_refusal_carries_the_person_and_both_clinics_R6_1() -> None:
    with pytest.raises(RuleViolation) as err:
        attachment_letter_for_payment(dispatcher(), quarterly_policy(), CLINIC, date(2026, 6, 10))
    assert err.value.reasons[0].facts == {
        "insured_id": 100,
        "service_type": "dispatcher",
        "attached_clinic_id": None,
        "clinic_id": CLINIC_CAT2,
    }
    assert err.value.reasons[0].message.startswith("an attachment letter goes only to a registry person's")


def test_the_plan_as_stored_and_as_sent_keeps_every_date_R7_1_R7_2_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 11))
    assert plan.to_facts("AL-2026-000009") == attachment(
        number="AL-2026-000009",
        generated_on=date(2026, 6, 11),
        send_on=date(2026, 6, 15),
        valid_from=date(2026, 6, 15),
        valid_until=date(2026, 7, 1),
    )
    assert plan.as_dict() == {
        "insured_id": 101,
        "clinic_id": CLINIC_CAT2,
        "generated_on": "2026-06-11",
        "send_on": "2026-06-15",
        "valid_from": "2026-06-15",
        "valid_until": "2026-07-01",
        "reasons": [r.as_dict() for r in plan.reasons],
    }


def test_an_installment_due_on_the_policys_last_day_ends_the_letter_R7_3() -> None:
    """R7.3 boundary: a due date on the policy's last day is still within it (``<=``)."""
    policy = make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=(date(2026, 1, 1), date(2026, 12, 31)))
    assert next_due_date(policy, date(2026, 6, 1)) == date(2026, 12, 31)
    assert next_due_date(policy, date(2026, 12, 31)) is None


def test_overdue_installments_come_earliest_first_then_by_schedule_R7_4() -> None:
    later = Installment(date(2026, 7, 1), False, "premium", "VHI-2026-0007")
    extra = Installment(date(2026, 4, 1), False, "premium", "VHI-2026-0007")
    additional = Installment(date(2026, 4, 1), False, "additional_premium", AA1)
    assert overdue_installments([later, extra, additional], date(2026, 7, 2)) == [additional, extra, later]


def test_the_latest_letter_of_the_day_is_the_one_a_second_payment_updates_R7_6() -> None:
    first = attachment(number="AL-2026-000004", generated_on=date(2026, 7, 1))
    second = attachment(number="AL-2026-000007", generated_on=date(2026, 7, 1))
    for letters in ([first, second], [second, first]):
        assert same_day_letter(letters, CLINIC_CAT2, date(2026, 7, 1)) == second
    assert same_day_letter([first], CLINIC_CAT2_OTHER, date(2026, 7, 1)) is None
    assert same_day_letter([first], CLINIC_CAT2, date(2026, 7, 2)) is None


def test_every_r7_6_answer_carries_its_rule_and_facts_R7_6() -> None:
    due = [
        DuePayment(1, AA1, Decimal("1000.00"), date(2026, 5, 15)),
        DuePayment(2, "VHI-2026-0007", Decimal("500.00"), date(2026, 4, 1)),
    ]
    nothing = match_payment(due, Decimal("3.00"), None)
    assert not nothing.matched
    assert [r.as_dict() for r in nothing.reasons] == [
        {
            "rule": "R7.6",
            "message": "no unpaid scheduled payment of 3.00",
            "facts": {"amount": "3.00", "reference": None},
        }
    ]
    only = match_payment(due, Decimal("1000.00"), None)
    assert only.scheduled == due[0]
    assert [r.as_dict() for r in only.reasons] == [
        {
            "rule": "R7.6",
            "message": f"the only schedule with an unpaid payment of 1000.00 is {AA1}: matched to the payment due "
            "2026-05-15",
            "facts": {"amount": "1000.00", "reference": None, "scheduled_payment_id": 1},
        }
    ]
    named = match_payment(due, Decimal("500.00"), "VHI-2026-0007")
    assert named.scheduled == due[1]
    assert named.reasons[0].rule == "R7.6"
    assert named.reasons[0].facts == {"amount": "500.00", "reference": "VHI-2026-0007", "scheduled_payment_id": 2}
    unknown = match_payment(due, Decimal("500.00"), "AA-2026-999999")
    assert unknown.reasons[0].rule == "R7.6"
    assert unknown.reasons[0].facts == {"amount": "500.00", "reference": "AA-2026-999999"}
    blank = match_payment(due, Decimal("500.00"), "  ")
    assert blank.scheduled == due[1]  # a blank reference is no reference


def test_an_ambiguous_payment_lists_every_candidate_R7_6() -> None:
    due = [
        DuePayment(1, AA1, Decimal("1000.00"), date(2026, 5, 15)),
        DuePayment(2, "AA-2026-000002", Decimal("1000.00"), date(2026, 5, 10)),
        DuePayment(3, AA1, Decimal("1000.00"), date(2026, 4, 15), paid=True),
    ]
    match = match_payment(due, Decimal("1000.00"), None)
    assert not match.matched
    assert match.reasons[0].rule == "R7.6"
    assert match.reasons[0].facts == {
        "amount": "1000.00",
        "reference": None,
        "candidates": [2, 1],
        "references": [AA1, "AA-2026-000002"],
    }


def test_the_replacement_letter_keeps_every_date_and_the_latest_paid_letter_R5_4() -> None:
    moved = registry(clinic_id=CLINIC_CAT2_OTHER)
    new_clinic = CLINICS[CLINIC_CAT2_OTHER]
    older = attachment(number="AL-2026-000001", valid_from=date(2026, 1, 13), valid_until=date(2026, 7, 1))
    newer = attachment(number="AL-2026-000002", valid_from=date(2026, 6, 1), valid_until=date(2026, 10, 1))
    for letters in ([older, newer], [newer, older]):
        plan = replacement_attachment_letter(moved, quarterly_policy(), new_clinic, date(2026, 6, 10), letters)
        assert plan == AttachmentLetterPlan(
            insured_id=101,
            clinic_id=CLINIC_CAT2_OTHER,
            generated_on=date(2026, 6, 10),
            send_on=date(2026, 6, 11),
            valid_from=date(2026, 6, 11),
            valid_until=date(2026, 10, 1),
            reasons=plan.reasons if plan else (),
        )
        assert plan is not None
        assert [(r.rule, r.facts) for r in plan.reasons] == [
            (
                "R5.4",
                {"previous_letter": "AL-2026-000002", "valid_until": "2026-10-01", "clinic_id": CLINIC_CAT2_OTHER},
            ),
            ("R7.2", {"send_on": "2026-06-11", "valid_from": "2026-06-11"}),
        ]


def test_the_replacement_carries_over_only_paid_time_left_at_another_clinic_R5_4() -> None:
    """R5.4: a letter that ends before the new clinic receives its letter, or one to the new clinic itself, is no paid
    time to carry over."""
    moved = registry(clinic_id=CLINIC_CAT2_OTHER)
    new_clinic = CLINICS[CLINIC_CAT2_OTHER]
    ends_friday = attachment(valid_from=date(2026, 4, 2), valid_until=date(2026, 6, 12))
    plan = replacement_attachment_letter(moved, make_policy(), new_clinic, date(2026, 6, 12), [ends_friday])
    assert plan is None  # sent on Monday 06-15, after the paid time
    own = attachment(clinic_id=CLINIC_CAT2_OTHER, valid_until=date(2026, 12, 31))
    ended = attachment(valid_until=date(2026, 6, 1))
    assert replacement_attachment_letter(moved, make_policy(), new_clinic, date(2026, 6, 10), [own, ended]) is None
    with pytest.raises(InvalidInput) as err:
        replacement_attachment_letter(registry(), make_policy(), new_clinic, date(2026, 6, 10), [ended])
    assert err.value.details == {"clinic_id": CLINIC_CAT2_OTHER}


def test_a_payment_on_the_previous_letters_first_day_continues_it_R7_3() -> None:
    """R7.3 boundary: bundled on the day the running letter starts (``<=``), the new one continues it, no gap."""
    running = attachment(valid_from=date(2026, 4, 2), valid_until=date(2026, 7, 1))
    plan = attachment_letter_for_payment(
        registry(),
        quarterly_policy(),
        CLINIC,
        date(2026, 4, 2),
        covers_due_on=date(2026, 7, 1),
        previous_letters=[running],
    )
    assert plan.valid_from == date(2026, 4, 2)
    assert [(r.rule, r.facts) for r in plan.reasons][2] == (
        "R7.3",
        {"previous_letter": "AL-2026-000001", "valid_from": "2026-04-02"},
    )


def test_every_reason_of_a_plan_carries_its_rule_and_facts_R7_1_R7_2_R6_2_R7_3() -> None:
    plan = attachment_letter_for_payment(registry(), quarterly_policy(), CLINIC, date(2026, 6, 11))
    assert [(r.rule, r.facts) for r in plan.reasons] == [
        ("R7.1", {"bundled_on": "2026-06-11", "policy_number": "VHI-2026-0007"}),
        ("R7.2", {"send_on": "2026-06-15", "clinic_id": CLINIC_CAT2}),
        ("R6.2", {"valid_from": "2026-06-15"}),
        (
            "R7.3",
            {
                "valid_until": "2026-07-01",
                "payment_mode": PaymentMode.INSTALLMENTS.value,
                "covers_due_on": None,
                "scheduled_due_on": "2026-07-01",
            },
        ),
    ]
