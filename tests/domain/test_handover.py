"""A consultation in progress is never dropped: hand-over notes and disconnect grace (R11.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.domain.consultation import ConsultationState, Status
from server.domain.errors import Conflict, InvalidInput
from server.domain.handover import (
    DisconnectAction,
    HandoverTarget,
    disconnect_action,
    shift_end_keeps_consultation,
    validate_handover,
)

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
ACTIVE = ConsultationState(id=5, status=Status.ACTIVE, doctor_id=1)
READY = HandoverTarget(doctor_id=2, on_duty_for_specialty=True, connected=True)


def test_r11_8_hand_over_to_a_connected_colleague_on_duty_with_a_note() -> None:
    state, note = validate_handover(ACTIVE, 1, READY, "  BP 150/95, waiting for ECG photo  ")
    assert state.doctor_id == 2 and state.status is Status.ACTIVE
    assert note == "BP 150/95, waiting for ECG photo"


@pytest.mark.parametrize(
    ("state", "caller", "target", "code"),
    [
        (ConsultationState(id=5, status=Status.QUEUED), 1, READY, "invalid_transition"),
        (ACTIVE, 3, READY, "not_your_consultation"),
        (ACTIVE, 1, HandoverTarget(1, True, True), "handover_to_self"),
        (ACTIVE, 1, HandoverTarget(2, False, True), "handover_target_unavailable"),
        (ACTIVE, 1, HandoverTarget(2, True, False), "handover_target_unavailable"),
        (ACTIVE, 1, HandoverTarget(2, True, True, active=False), "handover_target_unavailable"),
    ],
)
def test_r11_8_hand_over_refusals(state: ConsultationState, caller: int, target: HandoverTarget, code: str) -> None:
    with pytest.raises(Conflict) as caught:
        validate_handover(state, caller, target, "patient stable, see chat")
    assert caught.value.code == code


@pytest.mark.parametrize("note", ["", ".", " - ", "ok"])
def test_r11_8_a_hand_over_needs_a_meaningful_note(note: str) -> None:
    with pytest.raises(InvalidInput):
        validate_handover(ACTIVE, 1, READY, note)


def test_r11_8_shift_end_keeps_the_consultation_with_its_doctor() -> None:
    assert shift_end_keeps_consultation(ACTIVE)


def test_r11_8_disconnect_grace_then_requeue_or_escalate() -> None:
    grace = timedelta(minutes=2)
    gone = NOW - timedelta(minutes=1, seconds=59)
    assert disconnect_action(True, None, NOW, False, grace) is DisconnectAction.WAIT
    assert disconnect_action(False, gone, NOW, True, grace) is DisconnectAction.WAIT
    later = NOW + timedelta(seconds=1)
    assert disconnect_action(False, gone, later, True, grace) is DisconnectAction.REQUEUE
    assert disconnect_action(False, gone, later, False, grace) is DisconnectAction.REQUEUE_AND_ESCALATE
    assert disconnect_action(False, None, NOW, True, grace) is DisconnectAction.REQUEUE
