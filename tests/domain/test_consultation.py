"""Consultations: state machine, completion, allowance (R10.2, R11.3), wait, referral (R6.2, R7.4), events (R3.1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.consultation import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Channel,
    Completion,
    ConsultationState,
    OpenEvent,
    Outcome,
    RouteKind,
    Status,
    WaitEstimate,
    accept,
    can_transition,
    cancel,
    check_allowance,
    complaint_overlap,
    complaint_stems,
    complete,
    decline,
    estimate_wait,
    expire_offer,
    hand_over,
    insured_event_reason,
    match_open_event,
    offer,
    offer_expired,
    parse_channel,
    parse_outcome,
    referral_route,
    validate_cancel_reason,
    validate_completion,
    validate_request,
)
from server.domain.errors import Conflict, InvalidInput

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(seconds=60)

QUEUED = ConsultationState(42, Status.QUEUED)
OFFERED = ConsultationState(42, Status.OFFERED, offered_to_id=7, offer_expires_at=DEADLINE)
ACTIVE = ConsultationState(42, Status.ACTIVE, doctor_id=7)


# --------------------------------------------------------------------------- request


def test_a_request_is_stripped_and_typed_r11_1() -> None:
    request = validate_request("  headache and fever \n", "general_practice", "video")
    assert request.complaints == "headache and fever"
    assert request.specialty == "general_practice"
    assert request.channel is Channel.VIDEO


@pytest.mark.parametrize(
    ("complaints", "specialty", "channel", "code"),
    [
        ("   ", "general_practice", "text", "complaints_required"),
        ("x" * 2001, "general_practice", "text", "complaints_too_long"),
        ("bad\x00byte", "general_practice", "text", "invalid_complaints"),
        ("headache", "surgery", "text", "unknown_specialty"),
        ("headache", "general_practice", "fax", "invalid_channel"),
    ],
)
def test_a_bad_request_is_refused(complaints: str, specialty: str, channel: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_request(complaints, specialty, channel)
    assert caught.value.code == code


def test_wire_strings_parse_to_enums_or_are_refused() -> None:
    assert parse_channel("audio") is Channel.AUDIO
    assert parse_outcome("referral") is Outcome.REFERRAL
    with pytest.raises(InvalidInput):
        parse_outcome("cured")


# --------------------------------------------------------------------------- state machine


def test_the_happy_path_queued_offered_active_completed() -> None:
    state = offer(QUEUED, 7, NOW, DEADLINE)
    assert state == OFFERED
    state = accept(state, 7, NOW + timedelta(seconds=30))
    assert state == ACTIVE
    assert complete(state, 7) == ConsultationState(42, Status.COMPLETED, doctor_id=7)


def test_the_transition_table_matches_the_lifecycle() -> None:
    assert TRANSITIONS[Status.QUEUED] == {Status.OFFERED, Status.CANCELLED}
    assert TRANSITIONS[Status.OFFERED] == {Status.ACTIVE, Status.QUEUED, Status.CANCELLED}
    assert TRANSITIONS[Status.ACTIVE] == {Status.COMPLETED, Status.QUEUED, Status.CANCELLED}
    assert all(not TRANSITIONS[s] for s in TERMINAL_STATUSES)
    assert can_transition(Status.ACTIVE, Status.COMPLETED)
    assert not can_transition(Status.QUEUED, Status.COMPLETED)


def test_completing_a_consultation_that_is_not_active_is_a_conflict_with_a_clear_message() -> None:
    with pytest.raises(Conflict) as caught:
        complete(QUEUED, 7)
    assert caught.value.code == "invalid_transition"
    assert caught.value.message == (
        "cannot complete consultation 42: it is queued, and only an active consultation can be completed"
    )
    assert caught.value.details == {"consultation_id": 42, "status": "queued", "action": "complete"}


@pytest.mark.parametrize("state", [OFFERED, ACTIVE, replace(ACTIVE, status=Status.COMPLETED)])
def test_only_a_queued_consultation_can_be_offered(state: ConsultationState) -> None:
    with pytest.raises(Conflict) as caught:
        offer(state, 8, NOW, DEADLINE)
    assert caught.value.code == "invalid_transition"


def test_a_skipped_doctor_is_never_offered_the_consultation_again() -> None:
    with pytest.raises(Conflict) as caught:
        offer(replace(QUEUED, skipped_doctor_ids=frozenset({7})), 7, NOW, DEADLINE)
    assert caught.value.code == "doctor_skipped"


def test_an_offer_needs_a_deadline_in_the_future() -> None:
    with pytest.raises(ValueError):
        offer(QUEUED, 7, NOW, NOW)


def test_only_the_offered_doctor_can_accept_or_decline() -> None:
    for action in (lambda s: accept(s, 8, NOW), lambda s: decline(s, 8)):
        with pytest.raises(Conflict) as caught:
            action(OFFERED)
        assert caught.value.code == "not_offered_to_you"


def test_an_expired_offer_cannot_be_accepted_at_or_after_its_deadline() -> None:
    assert not offer_expired(OFFERED, DEADLINE - timedelta(microseconds=1))
    assert offer_expired(OFFERED, DEADLINE)
    with pytest.raises(Conflict) as caught:
        accept(OFFERED, 7, DEADLINE)
    assert caught.value.code == "offer_expired"


def test_a_declined_offer_goes_back_to_the_queue_with_the_doctor_skipped() -> None:
    state = decline(replace(OFFERED, skipped_doctor_ids=frozenset({3})), 7)
    assert state == ConsultationState(42, Status.QUEUED, skipped_doctor_ids=frozenset({3, 7}))


def test_an_expired_offer_goes_back_to_the_queue_with_the_silent_doctor_skipped() -> None:
    with pytest.raises(Conflict) as caught:
        expire_offer(OFFERED, NOW)
    assert caught.value.code == "offer_not_expired"
    assert expire_offer(OFFERED, DEADLINE) == ConsultationState(42, Status.QUEUED, skipped_doctor_ids=frozenset({7}))


def test_a_handover_requeues_the_active_consultation_and_skips_the_leaving_doctor() -> None:
    assert hand_over(ACTIVE, 7) == ConsultationState(42, Status.QUEUED, skipped_doctor_ids=frozenset({7}))
    with pytest.raises(Conflict) as caught:
        hand_over(ACTIVE, 8)
    assert caught.value.code == "not_your_consultation"


def test_only_the_holding_doctor_completes() -> None:
    with pytest.raises(Conflict) as caught:
        complete(ACTIVE, 8)
    assert caught.value.code == "not_your_consultation"


@pytest.mark.parametrize("state", [QUEUED, OFFERED, ACTIVE])
def test_any_open_consultation_can_be_cancelled(state: ConsultationState) -> None:
    assert state.status in OPEN_STATUSES
    cancelled = cancel(state)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.offered_to_id is None and cancelled.offer_expires_at is None


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.CANCELLED])
def test_a_finished_consultation_cannot_be_cancelled(status: Status) -> None:
    with pytest.raises(Conflict) as caught:
        cancel(ConsultationState(42, status, doctor_id=7))
    assert "only an active or offered or queued consultation can be cancelled" in caught.value.message


def test_inconsistent_states_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        ConsultationState(1, Status.OFFERED)
    with pytest.raises(ValueError):
        ConsultationState(1, Status.QUEUED, offered_to_id=7, offer_expires_at=DEADLINE)
    with pytest.raises(ValueError):
        ConsultationState(1, Status.ACTIVE)


def test_cancel_reason_is_short_text() -> None:
    assert validate_cancel_reason("  feel better ") == "feel better"
    with pytest.raises(InvalidInput):
        validate_cancel_reason("x" * 201)


# --------------------------------------------------------------------------- completion (R11.3)


def test_advice_completion_is_normalised() -> None:
    done = validate_completion(Completion(" rest, fluids ", "j069", Outcome.ADVICE))
    assert done == Completion("rest, fluids", "J06.9", Outcome.ADVICE)


def test_a_referral_names_a_specialty_and_may_list_services_r11_3() -> None:
    done = validate_completion(
        Completion("see a cardiologist", "I10", Outcome.REFERRAL, "cardiology", (" ECG ", "ECG", "blood test"))
    )
    assert done.referral_specialty == "cardiology"
    assert done.referral_services == ("ECG", "blood test")


@pytest.mark.parametrize(
    ("completion", "code"),
    [
        (Completion("  ", "J06.9", Outcome.ADVICE), "notes_required"),
        (Completion(".", "J06.9", Outcome.ADVICE), "notes_not_meaningful"),  # R11.9
        (Completion("x" * 10_001, "J06.9", Outcome.ADVICE), "notes_too_long"),
        (Completion("okay", "J00-J06", Outcome.ADVICE), "invalid_icd10"),
        (Completion("okay", "I10", Outcome.REFERRAL), "referral_specialty_required"),
        (Completion("okay", "I10", Outcome.REFERRAL, "  "), "referral_specialty_required"),
        (Completion("okay", "I10", Outcome.REFERRAL, "Cardiology!"), "invalid_referral_specialty"),
        (Completion("okay", "I10", Outcome.REFERRAL, "cardiology", ("",)), "invalid_referral_services"),
        (
            Completion("okay", "I10", Outcome.REFERRAL, "cardiology", tuple(f"test {i}" for i in range(21))),
            "invalid_referral_services",
        ),
        (Completion("okay", "I10", Outcome.ADVICE, "cardiology"), "referral_fields_not_allowed"),
        (Completion("okay", "I10", Outcome.EMERGENCY, None, ("ECG",)), "referral_fields_not_allowed"),
    ],
)
def test_a_bad_completion_is_refused(completion: Completion, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_completion(completion)
    assert caught.value.code == code


def test_notes_of_exactly_the_limit_are_accepted() -> None:
    assert len(validate_completion(Completion("x" * 10_000, "R51", Outcome.EMERGENCY)).notes) == 10_000


# --------------------------------------------------------------------------- allowance (R10.2, R11.3)


def test_an_exhausted_allowance_is_refused_citing_r10_2_and_r11_3() -> None:
    decision = check_allowance(12, 12, year=2026)
    assert not decision.allowed
    assert decision.rules == ("R10.2", "R11.3")
    assert decision.reasons[0].message == "telemedicine allowance of 12 consultations for 2026 used up"


def test_open_consultations_count_against_the_allowance_r11_3() -> None:
    assert not check_allowance(10, 12, year=2026, pending=2).allowed
    decision = check_allowance(10, 12, year=2026, pending=1)
    assert decision.allowed
    assert decision.reasons[0].message == "1 of 12 telemedicine consultations left for 2026"


def test_no_allowance_means_unlimited_r11_3() -> None:
    decision = check_allowance(500, None, year=2026)
    assert decision.allowed
    assert decision.rules == ("R11.3",)


def test_negative_counts_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_allowance(-1, 12, year=2026)


# --------------------------------------------------------------------------- waiting time


@pytest.mark.parametrize(
    ("position", "doctors", "avg", "minutes"),
    [(1, 2, 20.0, 0), (2, 1, 20.0, 20), (5, 2, 15.0, 30), (4, 2, 15.0, 23), (3, 1, None, 30)],
)
def test_the_wait_shares_those_ahead_among_the_doctors(
    position: int, doctors: int, avg: float | None, minutes: int
) -> None:
    assert estimate_wait(position, doctors, avg) == WaitEstimate(position, minutes)


def test_with_nobody_on_duty_there_is_no_estimate_r11_2() -> None:
    assert estimate_wait(3, 0, 15.0) == WaitEstimate(3, None)


@pytest.mark.parametrize(("position", "doctors", "avg"), [(0, 1, 10.0), (1, -1, 10.0), (1, 1, 0.0)])
def test_impossible_wait_inputs_are_refused(position: int, doctors: int, avg: float) -> None:
    with pytest.raises(ValueError):
        estimate_wait(position, doctors, avg)


# --------------------------------------------------------------------------- referral route (R11.3)


def test_a_dispatcher_persons_referral_opens_the_console_approval_path_r11_3_r3_2() -> None:
    route = referral_route("dispatcher", None, attachment_effective=False, referral_specialty="cardiology")
    assert route.kind is RouteKind.DISPATCHER_REQUEST
    assert route.clinic_id is None
    assert route.rules == ("R11.3", "R3.2")
    assert "cardiology" in route.reasons[0].message


def test_a_registry_person_with_an_effective_attachment_goes_to_the_attached_clinic_r6_2() -> None:
    route = referral_route("registry", 15, attachment_effective=True)
    assert route.kind is RouteKind.ATTACHED_CLINIC
    assert route.clinic_id == 15
    assert route.rules == ("R11.3", "R6.2")


def test_a_registry_person_whose_attachment_lapsed_gets_the_dispatcher_path_r7_4() -> None:
    route = referral_route("registry", 15, attachment_effective=False)
    assert route.kind is RouteKind.DISPATCHER_REQUEST
    assert route.clinic_id is None
    assert route.rules == ("R7.4", "R11.3", "R3.2")


def test_a_registry_person_without_a_clinic_on_record_is_sent_to_the_console_r1_3() -> None:
    route = referral_route("registry", None, attachment_effective=True)
    assert route.kind is RouteKind.DISPATCHER_REQUEST
    assert route.rules[0] == "R1.3"


def test_an_unknown_service_type_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        referral_route("vip", 1, attachment_effective=True)
    assert caught.value.code == "invalid_service_type"


# --------------------------------------------------------------------------- insured event (R3.1, R11.3)


def event(event_id: int, complaints: str, days_ago: float, specialty: str | None = None) -> OpenEvent:
    return OpenEvent(event_id, complaints, NOW - timedelta(days=days_ago), specialty)


def test_complaints_compare_case_and_whitespace_insensitively_with_crude_stems() -> None:
    assert complaint_stems("  Headache,   FEVER and cough ") == {"heada", "fever", "cough"}
    assert complaint_overlap("Headaches", "headache") == 1.0
    assert complaint_overlap("температура и кашель", "Температурой, КАШЕЛЬ") == 1.0
    assert complaint_overlap("back pain", "rash") == 0.0
    assert complaint_overlap("  ", " ") == 1.0  # nothing comparable: equal text only


def test_a_consultation_joins_the_open_event_of_the_same_complaints_r11_3() -> None:
    events = [event(1, "rash on the arm", 3), event(2, "high fever and cough", 5)]
    matched = match_open_event(events, "Cough, fever since Monday", "general_practice", NOW)
    assert matched == events[1]
    assert insured_event_reason(matched).rule == "R11.3"


def test_new_complaints_open_a_new_insured_event_r3_1() -> None:
    events = [event(1, "rash on the arm", 3)]
    assert match_open_event(events, "back pain", "general_practice", NOW) is None
    assert insured_event_reason(None).rule == "R3.1"


def test_an_event_older_than_the_window_is_not_matched_r3_1() -> None:
    assert match_open_event([event(1, "back pain", 31)], "back pain", None, NOW) is None
    assert match_open_event([event(1, "back pain", 30)], "back pain", None, NOW) is not None


def test_ties_prefer_the_same_specialty_then_the_newest_event() -> None:
    events = [
        event(1, "headache", 2, "neurology"),
        event(2, "headache", 1, "general_practice"),
        event(3, "headache", 5),
    ]
    assert match_open_event(events, "headache", "neurology", NOW) == events[0]
    assert match_open_event(events, "headache", "cardiology", NOW) == events[1]


def test_the_best_overlap_wins_over_a_newer_partial_match() -> None:
    events = [event(1, "headache and nausea", 10), event(2, "headache, back pain, rash", 1)]
    assert match_open_event(events, "nausea with headache", None, NOW) == events[0]
