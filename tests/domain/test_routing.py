"""Who answers the insured person now, and the number on their card (R9.1-R9.4)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.errors import InvalidInput
from server.domain.routing import (
    ALWAYS,
    DEFAULT_DISPATCH_POINTS,
    DEMO_BRANCH_CURATORS,
    FEDERAL_LINE,
    FEDERAL_NUMBER,
    DayHours,
    DispatchPoint,
    PointKind,
    card_phone,
    city_key,
    describe_hours,
    hours_from_json,
    hours_to_json,
    weekly_hours,
    who_answers,
)

POINTS = DEFAULT_DISPATCH_POINTS + DEMO_BRANCH_CURATORS
WEDNESDAY = datetime(2026, 6, 10, tzinfo=UTC)  # a business day


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    """The UTC moment ``hour:minute`` on ``day``."""
    return day.replace(hour=hour, minute=minute)


def test_moscow_console_answers_round_the_clock_R9_1() -> None:
    for hour in (0, 3, 12, 23):
        decision = who_answers("Moscow", POINTS, at(WEDNESDAY, hour))
        assert decision.point.kind is PointKind.CONSOLE
        assert decision.rules == ("R9.1",)


@pytest.mark.parametrize("spelling", ["St Petersburg", "St. Petersburg", "Saint-Petersburg", "санкт-петербург", "SPB"])
def test_st_petersburg_console_answers_round_the_clock_whatever_the_spelling_R9_1(spelling: str) -> None:
    decision = who_answers(spelling, POINTS, datetime(2026, 6, 14, 1, 30, tzinfo=UTC))  # Sunday night
    assert decision.point.name == "St Petersburg dispatch console"


def test_ekaterinburg_console_answers_mon_sat_8_to_20_local_R9_1() -> None:
    open_ = who_answers("Ekaterinburg", POINTS, at(WEDNESDAY, 9))  # 14:00 in Yekaterinburg (UTC+5)
    assert open_.point.name == "Ekaterinburg dispatch console"
    assert open_.local_time is not None and open_.local_time.hour == 14
    assert who_answers("Yekaterinburg", POINTS, at(WEDNESDAY, 3)).point.kind is PointKind.CONSOLE  # 08:00 local
    saturday = who_answers("Ekaterinburg", POINTS, datetime(2026, 6, 13, 10, tzinfo=UTC))
    assert saturday.point.kind is PointKind.CONSOLE


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 6, 10, 15, 0, tzinfo=UTC),  # 20:00 local: closed
        datetime(2026, 6, 10, 2, 59, tzinfo=UTC),  # 07:59 local
        datetime(2026, 6, 14, 6, 0, tzinfo=UTC),  # Sunday
    ],
)
def test_ekaterinburg_outside_console_hours_goes_to_the_federal_line_R9_1_R9_3(now: datetime) -> None:
    decision = who_answers("Ekaterinburg", POINTS, now)
    assert decision.point.kind is PointKind.FEDERAL_LINE
    assert decision.phone == FEDERAL_NUMBER
    assert decision.rules == ("R9.1", "R9.3")
    assert "closed" in decision.reasons[0].message


def test_branch_curator_answers_in_business_hours_local_time_R9_2() -> None:
    kazan = who_answers("Kazan", POINTS, at(WEDNESDAY, 7))  # 10:00 Moscow time
    assert kazan.point.kind is PointKind.BRANCH_CURATOR
    assert kazan.rules == ("R9.2",)
    novosibirsk = who_answers("Novosibirsk", POINTS, at(WEDNESDAY, 2, 30))  # 09:30 in Novosibirsk (UTC+7)
    assert novosibirsk.point.name == "VHI curator, Novosibirsk branch"
    assert who_answers("Kazan", POINTS, at(WEDNESDAY, 2, 30)).point.kind is PointKind.FEDERAL_LINE  # 05:30 in Kazan


def test_branch_curator_is_closed_on_public_holidays_R9_2_R9_3() -> None:
    russia_day = datetime(2026, 6, 12, 8, 0, tzinfo=UTC)  # Friday 11:00 in Kazan, a public holiday
    decision = who_answers("Kazan", POINTS, russia_day)
    assert decision.point is FEDERAL_LINE
    assert decision.rules == ("R9.2", "R9.3")


def test_city_without_console_or_branch_gets_the_federal_line_R9_2_R9_3() -> None:
    decision = who_answers("Tula", POINTS, at(WEDNESDAY, 9))
    assert decision.point.kind is PointKind.FEDERAL_LINE
    assert decision.rules == ("R9.2", "R9.3")
    assert "8-800-100-63-65" in decision.reasons[-1].message
    assert decision.as_dict()["point"]["hours"] == {"always": True}


def test_routing_refuses_a_naive_moment_R9_3() -> None:
    with pytest.raises(InvalidInput):
        who_answers("Moscow", POINTS, datetime(2026, 6, 10, 9))


def test_routing_without_any_federal_point_in_the_data_still_answers_R9_3() -> None:
    assert who_answers("Tula", (), at(WEDNESDAY, 9)).point is FEDERAL_LINE


@pytest.mark.parametrize(
    ("city", "phone", "kind"),
    [
        ("Moscow", FEDERAL_NUMBER, PointKind.CONSOLE),
        ("Ekaterinburg", "+7 343 000-00-00", PointKind.CONSOLE),
        ("Kazan", "+7 843 000-00-00", PointKind.BRANCH_CURATOR),
        ("Tula", FEDERAL_NUMBER, PointKind.FEDERAL_LINE),
    ],
)
def test_card_shows_the_console_or_branch_number_else_the_federal_one_R9_4(
    city: str, phone: str, kind: PointKind
) -> None:
    decision = card_phone(city, POINTS)
    assert decision.phone == phone
    assert decision.point.kind is kind
    assert decision.rules == ("R9.4",)
    assert decision.local_time is None


def test_hours_round_trip_through_the_stored_json_R9_1() -> None:
    ekb = DEFAULT_DISPATCH_POINTS[2]
    stored = hours_to_json(ekb.hours)
    assert stored["0"] == ["08:00", "20:00"]
    assert stored["6"] is None
    assert hours_from_json(stored) == ekb.hours
    assert hours_from_json({"always": True}) == ALWAYS
    assert hours_to_json(ALWAYS) == {"always": True}
    late = weekly_hours([4], time(18, 0), None)
    assert hours_to_json(late)["4"] == ["18:00", "24:00"]
    assert hours_from_json(hours_to_json(late)) == late


def test_hours_are_described_for_people_R9_1() -> None:
    assert describe_hours(ALWAYS) == "24/7"
    assert describe_hours(DEFAULT_DISPATCH_POINTS[2].hours) == "Mon-Sat 08:00-20:00"
    assert describe_hours((None,) * 7) == "closed"
    assert DEMO_BRANCH_CURATORS[0].describe() == "Mon-Fri 09:00-18:00 Europe/Moscow on business days"


def test_bad_hours_and_zones_are_refused() -> None:
    """R9.1, R9.2: hours are local wall-clock times in a known IANA zone."""
    with pytest.raises(InvalidInput):
        DayHours(time(20, 0), time(8, 0))
    with pytest.raises(InvalidInput):
        weekly_hours([7], time(8, 0), time(9, 0))
    with pytest.raises(InvalidInput):
        hours_from_json({"0": ["8am", "9pm"]})
    with pytest.raises(InvalidInput):
        hours_from_json({"0": ["08:00"]})
    with pytest.raises(InvalidInput):
        DispatchPoint(PointKind.CONSOLE, "X", "X", "1", "Mars/Olympus", ALWAYS)
    with pytest.raises(InvalidInput):
        DispatchPoint(PointKind.CONSOLE, "X", "X", "1", "Europe/Moscow", ALWAYS[:6])


def test_city_key_ignores_case_dots_and_spelling() -> None:
    """R9.1: a person's city finds its console whatever the spelling."""
    assert city_key(" st.  Petersburg ") == city_key("Saint Petersburg") == "st petersburg"
    assert city_key("Москва") == "moscow"


CITIES = ["Moscow", "St Petersburg", "Ekaterinburg", "Kazan", "Novosibirsk", "Tula", ""]
aware_moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.timezones())


@settings(deadline=None, max_examples=300)
@given(now=aware_moments, city=st.sampled_from(CITIES))
def test_routing_always_returns_someone_open_at_that_moment_property_R9(now: datetime, city: str) -> None:
    decision = who_answers(city, POINTS, now)
    assert decision.point.is_open(now)
    assert decision.reasons


point_strategy = st.builds(
    DispatchPoint,
    kind=st.sampled_from(list(PointKind)),
    city=st.sampled_from(CITIES),
    name=st.text("abc", min_size=1, max_size=3),
    phone=st.just("+7 000"),
    timezone=st.sampled_from(["Europe/Moscow", "Asia/Yekaterinburg", "Asia/Vladivostok", "Europe/Kaliningrad"]),
    hours=st.builds(
        weekly_hours,
        st.sets(st.integers(0, 6)),
        st.times(max_value=time(12, 0)),
        st.one_of(st.none(), st.times(min_value=time(12, 0, 1))),
    ),
)


@settings(deadline=None, max_examples=200)
@given(
    now=aware_moments,
    city=st.sampled_from(CITIES),
    points=st.lists(point_strategy, max_size=6),
    offset_minutes=st.integers(-12 * 60, 14 * 60),
)
def test_routing_with_any_points_returns_someone_open_property_R9(
    now: datetime, city: str, points: list[DispatchPoint], offset_minutes: int
) -> None:
    moment = now.astimezone(timezone(timedelta(minutes=offset_minutes)))
    decision = who_answers(city, points, moment)
    assert decision.point.is_open(moment)
    if decision.point.kind is PointKind.CONSOLE:
        assert city_key(decision.point.city) == city_key(city)
