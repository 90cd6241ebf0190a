"""Duty roster: shift checks, coverage gaps, who is on duty and the R11.2 alarm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.errors import Conflict, InvalidInput
from server.domain.roster import (
    GENERAL_PRACTICE,
    SPECIALTIES,
    SPECIALTY_CODES,
    Gap,
    HourCoverage,
    Shift,
    coverage_gaps,
    duty_ends_at,
    ensure_continuous_duty_within,
    ensure_no_overlaps,
    get_specialty,
    hourly_coverage,
    on_duty,
    overlapping_shifts,
    roster_alarm,
    shift_ending_within,
    validate_shift,
)

DAY = datetime(2026, 12, 1, tzinfo=UTC)


def at(hour: float) -> datetime:
    """An instant ``hour`` hours after midnight of 2026-12-01 UTC."""
    return DAY + timedelta(hours=hour)


def gp(shift_id: int | None, doctor_id: int, start: float, end: float, code: str = GENERAL_PRACTICE) -> Shift:
    return Shift(shift_id, doctor_id, code, at(start), at(end))


# --------------------------------------------------------------------------- specialties (R11.1)


def test_specialties_list_general_practice_first_with_labels_r11_1() -> None:
    assert SPECIALTIES[0].code == GENERAL_PRACTICE
    assert [s.code for s in SPECIALTIES] == [
        "general_practice",
        "pediatrics",
        "cardiology",
        "neurology",
        "dermatology",
        "gynecology",
        "otolaryngology",
        "gastroenterology",
        "endocrinology",
        "psychotherapy",
    ]
    assert all(s.label and s.practitioner for s in SPECIALTIES)
    assert {s.code for s in SPECIALTIES} == SPECIALTY_CODES
    assert get_specialty("cardiology").practitioner == "cardiologist"


def test_unknown_specialty_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        get_specialty("surgery")
    assert caught.value.code == "unknown_specialty"


# --------------------------------------------------------------------------- validate_shift


def test_a_valid_shift_passes_unchanged() -> None:
    shift = gp(1, 7, 8, 20)
    assert validate_shift(shift) is shift


@pytest.mark.parametrize(
    ("shift", "code"),
    [
        (Shift(None, 1, GENERAL_PRACTICE, datetime(2026, 12, 1, 8), datetime(2026, 12, 1, 9)), "not_utc"),
        (
            Shift(
                None,
                1,
                GENERAL_PRACTICE,
                datetime(2026, 12, 1, 8, tzinfo=timezone(timedelta(hours=3))),
                datetime(2026, 12, 1, 9, tzinfo=timezone(timedelta(hours=3))),
            ),
            "not_utc",
        ),
        (gp(1, 1, 9, 9), "invalid_shift_period"),
        (gp(1, 1, 10, 9), "invalid_shift_period"),
        (gp(1, 1, 0, 24.5), "shift_too_long"),
        (gp(1, 1, 0, 1, code="surgery"), "unknown_specialty"),
    ],
)
def test_impossible_shifts_are_refused(shift: Shift, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_shift(shift)
    assert caught.value.code == code


def test_max_hours_is_configurable() -> None:
    validate_shift(gp(None, 1, 0, 24))
    with pytest.raises(InvalidInput):
        validate_shift(gp(1, 1, 0, 13), max_hours=12)


# --------------------------------------------------------------------------- overlaps


def test_a_double_booked_doctor_is_found_and_refused_on_import() -> None:
    shifts = [gp(1, 7, 8, 20), gp(2, 7, 19, 23, code="pediatrics"), gp(3, 8, 8, 20)]
    assert overlapping_shifts(shifts) == [(shifts[0], shifts[1])]
    with pytest.raises(Conflict) as caught:
        ensure_no_overlaps(shifts)
    assert caught.value.code == "shift_overlap"
    assert "doctor 7" in caught.value.message
    assert caught.value.details["overlaps"][0]["shift_ids"] == [1, 2]


def test_back_to_back_shifts_of_one_doctor_do_not_overlap() -> None:
    shifts = [gp(1, 7, 8, 20), gp(2, 7, 20, 32)]
    assert overlapping_shifts(shifts) == []
    ensure_no_overlaps(shifts)


def test_every_overlapping_pair_is_reported_including_a_long_shift_spanning_two() -> None:
    long_shift, first, second = gp(1, 7, 0, 24), gp(2, 7, 1, 2), gp(3, 7, 5, 6)
    assert overlapping_shifts([second, first, long_shift]) == [(long_shift, first), (long_shift, second)]


# --------------------------------------------------------------------------- gaps (R11.2)


def test_gaps_are_exact_and_merged_r11_2() -> None:
    shifts = [gp(1, 1, 0, 3), gp(2, 2, 5, 12), gp(3, 3, 11, 14.5), gp(4, 4, 20, 30)]
    assert coverage_gaps(shifts, GENERAL_PRACTICE, at(0), at(24)) == [
        Gap(at(3), at(5)),
        Gap(at(14.5), at(20)),
    ]


def test_shifts_of_other_specialties_do_not_cover_general_practice_r11_2() -> None:
    shifts = [gp(1, 1, 0, 24, code="cardiology")]
    assert coverage_gaps(shifts, GENERAL_PRACTICE, at(0), at(24)) == [Gap(at(0), at(24))]


def test_an_empty_window_has_no_gap() -> None:
    assert coverage_gaps([], GENERAL_PRACTICE, at(3), at(3)) == []


def test_a_window_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        coverage_gaps([], GENERAL_PRACTICE, at(3), at(2))
    assert caught.value.code == "invalid_period"


# Shifts on a 15-minute grid over two days; windows inside them.
_quarter = st.integers(min_value=0, max_value=4 * 48)
_shift = st.builds(
    lambda doctor, a, length, code: Shift(None, doctor, code, at(a / 4), at((a + length) / 4)),
    st.integers(min_value=1, max_value=6),
    _quarter,
    st.integers(min_value=1, max_value=4 * 24),
    st.sampled_from([GENERAL_PRACTICE, "pediatrics"]),
)


@settings(deadline=None, max_examples=150)
@given(shifts=st.lists(_shift, max_size=12), bounds=st.tuples(_quarter, _quarter))
def test_gaps_and_duty_partition_the_window_exactly_r11_2(shifts: list[Shift], bounds: tuple[int, int]) -> None:
    """Every instant of the window is either in exactly one gap or covered by a GP shift, never both."""
    start, end = at(min(bounds) / 4), at(max(bounds) / 4)
    gaps = coverage_gaps(shifts, GENERAL_PRACTICE, start, end)
    for earlier, later in pairwise(gaps):
        assert earlier.end < later.start  # sorted, disjoint and merged
    assert all(start <= g.start < g.end <= end for g in gaps)
    t = start
    while t < end:
        probe = t + timedelta(minutes=7)  # inside the 15-minute cell, away from its edges
        covered = any(s.specialty == GENERAL_PRACTICE and s.covers(probe) for s in shifts)
        in_gaps = sum(1 for g in gaps if g.start <= probe < g.end)
        assert in_gaps == (0 if covered else 1)
        assert covered == bool(on_duty(shifts, probe, GENERAL_PRACTICE))
        t += timedelta(minutes=15)
    gap_total = sum((g.duration for g in gaps), timedelta())
    duty_cells = sum(
        1
        for k in range(int((end - start) / timedelta(minutes=15)))
        if any(s.specialty == GENERAL_PRACTICE and s.covers(start + timedelta(minutes=15 * k + 7)) for s in shifts)
    )
    assert gap_total + duty_cells * timedelta(minutes=15) == end - start


# --------------------------------------------------------------------------- hourly grid


def test_hourly_coverage_counts_the_fewest_doctors_in_each_hour() -> None:
    shifts = [gp(1, 1, 0, 2), gp(2, 2, 0.5, 3), gp(3, 3, 1, 2, code="cardiology")]
    grid = hourly_coverage(shifts, at(0), at(3))
    assert grid[GENERAL_PRACTICE] == [HourCoverage(at(0), 1), HourCoverage(at(1), 2), HourCoverage(at(2), 1)]
    assert grid["cardiology"] == [HourCoverage(at(0), 0), HourCoverage(at(1), 1), HourCoverage(at(2), 0)]
    assert set(grid) == SPECIALTY_CODES  # nobody rostered shows as zeros, not as absent


def test_hourly_coverage_shows_zero_for_an_hour_covered_only_in_part() -> None:
    grid = hourly_coverage([gp(1, 1, 0, 1.5)], at(0), at(2), specialties=[GENERAL_PRACTICE])
    assert grid == {GENERAL_PRACTICE: [HourCoverage(at(0), 1), HourCoverage(at(1), 0)]}


def test_hourly_coverage_counts_a_double_booked_doctor_once_and_cuts_the_last_hour() -> None:
    grid = hourly_coverage([gp(1, 1, 0, 2), gp(2, 1, 0, 2)], at(0), at(1.5), specialties=[GENERAL_PRACTICE])
    assert grid[GENERAL_PRACTICE] == [HourCoverage(at(0), 1), HourCoverage(at(1), 1)]


# --------------------------------------------------------------------------- on duty and handover


def test_on_duty_includes_start_and_excludes_end() -> None:
    shifts = [gp(1, 1, 8, 20), gp(2, 2, 20, 32), gp(3, 3, 8, 20, code="pediatrics")]
    assert on_duty(shifts, at(8)) == [1, 3]
    assert on_duty(shifts, at(8), GENERAL_PRACTICE) == [1]
    assert on_duty(shifts, at(20), GENERAL_PRACTICE) == [2]


def test_duty_end_follows_back_to_back_shifts() -> None:
    shifts = [gp(1, 1, 0, 8), gp(2, 1, 8, 16), gp(3, 1, 18, 20)]
    assert duty_ends_at(shifts, 1, at(3)) == at(16)
    assert duty_ends_at(shifts, 1, at(17)) is None
    assert duty_ends_at(shifts, 2, at(3)) is None


def test_shift_ending_within_tells_when_to_hand_over() -> None:
    shifts = [gp(1, 1, 0, 8), gp(2, 1, 8, 16)]
    assert not shift_ending_within(shifts, 1, at(7.9), 10)  # the next shift follows on
    assert shift_ending_within(shifts, 1, at(16) - timedelta(minutes=10), 10)
    assert not shift_ending_within(shifts, 1, at(16) - timedelta(minutes=11), 10)
    assert shift_ending_within(shifts, 1, at(17), 10)  # already off duty


# --------------------------------------------------------------------------- alarm (R11.2)


def test_a_gap_in_general_practice_is_an_alarm_with_a_readable_reason_r11_2() -> None:
    shifts = [gp(1, 1, 0, 3), gp(2, 2, 5, 24)]
    decision = roster_alarm(shifts, at(0), at(24))
    assert not decision.allowed
    assert decision.rules == ("R11.2",)
    assert decision.reasons[0].message == "no general practitioner on duty 2026-12-01 03:00-05:00 UTC"
    assert decision.reasons[0].facts["specialty"] == GENERAL_PRACTICE
    assert decision.reasons[0].facts["minutes"] == 120


def test_every_gap_gets_its_own_reason_and_gaps_across_midnight_name_both_dates_r11_2() -> None:
    shifts = [gp(1, 1, 1, 22), gp(2, 2, 26, 48)]
    decision = roster_alarm(shifts, at(0), at(48))
    assert [r.message for r in decision.reasons] == [
        "no general practitioner on duty 2026-12-01 00:00-01:00 UTC",
        "no general practitioner on duty 2026-12-01 22:00 - 2026-12-02 02:00 UTC",
    ]


def test_full_cover_is_allowed_and_explained_r11_2() -> None:
    decision = roster_alarm([gp(1, 1, 0, 12), gp(2, 2, 12, 24)], at(0), at(24))
    assert decision.allowed
    assert decision.rules == ("R11.2",)
    assert decision.reasons[0].message == (
        "a general practitioner on duty at every moment of 2026-12-01 00:00 - 2026-12-02 00:00 UTC"
    )


def test_a_naive_now_is_a_bug_not_bad_input() -> None:
    with pytest.raises(ValueError):
        on_duty([], datetime(2026, 12, 1, 3))


def test_other_specialties_alarm_only_when_asked() -> None:
    shifts = [gp(1, 1, 0, 24)]
    assert roster_alarm(shifts, at(0), at(24)).allowed
    decision = roster_alarm(shifts, at(0), at(24), specialties=[GENERAL_PRACTICE, "pediatrics"])
    assert [r.message for r in decision.reasons] == ["no pediatrician on duty 2026-12-01 00:00 - 2026-12-02 00:00 UTC"]


def test_the_all_clear_names_each_required_specialty() -> None:
    shifts = [gp(1, 1, 0, 24), gp(2, 2, 0, 24, code="otolaryngology")]
    decision = roster_alarm(shifts, at(0), at(2), specialties=[GENERAL_PRACTICE, "otolaryngology"])
    assert decision.allowed
    assert decision.reasons[0].message == (
        "a general practitioner and an otolaryngologist on duty at every moment of 2026-12-01 00:00-02:00 UTC"
    )


def test_continuous_duty_is_limited_across_back_to_back_shifts() -> None:
    """A 24-hour shift next to a 12-hour one is 36 hours on duty: refused; the limit is configurable."""
    run = [gp(1, 7, 0, 24), gp(2, 7, 24, 36, "cardiology")]
    with pytest.raises(Conflict) as caught:
        ensure_continuous_duty_within(run)
    assert caught.value.code == "continuous_duty_too_long"
    assert caught.value.details["hours"] == 36
    ensure_continuous_duty_within(run, max_hours=36)
    ensure_continuous_duty_within([gp(1, 7, 0, 24), gp(2, 7, 25, 37), gp(3, 8, 24, 36)])
