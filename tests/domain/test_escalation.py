"""Offer rounds, connected doctors only, bounded escalation (R11.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.domain.assignment import DoctorLoad
from server.domain.escalation import (
    EscalationPolicy,
    EscalationReason,
    OfferAction,
    WaitingRequest,
    after_decline,
    after_lapse,
    connected_only,
    escalation_due,
    plan_offer,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = EscalationPolicy(max_lapses=2, max_wait=timedelta(minutes=10), round_pause=timedelta(minutes=3))


def _doctor(doctor_id: int, load: int = 0, ends_in: timedelta = timedelta(hours=6)) -> DoctorLoad:
    return DoctorLoad(doctor_id, frozenset({"dermatology"}), load, True, NOW + ends_in, 3)


def _request(**fields: object) -> WaitingRequest:
    return WaitingRequest(1, "dermatology", NOW - timedelta(minutes=1), **fields)  # type: ignore[arg-type]


def test_r11_7_a_decline_sticks_for_the_round_then_the_round_ends_once() -> None:
    """The only dermatologist declines: not offered again at once; the round ends and then waits."""
    only = [_doctor(7)]
    assert plan_offer(_request(), only, 3, NOW, POLICY).doctor_id == 7
    declined = after_decline(_request(), 7)
    assert plan_offer(declined, only, 3, NOW, POLICY).action is OfferAction.END_ROUND
    ended = WaitingRequest(**{**_fields(declined), "round_ended_at": NOW})
    for later in (NOW, NOW + timedelta(minutes=2, seconds=59)):
        assert plan_offer(ended, only, 3, later, POLICY).action is OfferAction.WAIT
    new_round = plan_offer(ended, only, 3, NOW + timedelta(minutes=3), POLICY)
    assert (new_round.action, new_round.doctor_id) == (OfferAction.NEW_ROUND, 7)


def _fields(request: WaitingRequest) -> dict[str, object]:
    return {name: getattr(request, name) for name in WaitingRequest.__slots__}


def test_r11_7_two_silent_doctors_are_each_offered_once_per_round() -> None:
    pair = [_doctor(1), _doctor(2)]
    request = _request()
    offered: list[int] = []
    for _ in range(5):
        plan = plan_offer(request, pair, 3, NOW, POLICY)
        if plan.action is not OfferAction.OFFER:
            break
        assert plan.doctor_id is not None
        offered.append(plan.doctor_id)
        request = after_lapse(request, plan.doctor_id)
    assert sorted(offered) == [1, 2]
    assert request.lapses == 2
    assert escalation_due(request, pair, frozenset({1, 2}), 3, NOW, POLICY) is EscalationReason.OFFERS_LAPSED


def test_r11_7_only_connected_doctors_are_offered() -> None:
    both = [_doctor(1), _doctor(2, load=1)]
    online = connected_only(both, frozenset({2}))
    assert plan_offer(_request(), online, 3, NOW, POLICY).doctor_id == 2
    assert plan_offer(_request(), connected_only(both, frozenset()), 3, NOW, POLICY).action is OfferAction.WAIT


def test_r11_7_escalation_reasons() -> None:
    doctors = [_doctor(1)]
    assert escalation_due(_request(urgent=True), doctors, frozenset({1}), 3, NOW, POLICY) is EscalationReason.URGENT
    assert escalation_due(_request(), [], frozenset(), 3, NOW, POLICY) is EscalationReason.NOBODY_ON_DUTY
    assert escalation_due(_request(), doctors, frozenset(), 3, NOW, POLICY) is EscalationReason.NOBODY_CONNECTED
    full = [_doctor(1, load=3)]
    assert escalation_due(_request(), full, frozenset({1}), 3, NOW, POLICY) is EscalationReason.ALL_FULL
    ending = [_doctor(1, ends_in=timedelta(minutes=9))]
    assert escalation_due(_request(), ending, frozenset({1}), 3, NOW, POLICY) is EscalationReason.ALL_FULL
    ended = _request(round_ended_at=NOW)
    assert escalation_due(ended, doctors, frozenset({1}), 3, NOW, POLICY) is EscalationReason.ROUND_EXHAUSTED
    old = WaitingRequest(1, "dermatology", NOW - timedelta(minutes=10))
    assert escalation_due(old, doctors, frozenset({1}), 3, NOW, POLICY) is EscalationReason.WAITED_TOO_LONG
    assert escalation_due(_request(), doctors, frozenset({1}), 3, NOW, POLICY) is None


def test_r11_7_a_request_escalates_at_most_once() -> None:
    done = _request(escalated_at=NOW, urgent=True)
    assert escalation_due(done, [], frozenset(), 3, NOW, POLICY) is None
