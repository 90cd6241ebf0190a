"""The call state machine and each participant's negotiation state (R11.1 audio/video consultations)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling import calls, protocol
from signaling.protocol import ProtocolError

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def ringing() -> calls.CallState:
    return calls.start_call(7, "video", T0)


def code_of(call: object, *args: object) -> str:
    with pytest.raises(ProtocolError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.code


def test_doctor_starts_it_rings_until_the_patient_answers() -> None:
    state, rejoin = calls.join(ringing(), "doctor", "leg-d", T0)
    assert state.status == calls.STATUS_RINGING and not rejoin and state.answered_at is None
    state, rejoin = calls.join(state, "patient", "leg-p", T0 + timedelta(seconds=4))
    assert state.status == calls.STATUS_ACTIVE and not rejoin
    assert state.present("patient") and state.present("doctor")
    ended = calls.hang_up(state, "doctor", T0 + timedelta(seconds=64))
    assert ended.ended and ended.ended_by == "doctor" and ended.end_reason == protocol.END_HANGUP
    assert ended.duration_seconds == 60.0
    assert code_of(calls.hang_up, ended, "patient", T0 + timedelta(seconds=65)) == protocol.ERR_CALL_ENDED
    assert code_of(calls.join, ended, "patient", "leg-x", T0 + timedelta(seconds=65)) == protocol.ERR_CALL_ENDED


def active() -> calls.CallState:
    state, _ = calls.join(ringing(), "doctor", "leg-d", T0)
    state, _ = calls.join(state, "patient", "leg-p", T0)
    return state


def test_a_dropped_participant_may_rejoin_within_the_grace_period() -> None:
    state = calls.drop(active(), "patient", "leg-p", T0 + timedelta(seconds=10))
    assert not state.present("patient")
    assert state.rejoin_deadline("patient") == T0 + timedelta(seconds=40)
    state, rejoin = calls.join(state, "patient", "leg-p2", T0 + timedelta(seconds=39))
    assert rejoin and state.present("patient") and state.legs["patient"] == "leg-p2" and not state.ended


def test_after_the_grace_period_the_call_ends_as_peer_lost() -> None:
    state = calls.drop(active(), "patient", "leg-p", T0 + timedelta(seconds=10))
    expired = calls.expire(state, T0 + timedelta(seconds=40))
    assert expired.ended and expired.end_reason == protocol.END_PEER_LOST and expired.ended_by is None
    assert expired.ended_at == T0 + timedelta(seconds=40)
    assert code_of(calls.join, state, "patient", "leg-p3", T0 + timedelta(seconds=41)) == protocol.ERR_CALL_ENDED


def test_a_replaced_legs_drop_changes_nothing() -> None:
    state, _ = calls.join(active(), "patient", "leg-p2", T0)  # a second socket took over
    assert calls.drop(state, "patient", "leg-p", T0) == state


def test_step_down_ladder_goes_only_downwards_and_text_chat_ends_the_call() -> None:
    state = calls.step_down(active(), "patient", protocol.STEP_ICE_RESTART, "disconnected", T0)
    state = calls.step_down(state, "doctor", protocol.STEP_ICE_RESTART, "again", T0)
    state = calls.step_down(state, "patient", protocol.STEP_RELAY_ONLY, "restart failed", T0)
    assert (
        code_of(calls.step_down, state, "doctor", protocol.STEP_ICE_RESTART, "", T0) == protocol.ERR_STEP_OUT_OF_ORDER
    )
    state = calls.step_down(state, "doctor", protocol.STEP_AUDIO_ONLY, "", T0)
    assert not state.ended
    state = calls.step_down(state, "doctor", protocol.STEP_TEXT_CHAT, "", T0 + timedelta(seconds=5))
    assert state.ended and state.end_reason == protocol.END_STEPPED_DOWN
    assert [s.step for s in state.steps] == ["ice_restart", "ice_restart", "relay_only", "audio_only", "text_chat"]
    assert state.steps[2].as_dict()["by"] == "patient"


def test_quality_keeps_the_worst_figures_and_grades() -> None:
    state = calls.report_quality(active(), "patient", 40, 0.0, 5)
    state = calls.report_quality(state, "patient", 30, 3.0, 4)
    assert state.quality["patient"] == {"rtt_ms": 40, "loss_pct": 3.0, "jitter_ms": 5, "grade_rank": 1}


@pytest.mark.parametrize(
    ("rtt", "loss", "jitter", "expected"),
    [
        (20, 0, 2, "good"),
        (150, 1, 20, "good"),
        (200, 0, 2, "fair"),
        (20, 4, 2, "fair"),
        (20, 0, 51, "poor"),
        (900, 0, 0, "poor"),
    ],
)
def test_grades(rtt: float, loss: float, jitter: float, expected: str) -> None:
    assert calls.grade(rtt, loss, jitter) == expected


def test_an_answer_before_an_offer_is_refused() -> None:
    assert code_of(calls.local_answer, calls.reset(), 1) == protocol.ERR_NO_OFFER


def test_a_candidate_before_any_description_is_refused() -> None:
    assert code_of(calls.local_candidate, calls.reset(), 1) == protocol.ERR_NO_DESCRIPTION


def test_offer_answer_and_a_candidate_flood() -> None:
    me = calls.local_offer(calls.reset(), 1)
    for _ in range(protocol.MAX_CANDIDATES_PER_GENERATION):
        me = calls.local_candidate(me, 1)
    assert code_of(calls.local_candidate, me, 1) == protocol.ERR_TOO_MANY_CANDIDATES
    assert code_of(calls.local_candidate, me, 2) == protocol.ERR_STALE_GENERATION
    me = calls.remote_answer(me, 1)
    assert not me.local_offer
    me = calls.local_offer(me, 2)  # a rebuilt connection starts counting again
    assert me.candidates == 0 and calls.local_candidate(me, 2).candidates == 1
    assert code_of(calls.local_offer, me, 1) == protocol.ERR_STALE_GENERATION


def test_glare_the_polite_answer_withdraws_its_own_offer_in_one_negotiation() -> None:
    polite = calls.local_offer(calls.reset(), 1)
    impolite = calls.local_offer(calls.reset(), 1)
    polite = calls.remote_offer(polite, 1)  # both offers crossed
    impolite = calls.remote_offer(impolite, 1)
    # A polite peer that cannot roll back recreates its connection (generation 2) and answers.
    polite = calls.local_answer(polite, 2)
    impolite = calls.remote_answer(impolite, 2)
    assert polite == calls.Negotiation(local_generation=2, remote_generation=1)
    assert not impolite.local_offer and not impolite.remote_offer
    assert code_of(calls.local_answer, impolite, 1) == protocol.ERR_NO_OFFER  # the ignored offer is gone


@given(st.lists(st.sampled_from(["lo", "la", "lc", "ro", "ra"]), max_size=40))
def test_negotiation_never_crashes_and_answers_need_offers(events: list[str]) -> None:
    state = calls.reset()
    for event in events:
        try:
            if event == "lo":
                state = calls.local_offer(state, 1)
            elif event == "la":
                had_offer = state.remote_offer
                state = calls.local_answer(state, 1)
                assert had_offer
            elif event == "lc":
                state = calls.local_candidate(state, 1)
            elif event == "ro":
                state = calls.remote_offer(state, 1)
            else:
                state = calls.remote_answer(state, 1)
        except ProtocolError as exc:
            assert exc.code in protocol.ERROR_CODES
