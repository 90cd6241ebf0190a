"""The call signalling protocol, version 1: message names, error codes and strict validation (pure).

Every call message travels inside the client WebSocket's envelope (``{"id", "type", ...}``) and is
documented in ``signaling/PROTOCOL.md``. This module only parses and checks plain data: no I/O, no
clock, no aiohttp, so the browser app, the server and the aiortc peers agree on one definition.

The server never interprets SDP beyond a structural check: media is negotiated end to end. The
check exists so that garbage, control characters or a megabyte of "SDP" are refused at the edge
with a clear code instead of being relayed to the other participant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})

# -- commands (client -> server) -------------------------------------------------------------------
CMD_JOIN: Final = "call.join"
CMD_LEAVE: Final = "call.leave"
CMD_OFFER: Final = "call.offer"
CMD_ANSWER: Final = "call.answer"
CMD_CANDIDATE: Final = "call.candidate"
CMD_END_OF_CANDIDATES: Final = "call.end_of_candidates"
CMD_MEDIA: Final = "call.media"
CMD_ICE_SERVERS: Final = "call.ice_servers"
CMD_STEP_DOWN: Final = "call.step_down"
CMD_QUALITY: Final = "call.quality"
CMD_HANGUP: Final = "call.hangup"
CMD_ECHO_OFFER: Final = "echo.offer"
CMD_ECHO_STATS: Final = "echo.stats"
CMD_ECHO_STOP: Final = "echo.stop"

# -- events (server -> client, pushed on the call.join subscription) -----------------------------
EV_RINGING: Final = "call.ringing"  # to the patient's notifications: the doctor is calling
EV_PEER_JOINED: Final = "call.peer_joined"
EV_PEER_AWAY: Final = "call.peer_away"  # dropped or left; may come back until rejoin_deadline
EV_DESCRIPTION: Final = "call.description"
EV_CANDIDATE: Final = "call.candidate"
EV_END_OF_CANDIDATES: Final = "call.end_of_candidates"
EV_MEDIA: Final = "call.media"
EV_STEP_DOWN: Final = "call.step_down"
EV_ENDED: Final = "call.ended"
EV_REPLACED: Final = "call.replaced"  # this socket's leg was taken over by another socket of the same user

# -- error codes (in the envelope's error.code) --------------------------------------------------
ERR_UNSUPPORTED_VERSION: Final = "unsupported_version"
ERR_INVALID_FORMAT: Final = "invalid_format"
ERR_INVALID_SDP: Final = "invalid_sdp"
ERR_INVALID_CANDIDATE: Final = "invalid_candidate"
ERR_MESSAGE_TOO_LARGE: Final = "message_too_large"
ERR_NOT_FOUND: Final = "not_found"  # no such consultation/call, or not its patient or assigned doctor
ERR_CONSULTATION_NOT_ACTIVE: Final = "consultation_not_active"
ERR_CALL_NOT_STARTED: Final = "call_not_started"  # the patient joined before the doctor called
ERR_CALL_ENDED: Final = "call_ended"
ERR_ALREADY_JOINED: Final = "already_joined"  # this socket is already in the call
ERR_NOT_JOINED: Final = "not_joined"  # a call message from a socket that has not joined the call
ERR_PEER_NOT_PRESENT: Final = "peer_not_present"
ERR_NO_OFFER: Final = "no_offer_to_answer"  # an answer with no offer pending (out of order)
ERR_NO_DESCRIPTION: Final = "no_description"  # a candidate before this connection sent an offer or answer
ERR_STALE_GENERATION: Final = "stale_generation"
ERR_TOO_MANY_CANDIDATES: Final = "too_many_candidates"
ERR_STEP_OUT_OF_ORDER: Final = "step_out_of_order"
ERR_ECHO_BUSY: Final = "echo_busy"
ERR_ECHO_FAILED: Final = "echo_failed"

ERROR_CODES: Final = (
    ERR_UNSUPPORTED_VERSION,
    ERR_INVALID_FORMAT,
    ERR_INVALID_SDP,
    ERR_INVALID_CANDIDATE,
    ERR_MESSAGE_TOO_LARGE,
    ERR_NOT_FOUND,
    ERR_CONSULTATION_NOT_ACTIVE,
    ERR_CALL_NOT_STARTED,
    ERR_CALL_ENDED,
    ERR_ALREADY_JOINED,
    ERR_NOT_JOINED,
    ERR_PEER_NOT_PRESENT,
    ERR_NO_OFFER,
    ERR_NO_DESCRIPTION,
    ERR_STALE_GENERATION,
    ERR_TOO_MANY_CANDIDATES,
    ERR_STEP_OUT_OF_ORDER,
    ERR_ECHO_BUSY,
    ERR_ECHO_FAILED,
)

# -- limits ---------------------------------------------------------------------------------------
MAX_SDP_CHARS: Final = 32 * 1024  # a two-track Chromium offer with trickle is ~5 KiB
MAX_SDP_MEDIA_SECTIONS: Final = 16
MAX_CANDIDATE_CHARS: Final = 512
MAX_MID_CHARS: Final = 64
MAX_UFRAG_CHARS: Final = 256
MAX_CANDIDATES_PER_GENERATION: Final = 64  # per connection and direction; Chromium trickles ~4-20
MAX_GENERATION: Final = 2**31 - 1
MAX_REASON_CHARS: Final = 200

Part = Literal["patient", "doctor"]
PARTS: Final[tuple[Part, Part]] = ("patient", "doctor")

# The step-down ladder (issue 13, item 6), in the only order the steps may be taken.
STEP_ICE_RESTART: Final = "ice_restart"
STEP_RELAY_ONLY: Final = "relay_only"
STEP_AUDIO_ONLY: Final = "audio_only"
STEP_TEXT_CHAT: Final = "text_chat"
STEP_CALLBACK: Final = "callback_request"
STEPS: Final = (STEP_ICE_RESTART, STEP_RELAY_ONLY, STEP_AUDIO_ONLY, STEP_TEXT_CHAT, STEP_CALLBACK)

END_HANGUP: Final = "hangup"
END_PEER_LOST: Final = "peer_lost"  # a participant did not come back within the grace period
END_CONSULTATION: Final = "consultation_ended"
END_STEPPED_DOWN: Final = "stepped_down"  # the call gave way to text chat or a call-back request
END_REASONS: Final = (END_HANGUP, END_PEER_LOST, END_CONSULTATION, END_STEPPED_DOWN)
# Not an end of the call: sent (as ``call.ended``) to one leg only, the doctor's whose consultation was
# handed to another doctor or unassigned; the patient sees ``call.peer_away`` and the call goes on.
END_REASSIGNED: Final = "reassigned"


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fail(code: str, message: str) -> ProtocolError:
    return ProtocolError(code, message)


# -- field helpers (booleans are not integers here, unlike in Python) ------------------------------


def _int(msg: dict[str, Any], name: str, *, minimum: int = 0, maximum: int = 2**53, default: int | None = None) -> int:
    value = msg.get(name)
    if value is None and default is not None:
        return default
    if type(value) is not int or not minimum <= value <= maximum:
        raise _fail(ERR_INVALID_FORMAT, f"{name} must be an integer between {minimum} and {maximum}")
    return value


def _bool(msg: dict[str, Any], name: str, *, default: bool | None = None) -> bool:
    value = msg.get(name)
    if value is None and default is not None:
        return default
    if type(value) is not bool:
        raise _fail(ERR_INVALID_FORMAT, f"{name} must be true or false")
    return value


def _text(msg: dict[str, Any], name: str, *, maximum: int, default: str | None = None) -> str:
    value = msg.get(name)
    if value is None and default is not None:
        return default
    if type(value) is not str:
        raise _fail(ERR_INVALID_FORMAT, f"{name} must be a string")
    if len(value) > maximum:
        raise _fail(ERR_MESSAGE_TOO_LARGE, f"{name} is longer than {maximum} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _fail(ERR_INVALID_FORMAT, f"{name} contains control characters")
    return value


def check_version(msg: dict[str, Any]) -> int:
    """The protocol version the client speaks (``v``, default 1); unknown versions are refused."""
    version = msg.get("v", PROTOCOL_VERSION)
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise _fail(
            ERR_UNSUPPORTED_VERSION, f"this server speaks call protocol version(s) {sorted(SUPPORTED_VERSIONS)}"
        )
    return version


# -- SDP and candidates ----------------------------------------------------------------------------

_SDP_LINE = re.compile(r"[a-z]=[\x20-\x7e]*")
# RFC 8839 section 5.1: foundation component transport priority address port "typ" type [extensions].
_CANDIDATE = re.compile(
    r"candidate:[A-Za-z0-9+/]{1,32} [0-9]{1,3} (?:udp|tcp|UDP|TCP) [0-9]{1,10} "
    r"[A-Za-z0-9.:\-]{1,253} [0-9]{1,5} typ (?:host|srflx|prflx|relay)(?: [\x21-\x7e]+)*"
)


# The whole blob in one regex pass (a line loop cost ~15x more per offer on the relay's hot path):
# "v=0", then lines of x=value (printable ASCII), each ended by CRLF or LF, the last one optionally not.
_SDP_WHOLE = re.compile(r"v=0(?:\r?\n[a-z]=[\x20-\x7e]*)*(?:\r?\n)?")


def _refuse_sdp_lines(sdp: str) -> None:
    """Raise the error naming the first bad line (only reached for an SDP the one-pass check refused)."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise _fail(ERR_INVALID_SDP, "sdp must start with v=0")
    for number, line in enumerate(lines, start=1):
        if not _SDP_LINE.fullmatch(line):
            raise _fail(ERR_INVALID_SDP, f"sdp line {number} is not of the form x=value")
    raise _fail(ERR_INVALID_SDP, "sdp is not a sequence of x=value lines")


def check_sdp(sdp: object) -> str:
    """A structurally valid SDP blob (RFC 8866 line syntax, at least one media section).

    Raises:
        ProtocolError: ``invalid_sdp`` or ``message_too_large``.
    """
    if type(sdp) is not str:
        raise _fail(ERR_INVALID_SDP, "sdp must be a string")
    if len(sdp) > MAX_SDP_CHARS:
        raise _fail(ERR_MESSAGE_TOO_LARGE, f"sdp is longer than {MAX_SDP_CHARS} characters")
    if not _SDP_WHOLE.fullmatch(sdp):
        _refuse_sdp_lines(sdp)  # the slow walk only to name the bad line
    if "\no=" not in sdp:
        raise _fail(ERR_INVALID_SDP, "sdp has no origin (o=) line")
    media = sdp.count("\nm=")
    if media == 0:
        raise _fail(ERR_INVALID_SDP, "sdp has no media section (m=)")
    if media > MAX_SDP_MEDIA_SECTIONS:
        raise _fail(ERR_INVALID_SDP, f"sdp has more than {MAX_SDP_MEDIA_SECTIONS} media sections")
    return sdp


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate as ``RTCIceCandidateInit`` carries it."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None

    def as_wire(self) -> dict[str, Any]:
        """The JSON form (the browser's ``RTCIceCandidateInit`` field names)."""
        return {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
            "usernameFragment": self.username_fragment,
        }


_CANDIDATE_FIELDS: Final = frozenset({"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"})


def check_candidate(value: object) -> Candidate:
    """A candidate object with a grammatical candidate line and a media section reference.

    Raises:
        ProtocolError: ``invalid_candidate`` or ``message_too_large``.
    """
    if type(value) is not dict:
        raise _fail(ERR_INVALID_CANDIDATE, "candidate must be an object (RTCIceCandidateInit)")
    unknown = value.keys() - _CANDIDATE_FIELDS
    if unknown:
        raise _fail(ERR_INVALID_CANDIDATE, f"unknown candidate field(s): {', '.join(sorted(map(str, unknown))[:4])}")
    line = value.get("candidate")
    if type(line) is not str:
        raise _fail(ERR_INVALID_CANDIDATE, "candidate.candidate must be a string")
    if len(line) > MAX_CANDIDATE_CHARS:
        raise _fail(ERR_MESSAGE_TOO_LARGE, f"candidate is longer than {MAX_CANDIDATE_CHARS} characters")
    if line.startswith("a="):
        line = line[2:]
    if not _CANDIDATE.fullmatch(line):
        raise _fail(ERR_INVALID_CANDIDATE, "candidate line is not an RFC 8839 candidate; send end-of-candidates apart")
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    ufrag = value.get("usernameFragment")
    if mid is not None and (type(mid) is not str or not 0 < len(mid) <= MAX_MID_CHARS):
        raise _fail(ERR_INVALID_CANDIDATE, "sdpMid must be a short string or null")
    if index is not None and (type(index) is not int or not 0 <= index < MAX_SDP_MEDIA_SECTIONS):
        raise _fail(ERR_INVALID_CANDIDATE, f"sdpMLineIndex must be 0..{MAX_SDP_MEDIA_SECTIONS - 1} or null")
    if mid is None and index is None:
        raise _fail(ERR_INVALID_CANDIDATE, "sdpMid or sdpMLineIndex is required")
    if ufrag is not None and (type(ufrag) is not str or not 0 < len(ufrag) <= MAX_UFRAG_CHARS):
        raise _fail(ERR_INVALID_CANDIDATE, "usernameFragment must be a short string or null")
    return Candidate(line, mid, index, ufrag)


# -- parsed commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaState:
    """What a participant sends: microphone on/off, camera on/off (mute and camera state)."""

    audio: bool
    video: bool

    def as_wire(self) -> dict[str, bool]:
        """The JSON form."""
        return {"audio": self.audio, "video": self.video}


@dataclass(frozen=True, slots=True)
class Join:
    """``call.join``: enter the consultation's call (the doctor starts it, the patient answers)."""

    consultation_id: int
    version: int
    media: MediaState


@dataclass(frozen=True, slots=True)
class Description:
    """``call.offer`` / ``call.answer``: a session description from one connection generation."""

    call_id: int
    kind: Literal["offer", "answer"]
    sdp: str
    generation: int
    restart: bool

    def as_wire(self) -> dict[str, Any]:
        """The relayed event body."""
        return {
            "description": {"type": self.kind, "sdp": self.sdp},
            "generation": self.generation,
            "restart": self.restart,
        }


@dataclass(frozen=True, slots=True)
class CandidateMessage:
    """``call.candidate``: one trickled candidate of a connection generation."""

    call_id: int
    candidate: Candidate
    generation: int


@dataclass(frozen=True, slots=True)
class StepDown:
    """``call.step_down``: the call moves one rung down the ladder."""

    call_id: int
    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class Quality:
    """``call.quality``: the client's connection-quality summary (from ``getStats``)."""

    call_id: int
    rtt_ms: float
    loss_pct: float
    jitter_ms: float


def _call_id(msg: dict[str, Any]) -> int:
    return _int(msg, "call_id", minimum=1)


def _generation(msg: dict[str, Any]) -> int:
    return _int(msg, "generation", minimum=1, maximum=MAX_GENERATION, default=1)


def _media(value: object) -> MediaState:
    if value is None:
        return MediaState(audio=True, video=True)
    if type(value) is not dict or value.keys() - {"audio", "video"}:
        raise _fail(ERR_INVALID_FORMAT, "media must be {audio: bool, video: bool}")
    return MediaState(audio=_bool(value, "audio", default=True), video=_bool(value, "video", default=True))


def parse_join(msg: dict[str, Any]) -> Join:
    """Parse ``call.join`` {consultation_id, v?, media?}."""
    version = check_version(msg)
    return Join(_int(msg, "consultation_id", minimum=1), version, _media(msg.get("media")))


def parse_call_ref(msg: dict[str, Any]) -> int:
    """Parse a message that only names its call (leave, ice_servers, end_of_candidates)."""
    return _call_id(msg)


def parse_description(msg: dict[str, Any], kind: Literal["offer", "answer"]) -> Description:
    """Parse ``call.offer`` / ``call.answer`` {call_id, sdp, generation?, restart?}."""
    restart = _bool(msg, "restart", default=False) if kind == "offer" else False
    return Description(_call_id(msg), kind, check_sdp(msg.get("sdp")), _generation(msg), restart)


def parse_candidate(msg: dict[str, Any]) -> CandidateMessage:
    """Parse ``call.candidate`` {call_id, candidate, generation?}."""
    return CandidateMessage(_call_id(msg), check_candidate(msg.get("candidate")), _generation(msg))


def parse_generation(msg: dict[str, Any]) -> int:
    """The connection generation a message refers to (default 1)."""
    return _generation(msg)


def parse_media(msg: dict[str, Any]) -> tuple[int, MediaState]:
    """Parse ``call.media`` {call_id, audio, video}."""
    return _call_id(msg), MediaState(audio=_bool(msg, "audio"), video=_bool(msg, "video"))


def parse_step_down(msg: dict[str, Any]) -> StepDown:
    """Parse ``call.step_down`` {call_id, step, reason?}."""
    step = msg.get("step")
    if step not in STEPS:
        raise _fail(ERR_INVALID_FORMAT, f"step must be one of {', '.join(STEPS)}")
    return StepDown(_call_id(msg), str(step), _text(msg, "reason", maximum=MAX_REASON_CHARS, default=""))


def _number(msg: dict[str, Any], name: str, maximum: float) -> float:
    value = msg.get(name)
    if type(value) not in (int, float) or not 0 <= float(value) <= maximum:  # type: ignore[arg-type]
        raise _fail(ERR_INVALID_FORMAT, f"{name} must be a number between 0 and {maximum}")
    return float(value)  # type: ignore[arg-type]


def parse_quality(msg: dict[str, Any]) -> Quality:
    """Parse ``call.quality`` {call_id, rtt_ms, loss_pct, jitter_ms}."""
    return Quality(
        _call_id(msg),
        _number(msg, "rtt_ms", 60_000),
        _number(msg, "loss_pct", 100),
        _number(msg, "jitter_ms", 60_000),
    )


def parse_hangup(msg: dict[str, Any]) -> tuple[int, str]:
    """Parse ``call.hangup`` {call_id, reason?}."""
    return _call_id(msg), _text(msg, "reason", maximum=MAX_REASON_CHARS, default="")


# Fields each command accepts besides id/type (the registry refuses anything else: checklist B7).
COMMAND_FIELDS: Final[dict[str, frozenset[str]]] = {
    CMD_JOIN: frozenset({"consultation_id", "v", "media"}),
    CMD_LEAVE: frozenset({"call_id"}),
    CMD_OFFER: frozenset({"call_id", "sdp", "generation", "restart"}),
    CMD_ANSWER: frozenset({"call_id", "sdp", "generation"}),
    CMD_CANDIDATE: frozenset({"call_id", "candidate", "generation"}),
    CMD_END_OF_CANDIDATES: frozenset({"call_id", "generation"}),
    CMD_MEDIA: frozenset({"call_id", "audio", "video"}),
    CMD_ICE_SERVERS: frozenset({"call_id"}),
    CMD_STEP_DOWN: frozenset({"call_id", "step", "reason"}),
    CMD_QUALITY: frozenset({"call_id", "rtt_ms", "loss_pct", "jitter_ms"}),
    CMD_HANGUP: frozenset({"call_id", "reason"}),
    CMD_ECHO_OFFER: frozenset({"sdp", "v"}),
    CMD_ECHO_STATS: frozenset({"session"}),
    CMD_ECHO_STOP: frozenset({"session"}),
}


def polite_part(part: Part) -> bool:
    """Perfect negotiation roles: the patient is polite (yields on glare), the doctor impolite.

    Fixed by role, not by join order, so that a rejoin never swaps roles mid-call.
    """
    return part == "patient"


def other(part: Part) -> Part:
    """The other participant."""
    return "doctor" if part == "patient" else "patient"
