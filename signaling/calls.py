"""The call's state machine and each connection's negotiation state (pure: plain data in, plain data out).

Two machines, because they live in different places:

* :class:`CallState` is the call as the database keeps it (one row per call, shared by every
  server process): ringing -> active -> ended, who is present, who is away and until when, the
  step-downs taken, the quality summary. The service loads it under a row lock, applies one
  transition here, and stores the result, so two processes can never both end or both start it.
* :class:`Negotiation` is one participant's offer/answer bookkeeping, kept by the process that
  holds that participant's socket. It is what lets the server refuse an answer before an offer,
  a candidate before any description, or a flood of candidates, without a shared lock per SDP.

Perfect negotiation (W3C): the patient is polite, the doctor impolite. On glare both offers are
relayed; the impolite peer ignores the polite one, the polite peer rolls back (a browser) or, when
it cannot roll back (aiortc), recreates its connection with ``generation + 1`` and answers. Either
way the polite peer's answer withdraws its own offer, so one negotiation ends the glare.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from signaling import protocol
from signaling.protocol import Part, ProtocolError

REJOIN_GRACE: Final = timedelta(seconds=30)

STATUS_RINGING: Final = "ringing"  # the doctor is in, the patient's side rings
STATUS_ACTIVE: Final = "active"  # both have joined at least once
STATUS_ENDED: Final = "ended"


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One rung of the step-down ladder, as recorded on the consultation."""

    step: str
    by: Part
    at: datetime
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the record and the event."""
        return {"step": self.step, "by": self.by, "at": self.at.isoformat(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CallState:
    """A call on a consultation, as stored.

    ``legs`` maps a present participant to the id of the socket leg that holds it; ``away`` maps
    a participant that dropped to the moment it dropped (the grace period runs from there).
    """

    consultation_id: int
    channel: str
    status: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: Part | None = None
    end_reason: str | None = None
    legs: dict[str, str] = field(default_factory=dict)
    away: dict[str, datetime] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()
    quality: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """Whether the call is over (nothing more is relayed)."""
        return self.status == STATUS_ENDED

    @property
    def duration_seconds(self) -> float | None:
        """Talk time: from the patient answering to the end (None while running or never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.answered_at).total_seconds())

    def rejoin_deadline(self, part: Part) -> datetime | None:
        """When an away participant's grace period ends."""
        since = self.away.get(part)
        return since + REJOIN_GRACE if since is not None else None

    def present(self, part: Part) -> bool:
        """Whether the participant is in the call now (joined and not away)."""
        return part in self.legs and part not in self.away


def start_call(consultation_id: int, channel: str, now: datetime) -> CallState:
    """The doctor starts a call: it rings on the patient's side."""
    return CallState(consultation_id=consultation_id, channel=channel, status=STATUS_RINGING, started_at=now)


def _ended(message: str = "the call has ended") -> ProtocolError:
    return ProtocolError(protocol.ERR_CALL_ENDED, message)


def expire(state: CallState, now: datetime) -> CallState:
    """End the call if an away participant's grace period is over (lazily, at any transition)."""
    if state.ended:
        return state
    for since in sorted(state.away.values()):
        if now >= since + REJOIN_GRACE:
            return replace(
                state,
                status=STATUS_ENDED,
                ended_at=since + REJOIN_GRACE,
                ended_by=None,
                end_reason=protocol.END_PEER_LOST,
                legs={},
                away={},
            )
    return state


def join(state: CallState, part: Part, leg: str, now: datetime) -> tuple[CallState, bool]:
    """A participant's socket joins (or rejoins, or takes over from its own older socket).

    Returns:
        The new state and whether this is a rejoin (the participant was in the call before).

    Raises:
        ProtocolError: ``call_ended``.
    """
    state = expire(state, now)
    if state.ended:
        raise _ended()
    rejoin = part in state.legs
    away = {key: value for key, value in state.away.items() if key != part}
    legs = {**state.legs, part: leg}
    status = state.status
    answered_at = state.answered_at
    if part == "patient" and answered_at is None:
        answered_at = now
        status = STATUS_ACTIVE
    return replace(state, legs=legs, away=away, status=status, answered_at=answered_at), rejoin


def drop(state: CallState, part: Part, leg: str, now: datetime) -> CallState:
    """A participant's socket left or vanished: the grace period starts. A replaced leg changes nothing."""
    state = expire(state, now)
    if state.ended or state.legs.get(part) != leg or part in state.away:
        return state
    return replace(state, away={**state.away, part: now})


def hang_up(state: CallState, part: Part | None, now: datetime, reason: str = protocol.END_HANGUP) -> CallState:
    """End the call (a participant hung up, the consultation closed, or the call stepped down to text)."""
    state = expire(state, now)
    if state.ended:
        raise _ended("the call has already ended")
    return replace(state, status=STATUS_ENDED, ended_at=now, ended_by=part, end_reason=reason, legs={}, away={})


def step_down(state: CallState, part: Part, step: str, reason: str, now: datetime) -> CallState:
    """Record a step down the ladder; steps are only taken downwards (repeating the current one is allowed).

    Stepping to text chat or to a call-back request ends the call itself (the consultation goes on).

    Raises:
        ProtocolError: ``step_out_of_order`` or ``call_ended``.
    """
    state = expire(state, now)
    if state.ended:
        raise _ended()
    if step not in protocol.STEPS:
        raise ProtocolError(protocol.ERR_INVALID_FORMAT, f"unknown step {step!r}")
    if state.steps and protocol.STEPS.index(step) < protocol.STEPS.index(state.steps[-1].step):
        raise ProtocolError(
            protocol.ERR_STEP_OUT_OF_ORDER,
            f"the call already stepped down to {state.steps[-1].step}; cannot go to {step}",
        )
    state = replace(state, steps=(*state.steps, StepRecord(step, part, now, reason)))
    if step in (protocol.STEP_TEXT_CHAT, protocol.STEP_CALLBACK):
        state = replace(
            state,
            status=STATUS_ENDED,
            ended_at=now,
            ended_by=part,
            end_reason=protocol.END_STEPPED_DOWN,
            legs={},
            away={},
        )
    return state


def report_quality(state: CallState, part: Part, rtt_ms: float, loss_pct: float, jitter_ms: float) -> CallState:
    """Keep each side's worst reported figures (a summary, not a time series)."""
    previous = state.quality.get(part, {})
    merged = {
        "rtt_ms": max(rtt_ms, previous.get("rtt_ms", 0.0)),
        "loss_pct": max(loss_pct, previous.get("loss_pct", 0.0)),
        "jitter_ms": max(jitter_ms, previous.get("jitter_ms", 0.0)),
        "grade_rank": max(GRADES.index(grade(rtt_ms, loss_pct, jitter_ms)), previous.get("grade_rank", 0.0)),
    }
    return replace(state, quality={**state.quality, part: merged})


# -- connection quality grades (the device check and the call record) ----------------------------

GRADES: Final = ("good", "fair", "poor")
# ITU-T G.114 puts one-way delay under 150 ms as fine for conversation (300 ms round trip);
# WebRTC audio stays intelligible to about 5 % loss with Opus FEC; 30 ms jitter is about what
# a default jitter buffer absorbs without audible stretching.
GOOD_LIMITS: Final = (150.0, 1.0, 20.0)  # rtt ms, loss %, jitter ms
FAIR_LIMITS: Final = (400.0, 5.0, 50.0)


def grade(rtt_ms: float, loss_pct: float, jitter_ms: float) -> str:
    """Grade a link good / fair / poor by its worst figure."""
    figures = (rtt_ms, loss_pct, jitter_ms)
    if all(value <= limit for value, limit in zip(figures, GOOD_LIMITS, strict=True)):
        return "good"
    if all(value <= limit for value, limit in zip(figures, FAIR_LIMITS, strict=True)):
        return "fair"
    return "poor"


# -- one participant's negotiation -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Negotiation:
    """Offer/answer bookkeeping of one leg, seen from the server.

    ``local_generation`` is the generation of the leg's own connection that last sent a
    description; ``local_offer`` says its offer awaits an answer; ``remote_offer`` says the peer's
    offer awaits this leg's answer; ``candidates`` counts this generation's trickled candidates.
    """

    local_generation: int = 0
    local_offer: bool = False
    remote_offer: bool = False
    remote_generation: int = 0
    candidates: int = 0


def reset() -> Negotiation:
    """A fresh negotiation (after a join or when the peer rejoins with a new connection)."""
    return Negotiation()


def _check_generation(state: Negotiation, generation: int) -> None:
    if generation < state.local_generation:
        raise ProtocolError(
            protocol.ERR_STALE_GENERATION,
            f"generation {generation} is older than this leg's connection {state.local_generation}",
        )


def local_offer(state: Negotiation, generation: int) -> Negotiation:
    """The leg sends an offer (glare with a pending remote offer is allowed: perfect negotiation)."""
    _check_generation(state, generation)
    candidates = state.candidates if generation == state.local_generation else 0
    return replace(state, local_generation=generation, local_offer=True, candidates=candidates)


def local_answer(state: Negotiation, generation: int) -> Negotiation:
    """The leg answers the peer's offer; its own pending offer, if any, is thereby withdrawn.

    Raises:
        ProtocolError: ``no_offer_to_answer`` (an answer before any offer), ``stale_generation``.
    """
    if not state.remote_offer:
        raise ProtocolError(protocol.ERR_NO_OFFER, "there is no offer from the other participant to answer")
    _check_generation(state, generation)
    candidates = state.candidates if generation == state.local_generation else 0
    return replace(state, local_generation=generation, local_offer=False, remote_offer=False, candidates=candidates)


def local_candidate(state: Negotiation, generation: int) -> Negotiation:
    """The leg trickles a candidate of its current connection.

    Raises:
        ProtocolError: ``no_description``, ``stale_generation``, ``too_many_candidates``.
    """
    if state.local_generation == 0:
        raise ProtocolError(protocol.ERR_NO_DESCRIPTION, "send an offer or an answer before its candidates")
    if generation != state.local_generation:
        raise ProtocolError(
            protocol.ERR_STALE_GENERATION,
            f"candidate of generation {generation}; the connection is {state.local_generation}",
        )
    if state.candidates >= protocol.MAX_CANDIDATES_PER_GENERATION:
        raise ProtocolError(
            protocol.ERR_TOO_MANY_CANDIDATES,
            f"at most {protocol.MAX_CANDIDATES_PER_GENERATION} candidates per connection; send end-of-candidates",
        )
    return replace(state, candidates=state.candidates + 1)


def remote_offer(state: Negotiation, generation: int) -> Negotiation:
    """The peer's offer was relayed to this leg."""
    return replace(state, remote_offer=True, remote_generation=generation)


def remote_answer(state: Negotiation, generation: int) -> Negotiation:
    """The peer answered: this leg's offer is settled, and any glaring offer of the peer was withdrawn."""
    return replace(state, local_offer=False, remote_offer=False, remote_generation=generation)
