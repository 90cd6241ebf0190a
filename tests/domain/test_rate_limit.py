"""The per-socket token bucket (checklist B8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.rate_limit import TokenBucket


def test_a_full_bucket_allows_its_burst_then_refuses_with_the_wait_until_the_next_token() -> None:
    bucket = TokenBucket(capacity=3, per_second=100 / 60, now=10.0)
    assert [bucket.take(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take(10.0)
    assert wait == pytest.approx(0.6)  # 100 a minute: one every 0.6 s
    assert bucket.take(10.0 + wait - 0.01) > 0  # refused, and the refusal took nothing
    assert bucket.take(10.0 + wait) == 0.0


def test_refill_never_exceeds_the_capacity() -> None:
    bucket = TokenBucket(capacity=2, per_second=1, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(3600.0) == 0.0
    assert bucket.take(3600.0) == 0.0
    assert bucket.take(3600.0) > 0


def test_a_clock_going_backwards_grants_nothing() -> None:
    bucket = TokenBucket(capacity=1, per_second=1, now=100.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(50.0) > 0


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1), (1, 0), (5, -1)])
def test_a_bucket_that_could_never_allow_anything_is_refused(capacity: float, rate: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity, rate, 0.0)


@given(
    capacity=st.integers(min_value=1, max_value=50),
    per_minute=st.integers(min_value=1, max_value=6000),
    gaps=st.lists(st.floats(min_value=0, max_value=5), max_size=300),
)
def test_over_any_span_at_most_the_burst_plus_the_earned_tokens_are_allowed(
    capacity: int, per_minute: int, gaps: list[float]
) -> None:
    per_second = per_minute / 60
    bucket = TokenBucket(capacity, per_second, now=0.0)
    now = 0.0
    allowed = 0
    for gap in gaps:
        now += gap
        allowed += bucket.take(now) == 0.0
    assert allowed <= capacity + now * per_second + 1e-9
