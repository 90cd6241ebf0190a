"""Assignment of queued consultations to on-duty doctors (R11.1: someone answers round the clock, R11.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.assignment import (
    DoctorLoad,
    Ineligible,
    QueuedItem,
    choose_doctor,
    ineligibility,
    offer_deadline,
    plan_offers,
    queue_position,
)

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
GP = "general_practice"
GP_ONLY = frozenset({GP})


def doctor(
    doctor_id: int,
    load: int = 0,
    *,
    hours_left: float = 8,
    specialties: frozenset[str] = GP_ONLY,
    on_duty: bool = True,
    max_active: int | None = None,
) -> DoctorLoad:
    ends = NOW + timedelta(hours=hours_left) if on_duty else None
    return DoctorLoad(doctor_id, specialties, load, on_duty, ends, max_active)


def test_the_least_loaded_doctor_is_chosen() -> None:
    assert choose_doctor([doctor(1, 2), doctor(2, 0), doctor(3, 1)], GP, frozenset(), 3, NOW) == 2


def test_ties_go_to_the_latest_shift_end_then_the_lowest_id() -> None:
    assert choose_doctor([doctor(1, hours_left=2), doctor(2, hours_left=6)], GP, frozenset(), 3, NOW) == 2
    assert choose_doctor([doctor(5), doctor(4), doctor(9)], GP, frozenset(), 3, NOW) == 4


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (doctor(1, on_duty=False), Ineligible.OFF_DUTY),
        (doctor(1, specialties=frozenset({"cardiology"})), Ineligible.OTHER_SPECIALTY),
        (doctor(7), Ineligible.SKIPPED),
        (doctor(1, 3), Ineligible.AT_CAPACITY),
        (doctor(1, 1, max_active=1), Ineligible.AT_CAPACITY),
        (doctor(1, hours_left=10 / 60), Ineligible.SHIFT_ENDING),
    ],
)
def test_ineligible_doctors_are_never_chosen(candidate: DoctorLoad, why: Ineligible) -> None:
    assert ineligibility(candidate, GP, frozenset({7}), 3, NOW) is why
    assert choose_doctor([candidate], GP, frozenset({7}), 3, NOW) is None


def test_a_doctors_own_limit_overrides_the_global_one() -> None:
    assert choose_doctor([doctor(1, 4, max_active=5)], GP, frozenset(), 3, NOW) == 1


def test_the_minimum_remaining_shift_is_configurable() -> None:
    candidate = doctor(1, hours_left=0.25)
    assert choose_doctor([candidate], GP, frozenset(), 3, NOW) == 1
    assert choose_doctor([candidate], GP, frozenset(), 3, NOW, timedelta(minutes=30)) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        choose_doctor([doctor(1)], GP, frozenset(), 3, datetime(2026, 6, 10, 9))


_candidate = st.builds(
    lambda doctor_id, load, minutes, specialties, on_duty, own_limit: DoctorLoad(
        doctor_id,
        specialties,
        load,
        on_duty,
        NOW + timedelta(minutes=minutes) if on_duty else None,
        own_limit,
    ),
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=600),
    st.frozensets(st.sampled_from([GP, "pediatrics", "cardiology"]), max_size=2),
    st.booleans(),
    st.none() | st.integers(min_value=1, max_value=5),
)


@settings(deadline=None, max_examples=300)
@given(
    candidates=st.lists(_candidate, max_size=10, unique_by=lambda c: c.doctor_id),
    skipped=st.frozensets(st.integers(min_value=1, max_value=30), max_size=5),
    max_active=st.integers(min_value=1, max_value=4),
)
def test_the_choice_is_always_eligible_and_minimally_loaded(
    candidates: list[DoctorLoad], skipped: frozenset[int], max_active: int
) -> None:
    """Never a skipped, off-duty, over-limit or leaving doctor; always one of the least loaded."""
    chosen = choose_doctor(candidates, GP, skipped, max_active, NOW)
    eligible = [c for c in candidates if ineligibility(c, GP, skipped, max_active, NOW) is None]
    if not eligible:
        assert chosen is None
        return
    by_id = {c.doctor_id: c for c in candidates}
    assert chosen is not None
    pick = by_id[chosen]
    assert pick.on_duty and GP in pick.specialties and chosen not in skipped
    assert pick.active_count < (pick.max_active or max_active)
    assert pick.shift_ends_at is not None and pick.shift_ends_at - NOW > timedelta(minutes=10)
    assert pick.active_count == min(c.active_count for c in eligible)
    assert chosen == choose_doctor(list(reversed(candidates)), GP, skipped, max_active, NOW)  # order-independent


def test_a_whole_queue_is_planned_oldest_first_counting_each_offer_as_load() -> None:
    queue = [
        QueuedItem(101, GP),
        QueuedItem(102, GP, frozenset({1})),
        QueuedItem(103, "cardiology"),
        QueuedItem(104, GP),
        QueuedItem(105, GP),
    ]
    candidates = [doctor(1, 0, max_active=1), doctor(2, 0, max_active=2)]
    assert plan_offers(queue, candidates, 3, NOW) == [(101, 1), (102, 2), (104, 2)]


def test_the_offer_deadline_is_now_plus_the_timeout() -> None:
    assert offer_deadline(NOW, timedelta(seconds=90)) == NOW + timedelta(seconds=90)
    with pytest.raises(ValueError):
        offer_deadline(NOW, timedelta(0))


def test_queue_position_is_one_based_or_none() -> None:
    assert queue_position([5, 9, 3], 5) == 1
    assert queue_position([5, 9, 3], 3) == 3
    assert queue_position([5, 9, 3], 4) is None
