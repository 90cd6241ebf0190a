"""The honest wait: capacity, per-doctor limits, time left on shifts, offers in flight, else unknown (R11.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.domain.consultation import estimate_wait
from server.domain.wait import DoctorCapacity, WaitBasis, estimate_honest_wait

NOW = datetime(2026, 12, 1, 23, 51, tzinfo=UTC)  # 02:51 in Moscow
MEAN = timedelta(minutes=15)
MIN_LEFT = timedelta(minutes=10)


def _on_duty(doctor_id: int, *, busy: tuple[timedelta, ...] = (), limit: int = 3, ends_in: timedelta) -> DoctorCapacity:
    return DoctorCapacity(doctor_id, limit, NOW, NOW + ends_in - MIN_LEFT, tuple(NOW - ago for ago in busy))


def test_r11_7_the_only_doctor_at_their_limit_is_not_a_zero_wait() -> None:
    """3 of 3 busy, started 5, 10 and 14 minutes ago: the next patient waits for the first to end (1 min)."""
    full = [
        _on_duty(
            1, busy=(timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=14)), ends_in=timedelta(hours=5)
        )
    ]
    naive = estimate_wait(1, 1, 15)
    honest = estimate_honest_wait(1, full, MEAN, NOW)
    assert naive.minutes == 0
    assert honest.basis is WaitBasis.ESTIMATED and honest.minutes == 1
    second = estimate_honest_wait(2, full, MEAN, NOW)
    assert second.minutes == 5


def test_r11_7_doctors_in_their_last_minutes_take_nobody_the_next_shift_does() -> None:
    """02:51: both GPs end at 03:00 (no new requests in the last ten minutes); the next GP starts at 03:00."""
    ending = [_on_duty(1, ends_in=timedelta(minutes=9)), _on_duty(2, ends_in=timedelta(minutes=9))]
    assert estimate_honest_wait(1, ending, MEAN, NOW).minutes is None
    next_shift = DoctorCapacity(3, 3, NOW + timedelta(minutes=9), NOW + timedelta(hours=12))
    honest = estimate_honest_wait(1, [*ending, next_shift], MEAN, NOW)
    assert honest.minutes == 9
    assert estimate_wait(1, 2, 15).minutes == 0  # what the patient was told


def test_r11_7_offers_in_flight_occupy_slots() -> None:
    one_slot = [DoctorCapacity(1, 1, NOW, NOW + timedelta(hours=4), (NOW,))]
    assert estimate_honest_wait(1, one_slot, MEAN, NOW).minutes == 15


def test_r11_7_free_capacity_is_no_wait_and_an_offered_request_is_zero() -> None:
    free = [_on_duty(1, ends_in=timedelta(hours=4))]
    assert estimate_honest_wait(1, free, MEAN, NOW).minutes == 0
    assert estimate_honest_wait(3, free, MEAN, NOW).minutes == 0
    assert estimate_honest_wait(4, free, MEAN, NOW).minutes == 15
    assert estimate_honest_wait(1, [], MEAN, NOW, offered=True).basis is WaitBasis.OFFERED


def test_r11_7_nobody_connected_or_scheduled_is_unknown_not_zero() -> None:
    offline = [DoctorCapacity(1, 3, NOW, NOW + timedelta(hours=4), connected=False)]
    assert estimate_honest_wait(1, offline, MEAN, NOW).basis is WaitBasis.UNKNOWN
    assert estimate_honest_wait(1, [], MEAN, NOW).minutes is None
    far = [DoctorCapacity(1, 3, NOW + timedelta(hours=15), NOW + timedelta(hours=27))]
    assert estimate_honest_wait(1, far, MEAN, NOW).minutes is None
