"""The Russian production calendar: business days for sending attachment letters (R7.2)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.calendar import add_business_days, is_business_day, next_business_day


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (date(2026, 6, 10), True),  # an ordinary Wednesday
        (date(2026, 6, 13), False),  # Saturday
        (date(2026, 6, 14), False),  # Sunday
        (date(2026, 6, 12), False),  # Russia Day
        (date(2026, 1, 5), False),  # New Year holidays
        (date(2026, 1, 9), False),  # day off substituted from a weekend
        (date(2025, 11, 1), True),  # a Saturday made a working day
        (date(2025, 12, 31), False),  # substituted day off
        (date(2026, 5, 11), False),  # Victory Day observed on Monday
    ],
)
def test_business_days_follow_the_production_calendar_R7_2(day: date, business: bool) -> None:
    assert is_business_day(day) is business


@pytest.mark.parametrize(
    ("day", "following"),
    [
        (date(2026, 6, 10), date(2026, 6, 11)),
        (date(2026, 6, 11), date(2026, 6, 15)),  # Russia Day on Friday, then the weekend
        (date(2026, 6, 12), date(2026, 6, 15)),
        (date(2025, 12, 30), date(2026, 1, 12)),  # over the New Year holidays
        (date(2025, 10, 31), date(2025, 11, 1)),  # to a working Saturday
    ],
)
def test_next_business_day_is_strictly_after_and_skips_days_off_R7_2(day: date, following: date) -> None:
    assert next_business_day(day) == following


def test_add_business_days_counts_only_business_days_R7_2() -> None:
    assert add_business_days(date(2026, 6, 10), 0) == date(2026, 6, 10)
    assert add_business_days(date(2026, 6, 10), 3) == date(2026, 6, 16)
    with pytest.raises(ValueError):
        add_business_days(date(2026, 6, 10), -1)


@settings(deadline=None, max_examples=300)
@given(day=st.dates(date(1992, 1, 1), date(2099, 12, 1)))
def test_next_business_day_skips_only_days_off_property_R7_2(day: date) -> None:
    following = next_business_day(day)
    assert following > day
    assert is_business_day(following)
    gap = (following - day).days
    assert all(not is_business_day(day + timedelta(days=i)) for i in range(1, gap))
