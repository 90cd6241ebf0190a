"""The call protocol's validation (R11.1: audio and video consultations): every malformed input gets its own code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling import protocol
from signaling.protocol import ProtocolError
from tests.signaling.sdp_samples import HOST_CANDIDATE, OFFER, RELAY_CANDIDATE


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        call(*args)
    return caught.value.code


def test_a_chromium_like_offer_and_candidates_are_accepted() -> None:
    offer = protocol.parse_description({"call_id": 3, "sdp": OFFER, "generation": 2, "restart": True}, "offer")
    assert offer.kind == "offer" and offer.generation == 2 and offer.restart
    assert offer.as_wire()["description"] == {"type": "offer", "sdp": OFFER}
    for sample in (HOST_CANDIDATE, RELAY_CANDIDATE):
        parsed = protocol.parse_candidate({"call_id": 3, "candidate": sample})
        assert parsed.generation == 1
        assert parsed.candidate.as_wire()["candidate"] == sample["candidate"]


def test_an_answer_never_carries_an_ice_restart_flag() -> None:
    assert not protocol.parse_description({"call_id": 1, "sdp": OFFER, "restart": True}, "answer").restart


@pytest.mark.parametrize(
    ("sdp", "code"),
    [
        (None, protocol.ERR_INVALID_SDP),
        (12, protocol.ERR_INVALID_SDP),
        ("", protocol.ERR_INVALID_SDP),
        ("hello", protocol.ERR_INVALID_SDP),
        ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n", protocol.ERR_INVALID_SDP),  # no media section
        ("v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\n", protocol.ERR_INVALID_SDP),  # no origin
        (OFFER.replace("s=-", "s=\x00evil"), protocol.ERR_INVALID_SDP),  # control character
        (OFFER.replace("s=-", "S=-"), protocol.ERR_INVALID_SDP),
        (OFFER + "a=x:" + "y" * protocol.MAX_SDP_CHARS, protocol.ERR_MESSAGE_TOO_LARGE),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\n" + "m=audio 9 RTP/AVP 0\r\n" * 17, protocol.ERR_INVALID_SDP),
    ],
)
def test_malformed_sdp_is_refused_with_a_clear_code(sdp: object, code: str) -> None:
    assert code_of(protocol.parse_description, {"call_id": 1, "sdp": sdp}, "offer") == code


@pytest.mark.parametrize(
    ("candidate", "code"),
    [
        ("candidate:1 1 udp 1 127.0.0.1 9 typ host", protocol.ERR_INVALID_CANDIDATE),  # a string, not an object
        ({"candidate": ""}, protocol.ERR_INVALID_CANDIDATE),  # end of candidates has its own message
        ({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}, protocol.ERR_INVALID_CANDIDATE),  # no mid/index
        ({**HOST_CANDIDATE, "candidate": "candidate:1 1 sctp 1 127.0.0.1 9 typ host"}, protocol.ERR_INVALID_CANDIDATE),
        ({**HOST_CANDIDATE, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ evil"}, protocol.ERR_INVALID_CANDIDATE),
        (
            {**HOST_CANDIDATE, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=x"},
            protocol.ERR_INVALID_CANDIDATE,
        ),
        (
            {**HOST_CANDIDATE, "candidate": "candidate:1 1 udp 1 h 9 typ host " + "x" * 600},
            protocol.ERR_MESSAGE_TOO_LARGE,
        ),
        ({**HOST_CANDIDATE, "sdpMLineIndex": True}, protocol.ERR_INVALID_CANDIDATE),
        ({**HOST_CANDIDATE, "sdpMLineIndex": 99}, protocol.ERR_INVALID_CANDIDATE),
        ({**HOST_CANDIDATE, "sdpMid": ""}, protocol.ERR_INVALID_CANDIDATE),
        ({**HOST_CANDIDATE, "extra": 1}, protocol.ERR_INVALID_CANDIDATE),
    ],
)
def test_malformed_candidates_are_refused(candidate: object, code: str) -> None:
    assert code_of(protocol.parse_candidate, {"call_id": 1, "candidate": candidate}) == code


def test_the_a_equals_prefix_of_a_candidate_line_is_tolerated() -> None:
    parsed = protocol.check_candidate({**HOST_CANDIDATE, "candidate": "a=" + HOST_CANDIDATE["candidate"]})
    assert parsed.candidate == HOST_CANDIDATE["candidate"]


@pytest.mark.parametrize(
    "msg",
    [
        {"consultation_id": "1"},
        {"consultation_id": True},
        {"consultation_id": 0},
        {"consultation_id": 1, "media": {"audio": "yes"}},
        {"consultation_id": 1, "media": {"screen": True}},
    ],
)
def test_join_fields_are_strict(msg: dict[str, Any]) -> None:
    assert code_of(protocol.parse_join, msg) == protocol.ERR_INVALID_FORMAT


def test_join_refuses_unknown_protocol_versions_and_defaults_to_one() -> None:
    assert protocol.parse_join({"consultation_id": 5}).version == protocol.PROTOCOL_VERSION == 1
    assert protocol.parse_join({"consultation_id": 5, "media": {"video": False}}).media.as_wire() == {
        "audio": True,
        "video": False,
    }
    assert code_of(protocol.parse_join, {"consultation_id": 5, "v": 2}) == protocol.ERR_UNSUPPORTED_VERSION


def test_step_down_quality_media_and_hangup_fields() -> None:
    assert protocol.parse_step_down({"call_id": 1, "step": "relay_only"}).step == "relay_only"
    assert code_of(protocol.parse_step_down, {"call_id": 1, "step": "teleport"}) == protocol.ERR_INVALID_FORMAT
    assert code_of(protocol.parse_step_down, {"call_id": 1, "step": "audio_only", "reason": "x" * 201}) == (
        protocol.ERR_MESSAGE_TOO_LARGE
    )
    assert protocol.parse_quality({"call_id": 1, "rtt_ms": 12, "loss_pct": 0.5, "jitter_ms": 3.2}).rtt_ms == 12.0
    assert code_of(protocol.parse_quality, {"call_id": 1, "rtt_ms": -1, "loss_pct": 0, "jitter_ms": 0}) == (
        protocol.ERR_INVALID_FORMAT
    )
    assert protocol.parse_media({"call_id": 2, "audio": False, "video": True})[1].as_wire() == {
        "audio": False,
        "video": True,
    }
    assert protocol.parse_hangup({"call_id": 2}) == (2, "")


def test_every_documented_command_and_error_code_is_in_protocol_md() -> None:
    from pathlib import Path

    text = (Path(protocol.__file__).parent / "PROTOCOL.md").read_text()
    for code in protocol.ERROR_CODES:
        assert f"`{code}`" in text, code
    for command in protocol.COMMAND_FIELDS:
        assert f"`{command}`" in text, command


def test_roles_are_fixed_by_part() -> None:
    assert protocol.polite_part("patient") and not protocol.polite_part("doctor")
    assert protocol.other("patient") == "doctor"


@given(st.text(max_size=300))
def test_no_text_crashes_the_sdp_check(text: str) -> None:
    try:
        protocol.check_sdp(text)
    except ProtocolError as exc:
        assert exc.code in protocol.ERROR_CODES


@given(
    st.dictionaries(
        st.sampled_from(["candidate", "sdpMid", "sdpMLineIndex", "x"]), st.none() | st.integers() | st.text(max_size=40)
    )
)
def test_no_object_crashes_the_candidate_check(value: dict[str, Any]) -> None:
    try:
        protocol.check_candidate(value)
    except ProtocolError as exc:
        assert exc.code in protocol.ERROR_CODES
