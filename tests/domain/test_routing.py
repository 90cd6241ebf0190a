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
        DayHours(time(20, 0), time(20, 0))
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


# ----------------------------------------------------------------------------- R9.5 shifts across midnight, R10.3

from datetime import date  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from server.domain.routing import local_date, person_timezone  # noqa: E402

MSK = ZoneInfo("Europe/Moscow")
FRIDAY_NIGHT = DispatchPoint(
    PointKind.BRANCH_CURATOR,
    "Kazan",
    "VHI curator, Kazan branch (night)",
    "+7 843 000-00-01",
    "Europe/Moscow",
    (None, None, None, None, DayHours(time(20, 0), time(2, 0)), None, None),
)


def test_branch_shift_across_midnight_answers_after_midnight_R9_5() -> None:
    """Fri 2026-12-04 20:00 - Sat 02:00: a call on Saturday at 01:00 belongs to Friday's shift."""
    decision = who_answers("Kazan", [FRIDAY_NIGHT], datetime(2026, 12, 5, 1, 0, tzinfo=MSK))
    assert decision.point is FRIDAY_NIGHT
    assert decision.rules == ("R9.2", "R9.5")
    assert decision.reasons[1].facts["shift_day"] == "2026-12-04"


def test_branch_shift_across_midnight_boundaries_R9_5() -> None:
    """Open at 20:00 sharp and until 01:59; closed at 02:00 and before 20:00; Thursday night is not Friday's."""
    assert FRIDAY_NIGHT.is_open(datetime(2026, 12, 4, 20, 0, tzinfo=MSK))
    assert not FRIDAY_NIGHT.is_open(datetime(2026, 12, 4, 19, 59, tzinfo=MSK))
    assert FRIDAY_NIGHT.is_open(datetime(2026, 12, 4, 23, 59, tzinfo=MSK))
    assert FRIDAY_NIGHT.is_open(datetime(2026, 12, 5, 1, 59, tzinfo=MSK))
    assert not FRIDAY_NIGHT.is_open(datetime(2026, 12, 5, 2, 0, tzinfo=MSK))
    assert not FRIDAY_NIGHT.is_open(datetime(2026, 12, 4, 1, 0, tzinfo=MSK))  # Friday 01:00: Thursday had no shift
    assert FRIDAY_NIGHT.shift_day(datetime(2026, 12, 4, 21, 0, tzinfo=MSK)) == date(2026, 12, 4)
    assert FRIDAY_NIGHT.shift_day(datetime(2026, 12, 5, 1, 0, tzinfo=MSK)) == date(2026, 12, 5) - timedelta(days=1)
    assert (
        who_answers("Kazan", [FRIDAY_NIGHT], datetime(2026, 12, 5, 2, 0, tzinfo=MSK)).point.kind
        is PointKind.FEDERAL_LINE
    )


def test_shift_after_midnight_follows_the_business_day_it_began_on_R9_5_R9_2() -> None:
    """A shift beginning on a public holiday (Fri 2026-01-02) is off, also after midnight."""
    assert not FRIDAY_NIGHT.is_open(datetime(2026, 1, 3, 1, 0, tzinfo=MSK))
    assert not FRIDAY_NIGHT.is_open(datetime(2026, 1, 2, 21, 0, tzinfo=MSK))


def test_overnight_hours_round_trip_and_describe_R9_5() -> None:
    hours = hours_from_json({"4": ["20:00", "02:00"]})
    assert hours[4] == DayHours(time(20, 0), time(2, 0)) and hours[4] is not None and hours[4].overnight
    assert hours_to_json(hours)["4"] == ["20:00", "02:00"]
    assert describe_hours(hours) == "Fri 20:00-02:00"
    assert not DayHours(time(8, 0), time(20, 0)).overnight
    assert not DayHours(time(8, 0), None).overnight
    assert not DayHours(time(8, 0), time(20, 0)).contains_after_midnight(time(1, 0))


def test_that_day_is_the_persons_local_date_R10_3() -> None:
    """Kamchatka at 2027-01-01 08:00 local is still 2026-12-31 in Moscow: served on 2027-01-01."""
    tz = person_timezone("Petropavlovsk-Kamchatsky")
    assert tz == "Asia/Kamchatka"
    moment = datetime(2027, 1, 1, 8, 0, tzinfo=ZoneInfo(tz))
    assert local_date(moment, tz) == date(2027, 1, 1)
    assert local_date(moment, person_timezone("Moscow")) == date(2026, 12, 31)
    # a city's desk zone comes first; an unknown city is on Moscow time (the federal line's)
    assert person_timezone("Yekaterinburg", DEFAULT_DISPATCH_POINTS) == "Asia/Yekaterinburg"
    assert person_timezone("Novosibirsk", DEMO_BRANCH_CURATORS) == "Asia/Novosibirsk"
    assert person_timezone("Atlantis") == "Europe/Moscow"
    with pytest.raises(InvalidInput):
        local_date(datetime(2027, 1, 1, 8, 0), tz)
