"""Booking into the letter's clinic and telling the person the visit details (R2.4, R2.6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.domain.errors import InvalidInput, RuleViolation
from server.domain.visits import check_booking, compose_visit_notice
from tests.domain.coverage_facts import CLINIC_CAT2, CLINIC_CAT2_OTHER, CLINICS, make_letter

MSK = timezone(timedelta(hours=3))
WHEN = datetime(2026, 3, 10, 14, 30, tzinfo=MSK)
CLINIC = CLINICS[CLINIC_CAT2]


def test_booking_at_the_letters_clinic_within_its_validity_is_allowed_R2_4() -> None:
    decision = check_booking(make_letter(), CLINIC, ["Blood test"], WHEN)
    assert decision.allowed
    assert decision.rules == ("R2.4",)


def test_booking_elsewhere_after_expiry_or_for_other_services_lists_every_problem_R2_4() -> None:
    decision = check_booking(make_letter(), CLINICS[CLINIC_CAT2_OTHER], ["MRI"], datetime(2026, 5, 1, 10, tzinfo=MSK))
    assert not decision.allowed
    assert decision.rules == ("R2.4", "R2.4", "R2.4")


def test_booking_needs_an_aware_time_R2_4() -> None:
    with pytest.raises(InvalidInput):
        check_booking(make_letter(), CLINIC, [], datetime(2026, 3, 10, 14, 30))


def test_visit_notice_tells_address_doctor_time_services_and_letter_number_R2_6() -> None:
    notice = compose_visit_notice(CLINIC, " Dr  Ivanova ", WHEN, ["blood test"], make_letter())
    text = notice.text()
    for part in ("Clinic 10", "10 Tverskaya St", "Dr Ivanova", "10.03.2026 at 14:30", "blood test", "LG-2026-000123"):
        assert part in text
    assert notice.as_dict()["scheduled_at"] == "2026-03-10T14:30:00+03:00"


def test_visit_notice_refused_without_address_or_doctor_R2_6() -> None:
    with pytest.raises(RuleViolation) as err:
        compose_visit_notice(replace(CLINIC, address=""), "  ", WHEN, [], make_letter())
    assert err.value.rules == ("R2.6", "R2.6")


def test_visit_notice_refused_when_the_booking_does_not_fit_the_letter_R2_4() -> None:
    with pytest.raises(RuleViolation) as err:
        compose_visit_notice(CLINIC, "Dr Ivanova", datetime(2026, 5, 1, tzinfo=UTC), [], make_letter())
    assert err.value.rules == ("R2.4",)
