"""The Russian production calendar (R7.2): which days are business days, from the ``holidays`` package."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Final

import holidays

# A year has at most a couple of weeks of consecutive days off (New Year holidays); a search that
# runs longer than this means the calendar data is broken, not that the next business day is far.
_MAX_SEARCH_DAYS: Final = 60


@lru_cache(maxsize=64)
def _russia(year: int) -> holidays.HolidayBase:
    """The calendar of one year; built once, then only read (``expand=False`` keeps it immutable)."""
    return holidays.country_holidays("RU", years=year, expand=False)


def is_business_day(day: date) -> bool:
    """Whether ``day`` is a working day in Russia.

    Args:
        day: Any calendar date.

    Returns:
        False for weekends, public holidays and substituted days off; True for ordinary weekdays
        and for the Saturdays the government turns into workdays (R7.2 counts business days this way).
    """
    return bool(_russia(day.year).is_working_day(day))


def next_business_day(day: date) -> date:
    """The first business day strictly after ``day``.

    Args:
        day: The reference day (e.g. the day money was bundled, R7.1).

    Returns:
        The day an attachment letter generated on ``day`` goes to the clinic (R7.2).
    """
    candidate = day
    for _ in range(_MAX_SEARCH_DAYS):
        candidate += timedelta(days=1)
        if is_business_day(candidate):
            return candidate
    raise RuntimeError(f"no business day within {_MAX_SEARCH_DAYS} days after {day}")  # pragma: no cover


def add_business_days(day: date, count: int) -> date:
    """The ``count``-th business day after ``day`` (``count`` >= 0; 0 returns ``day`` itself).

    Args:
        day: The reference day.
        count: How many business days to move forward.

    Returns:
        The resulting business day, or ``day`` when ``count`` is 0.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    for _ in range(count):
        day = next_business_day(day)
    return day
