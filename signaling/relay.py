"""The call relay: each socket's leg of a call, relayed to the other participant over the bus.

One bus channel per call (``call:<id>``). Every process that holds a leg of the call listens to
it; a leg's messages are published through the process's single ordered outbox, and Redis keeps
the order of one publisher, so the other side sees one participant's signals in the order they
were sent, whichever processes the two are on. Only what the state machines allow is relayed:
:mod:`signaling.calls` decides, this module moves messages.

The relay depends on ports, not on the server: ``publish(channel, message)`` (ordered, sync),
``listen(channel, handler) -> unlisten``, a :class:`CallStore` (the database, through a service)
and the ICE settings. It never imports ``server.api`` or a repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from signaling import calls, ice, protocol
from signaling.protocol import Part, ProtocolError

log = logging.getLogger(__name__)

Message = dict[str, Any]
Publish = Callable[[str, Message], None]
Listen = Callable[[str, Callable[[Message], None]], Callable[[], None]]
Deliver = Callable[[Message], None]

# Bus message kinds on a call channel (not the client event names: those are built on delivery).
BUS_JOINED: Final = "joined"
BUS_AWAY: Final = "away"
BUS_SIGNAL: Final = "signal"  # description, candidate, end of candidates, media: relayed to the other part
BUS_STEP: Final = "step"
BUS_ENDED: Final = "ended"


class BatchingOutbox:
    """One ordered outbox for a process's call signalling: whatever piled up goes out in one batch.

    ``send_many`` gets the messages in the order they were published (Redis: one pipeline, run in
    order on one connection), so each participant's signals keep their order, and a relay carrying
    hundreds of calls pays one bus round trip per batch instead of one per message.
    """

    MAX_BATCH: Final = 500

    def __init__(self, send_many: Callable[[list[tuple[str, Message]]], Awaitable[None]]) -> None:
        self._send_many = send_many
        self._pending: list[tuple[str, Message]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def publish(self, channel: str, message: Message) -> None:
        """Queue a message (sync: handlers call it without awaiting the bus)."""
        self._pending.append((channel, message))
        self._wakeup.set()

    def start(self) -> None:
        """Start sending."""
        self._task = asyncio.create_task(self._run(), name="call-outbox")

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            try:
                await self._send_many(batch)
            except Exception as exc:
                log.warning("could not publish %d call signal(s): %s", len(batch), exc)

    async def stop(self) -> None:
        """Send what is left (briefly), then stop."""
        if self._pending:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send_many(self._pending), 2.0)
            self._pending = []
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def call_channel(call_id: int) -> str:
    """The bus channel of one call's signalling."""
    return f"call:{call_id}"


@dataclass(frozen=True, slots=True)
class Joined:
    """What the store says after a successful join."""

    call_id: int
    consultation_id: int
    part: Part
    state: calls.CallState
    rejoin: bool
    patient_key: str


class CallStore(Protocol):
    """The call record, kept by the server (one transaction per method)."""

    def now(self) -> datetime:
        """The clock."""
        ...

    async def join(self, principal: Any, consultation_id: int, leg: str) -> Joined:
        """Authorize and join (or start) the consultation's call."""
        ...

    async def drop(self, call_id: int, part: Part, leg: str) -> calls.CallState:
        """A leg left or vanished."""
        ...

    async def hang_up(self, call_id: int, part: Part | None, reason: str) -> calls.CallState:
        """End the call."""
        ...

    async def step_down(self, call_id: int, part: Part, step: str, reason: str) -> calls.CallState:
        """Record a step down."""
        ...

    async def report_quality(self, call_id: int, part: Part, rtt_ms: float, loss_pct: float, jitter_ms: float) -> None:
        """Keep a quality report."""
        ...

    async def expire(self, call_id: int) -> tuple[calls.CallState, bool]:
        """End the call if a grace period is over; whether it ended now."""
        ...

    async def consultation_active(self, consultation_id: int) -> bool:
        """Whether the consultation is still active."""
        ...

    async def parts_now(self, consultation_id: int, principals: list[Any]) -> tuple[bool, list[Part | None]]:
        """Whether the consultation is active, and each principal's part in it now (None: no longer takes part)."""
        ...


@dataclass(eq=False)
class Leg:
    """One socket's place in one call, on this process."""

    id: str
    call_id: int
    consultation_id: int
    part: Part
    owner: object  # the socket (identity only)
    deliver: Deliver
    media: protocol.MediaState
    negotiation: calls.Negotiation = field(default_factory=calls.reset)
    peer_present: bool = False
    relay_only: bool = False
    closed: bool = False
    suspended: bool = False  # the consultation was announced as no longer active: nothing passes until confirmed
    reassigned: bool = False  # the consultation was announced as handed over: this doctor leg waits for the recheck
    principal: Any = None  # who joined (re-checked against the consultation's current doctor on every update)
    on_detach: Callable[[], None] | None = None  # the socket's own cleanup (its subscription)


def _relay_only(state: calls.CallState) -> bool:
    order = protocol.STEPS.index
    return any(order(step.step) >= order(protocol.STEP_RELAY_ONLY) for step in state.steps)


class CallRelay:
    """Every leg on this process, and the bus traffic between them and the other participants."""

    def __init__(
        self,
        store: CallStore,
        *,
        publish: Publish,
        listen: Listen,
        ice_config: ice.IceConfig,
        ring: Callable[[str, int, Message], None],
    ) -> None:
        self.store = store
        self.publish = publish
        self.listen = listen
        self.ice_config = ice_config
        self.ring = ring  # ring(patient_key, consultation_id, event)
        self.legs: dict[tuple[int, object], Leg] = {}  # (call_id, owner) -> leg
        self.by_call: dict[int, list[Leg]] = {}
        self._unlisten: dict[int, Callable[[], None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifetime ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop timers and pending work (shutdown); legs are left for the grace period elsewhere."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for unlisten in self._unlisten.values():
            unlisten()
        self._unlisten.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- joining and leaving ------------------------------------------------------------------------

    def _ice(self, call_id: int, relay_only: bool) -> dict[str, Any]:
        return ice.ice_servers(self.ice_config, f"call{call_id}", self.store.now(), relay_only=relay_only)

    async def join(
        self, owner: object, principal: Any, consultation_id: int, media: protocol.MediaState, deliver: Deliver
    ) -> Message:
        """Join (or start, or rejoin) the consultation's call; returns the join result.

        Raises:
            ProtocolError: ``already_joined``; the store's errors (not found, not active, ended).
        """
        for leg in self.legs.values():
            if leg.owner is owner and leg.consultation_id == consultation_id and not leg.closed:
                raise ProtocolError(protocol.ERR_ALREADY_JOINED, "this socket has already joined this call")
        leg_id = uuid.uuid4().hex
        joined = await self.store.join(principal, consultation_id, leg_id)
        state = joined.state
        other = protocol.other(joined.part)
        leg = Leg(
            id=leg_id,
            call_id=joined.call_id,
            consultation_id=consultation_id,
            part=joined.part,
            owner=owner,
            deliver=deliver,
            media=media,
            peer_present=state.present(other),
            relay_only=_relay_only(state),
            principal=principal,
        )
        self._attach(leg)
        self.publish(
            call_channel(leg.call_id),
            {"kind": BUS_JOINED, "from": leg.part, "leg": leg.id, "rejoin": joined.rejoin, "media": media.as_wire()},
        )
        if joined.part == "doctor" and state.status == calls.STATUS_RINGING:
            self.ring(
                joined.patient_key,
                consultation_id,
                {
                    "type": protocol.EV_RINGING,
                    "consultation_id": consultation_id,
                    "call_id": joined.call_id,
                    "channel": state.channel,
                },
            )
        deadline = state.rejoin_deadline(other)
        if deadline is not None:
            self._schedule_expiry(leg.call_id, deadline)
        servers = self._ice(leg.call_id, leg.relay_only)
        return {
            "call_id": leg.call_id,
            "consultation_id": consultation_id,
            "v": protocol.PROTOCOL_VERSION,
            "role": leg.part,
            "polite": protocol.polite_part(leg.part),
            "status": state.status,
            "channel": state.channel,
            "rejoined": joined.rejoin,
            "peer": {
                "present": leg.peer_present,
                "media": None,
                "rejoin_deadline": deadline.isoformat() if deadline is not None else None,
            },
            "ice_servers": servers["ice_servers"],
            "ice_expires_at": servers["expires_at"],
            "ice_transport_policy": servers["ice_transport_policy"],
            "rejoin_grace_seconds": int(calls.REJOIN_GRACE.total_seconds()),
            "steps": [step.as_dict() for step in state.steps],
        }

    def _attach(self, leg: Leg) -> None:
        self.legs[(leg.call_id, leg.owner)] = leg
        legs = self.by_call.setdefault(leg.call_id, [])
        legs.append(leg)
        if leg.call_id not in self._unlisten:
            call_id = leg.call_id
            self._unlisten[call_id] = self.listen(call_channel(call_id), lambda message: self._on_bus(call_id, message))

    def _detach(self, leg: Leg) -> None:
        if not leg.closed and leg.on_detach is not None:
            leg.on_detach()
        leg.closed = True
        if self.legs.get((leg.call_id, leg.owner)) is leg:
            del self.legs[(leg.call_id, leg.owner)]
        legs = self.by_call.get(leg.call_id, [])
        if leg in legs:
            legs.remove(leg)
        if not legs:
            self.by_call.pop(leg.call_id, None)
            unlisten = self._unlisten.pop(leg.call_id, None)
            if unlisten is not None:
                unlisten()

    def in_call(self, owner: object) -> bool:
        """Whether the socket holds a leg of a call here: in a call media flows and no frame needs
        to, so the socket is not idle (A10)."""
        return any(leg.owner is owner and not leg.closed for leg in self.legs.values())

    def leg_of(self, owner: object, call_id: int) -> Leg:
        """The socket's leg in that call.

        Raises:
            ProtocolError: ``not_joined``.
        """
        leg = self.legs.get((call_id, owner))
        if leg is None or leg.closed:
            raise ProtocolError(protocol.ERR_NOT_JOINED, "join the call first (call.join)")
        if leg.suspended:
            raise ProtocolError(protocol.ERR_CALL_ENDED, "the consultation is no longer active")
        if leg.reassigned:
            raise ProtocolError(protocol.ERR_CALL_ENDED, "the consultation was handed to another doctor")
        return leg

    async def leave(self, owner: object, call_id: int) -> Message:
        """Leave without ending the call: the other side waits for the grace period."""
        leg = self.leg_of(owner, call_id)
        state = await self._drop(leg)
        deadline = state.rejoin_deadline(leg.part)
        return {"rejoin_deadline": deadline.isoformat() if deadline is not None else None}

    async def _drop(self, leg: Leg) -> calls.CallState:
        self._detach(leg)
        state = await self.store.drop(leg.call_id, leg.part, leg.id)
        deadline = state.rejoin_deadline(leg.part)
        if not state.ended and deadline is not None and state.legs.get(leg.part) == leg.id:
            self.publish(
                call_channel(leg.call_id),
                {"kind": BUS_AWAY, "from": leg.part, "leg": leg.id, "rejoin_deadline": deadline.isoformat()},
            )
            self._schedule_expiry(leg.call_id, deadline)
        return state

    def owner_gone_from(self, owner: object, call_id: int) -> None:
        """The socket closed (or unsubscribed): its leg is away, not ended, until the grace period ends."""
        leg = self.legs.get((call_id, owner))
        if leg is not None and not leg.closed:
            self._detach(leg)
            self._spawn(self._drop_quietly(leg))

    async def _drop_quietly(self, leg: Leg) -> None:
        try:
            await self._drop(leg)
        except Exception:
            log.exception("could not record that call %s leg %s went away", leg.call_id, leg.part)

    def _schedule_expiry(self, call_id: int, deadline: datetime) -> None:
        delay = max(0.0, (deadline - self.store.now()).total_seconds()) + 0.05
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            if timer is not None:
                self._timers.discard(timer)
            self._spawn(self.check_expiry(call_id))

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    async def check_expiry(self, call_id: int) -> None:
        """End the call if an away participant's grace period is over, and tell whoever is left."""
        try:
            state, ended_now = await self.store.expire(call_id)
        except Exception:
            log.exception("could not check call %s for an expired grace period", call_id)
            return
        if ended_now:
            self._publish_ended(call_id, None, state)

    def _publish_ended(self, call_id: int, by_leg: str | None, state: calls.CallState) -> None:
        self.publish(
            call_channel(call_id),
            {
                "kind": BUS_ENDED,
                "leg": by_leg,
                "reason": state.end_reason,
                "ended_by": state.ended_by,
                "duration_seconds": state.duration_seconds,
            },
        )

    # -- signals ------------------------------------------------------------------------------------

    def _require_peer(self, leg: Leg) -> None:
        if not leg.peer_present:
            raise ProtocolError(protocol.ERR_PEER_NOT_PRESENT, "the other participant is not in the call")

    def _relay(self, leg: Leg, event: Message) -> None:
        self.publish(call_channel(leg.call_id), {"kind": BUS_SIGNAL, "from": leg.part, "leg": leg.id, "event": event})

    def description(self, owner: object, description: protocol.Description) -> None:
        """Relay an offer or answer that the negotiation state allows."""
        leg = self.leg_of(owner, description.call_id)
        self._require_peer(leg)
        if description.kind == "offer":
            leg.negotiation = calls.local_offer(leg.negotiation, description.generation)
        else:
            leg.negotiation = calls.local_answer(leg.negotiation, description.generation)
        self._relay(leg, {"type": protocol.EV_DESCRIPTION, **description.as_wire()})

    def candidate(self, owner: object, message: protocol.CandidateMessage) -> None:
        """Relay one trickled candidate (bounded per connection generation)."""
        leg = self.leg_of(owner, message.call_id)
        self._require_peer(leg)
        leg.negotiation = calls.local_candidate(leg.negotiation, message.generation)
        self._relay(
            leg,
            {"type": protocol.EV_CANDIDATE, "candidate": message.candidate.as_wire(), "generation": message.generation},
        )

    def end_of_candidates(self, owner: object, call_id: int, generation: int) -> None:
        """Relay "no more candidates" for a generation."""
        leg = self.leg_of(owner, call_id)
        self._require_peer(leg)
        if generation != leg.negotiation.local_generation:
            raise ProtocolError(protocol.ERR_STALE_GENERATION, "end-of-candidates for a connection that is not current")
        self._relay(leg, {"type": protocol.EV_END_OF_CANDIDATES, "generation": generation})

    def media(self, owner: object, call_id: int, media: protocol.MediaState) -> None:
        """Relay mute / camera state (kept, and re-announced to a peer that joins later)."""
        leg = self.leg_of(owner, call_id)
        leg.media = media
        self._relay(leg, {"type": protocol.EV_MEDIA, **media.as_wire()})

    def ice_servers(self, owner: object, call_id: int) -> Message:
        """Fresh ICE servers and TURN credentials (relay-only once the call stepped down to it)."""
        leg = self.leg_of(owner, call_id)
        servers = self._ice(call_id, leg.relay_only)
        return {
            "ice_servers": servers["ice_servers"],
            "ice_expires_at": servers["expires_at"],
            "ice_transport_policy": servers["ice_transport_policy"],
        }

    async def step_down(self, owner: object, message: protocol.StepDown) -> Message:
        """Record a step down, show it to the other side; text chat and call-back end the call."""
        leg = self.leg_of(owner, message.call_id)
        state = await self.store.step_down(message.call_id, leg.part, message.step, message.reason)
        record = state.steps[-1].as_dict()
        leg.relay_only = _relay_only(state)
        self.publish(call_channel(leg.call_id), {"kind": BUS_STEP, "from": leg.part, "leg": leg.id, "record": record})
        if state.ended:
            self._detach(leg)
            self._publish_ended(leg.call_id, leg.id, state)
        return {**record, "ended": state.ended}

    async def quality(self, owner: object, message: protocol.Quality) -> Message:
        """Keep a quality report for the call record; answer with its grade."""
        leg = self.leg_of(owner, message.call_id)
        await self.store.report_quality(message.call_id, leg.part, message.rtt_ms, message.loss_pct, message.jitter_ms)
        return {"grade": calls.grade(message.rtt_ms, message.loss_pct, message.jitter_ms)}

    async def hang_up(self, owner: object, call_id: int, reason: str = "") -> Message:
        """End the call for both sides."""
        leg = self.leg_of(owner, call_id)
        state = await self.store.hang_up(call_id, leg.part, protocol.END_HANGUP)
        self._detach(leg)
        self._publish_ended(call_id, leg.id, state)
        del reason  # kept by the client's own UI; the record says who ended it
        return {"ended": True, "duration_seconds": state.duration_seconds}

    def consultation_left_active(self, consultation_id: int) -> None:
        """The bus says the consultation is no longer active: stop relaying its call at once, then confirm.

        The join authorized each leg once (patient or assigned doctor, consultation active); this is
        the invalidation of that decision. Fail closed: the legs are suspended now, synchronously, so
        not one more signal passes while the database is asked; if the database says the
        consultation is still active after all, they resume.
        """
        legs = [leg for leg in self.legs.values() if leg.consultation_id == consultation_id and not leg.closed]
        if not legs:
            return
        for leg in legs:
            leg.suspended = True
        self._spawn(self.consultation_changed(consultation_id))

    async def consultation_changed(self, consultation_id: int) -> None:
        """The consultation's status changed: a call on a consultation that is no longer active ends."""
        legs = [leg for leg in self.legs.values() if leg.consultation_id == consultation_id]
        if not legs:
            return
        try:
            active = await self.store.consultation_active(consultation_id)
        except Exception:
            log.exception("could not recheck consultation %s; its call stays suspended", consultation_id)
            return
        if active:
            for leg in legs:
                leg.suspended = False
            return
        for call_id in {leg.call_id for leg in legs}:
            with contextlib.suppress(ProtocolError):
                state = await self.store.hang_up(call_id, None, protocol.END_CONSULTATION)
                self._publish_ended(call_id, None, state)

    def consultation_updated(self, consultation_id: int, *, handover: bool) -> None:
        """The consultation changed but is still active: re-check who takes part (issue 13 item 2, C5).

        Only the patient and the consultation's current doctor may be in its call. On a hand-over the
        doctor legs are held at once (fail closed, as for an ended consultation), then the database
        says whether each leg's user still takes part: a leg that no longer does is removed.
        """
        legs = [leg for leg in self.legs.values() if leg.consultation_id == consultation_id and not leg.closed]
        if not legs:
            return
        if handover:
            for leg in legs:
                if leg.part == "doctor":
                    leg.reassigned = True
        self._spawn(self.recheck_participants(consultation_id))

    async def recheck_participants(self, consultation_id: int) -> None:
        """Remove the legs whose user no longer takes part; the other side sees them leave (peer away)."""
        legs = [leg for leg in self.legs.values() if leg.consultation_id == consultation_id and not leg.closed]
        if not legs:
            return
        try:
            active, parts = await self.store.parts_now(consultation_id, [leg.principal for leg in legs])
        except Exception:
            log.exception("could not recheck who takes part in consultation %s; held legs stay held", consultation_id)
            return
        if not active:
            await self.consultation_changed(consultation_id)
            return
        for leg, part in zip(legs, parts, strict=True):
            if leg.closed:
                continue
            if part == leg.part:
                leg.reassigned = False
                continue
            await self.remove_leg(leg)

    async def remove_leg(self, leg: Leg) -> None:
        """The leg's user no longer takes part: tell that leg the call is over for it, then leave (grace period)."""
        leg.reassigned = True  # nothing more passes, whatever happens next
        leg.deliver(
            {
                "type": protocol.EV_ENDED,
                "call_id": leg.call_id,
                "reason": protocol.END_REASSIGNED,
                "ended_by": None,
                "duration_seconds": None,
            }
        )
        try:
            await self._drop(leg)
        except Exception:
            log.exception("could not record that call %s leg %s was removed", leg.call_id, leg.part)

    # -- from the bus -------------------------------------------------------------------------------

    def _on_bus(self, call_id: int, message: Message) -> None:
        kind = message.get("kind")
        sender = message.get("from")
        for leg in list(self.by_call.get(call_id, ())):
            if kind == BUS_ENDED:
                if message.get("leg") != leg.id:
                    leg.deliver(
                        {
                            "type": protocol.EV_ENDED,
                            "call_id": call_id,
                            "reason": message.get("reason"),
                            "ended_by": message.get("ended_by"),
                            "duration_seconds": message.get("duration_seconds"),
                        }
                    )
                self._detach(leg)
                continue
            if leg.suspended or leg.reassigned:
                continue  # nothing of a call whose consultation ended (or moved on) reaches it, except the end
            if sender == leg.part:
                if kind == BUS_JOINED and message.get("leg") != leg.id:
                    leg.deliver({"type": protocol.EV_REPLACED, "call_id": call_id})  # same user, another socket
                    self._detach(leg)
                continue
            self._deliver_from_peer(leg, kind, message)

    def _deliver_from_peer(self, leg: Leg, kind: object, message: Message) -> None:
        call_id = leg.call_id
        if kind == BUS_JOINED:
            leg.peer_present = True
            leg.negotiation = calls.reset()
            leg.deliver(
                {
                    "type": protocol.EV_PEER_JOINED,
                    "call_id": call_id,
                    "who": message.get("from"),
                    "rejoin": bool(message.get("rejoin")),
                    "media": message.get("media"),
                }
            )
            self._relay(leg, {"type": protocol.EV_MEDIA, **leg.media.as_wire()})  # tell the newcomer our state
        elif kind == BUS_AWAY:
            leg.peer_present = False
            leg.deliver(
                {
                    "type": protocol.EV_PEER_AWAY,
                    "call_id": call_id,
                    "who": message.get("from"),
                    "rejoin_deadline": message.get("rejoin_deadline"),
                }
            )
            deadline = message.get("rejoin_deadline")
            if isinstance(deadline, str):
                self._schedule_expiry(call_id, datetime.fromisoformat(deadline))
        elif kind == BUS_STEP:
            record = message.get("record") or {}
            if protocol.STEPS.index(record.get("step", protocol.STEP_ICE_RESTART)) >= protocol.STEPS.index(
                protocol.STEP_RELAY_ONLY
            ):
                leg.relay_only = True
            leg.deliver({"type": protocol.EV_STEP_DOWN, "call_id": call_id, **record})
        elif kind == BUS_SIGNAL:
            event = message.get("event")
            if not isinstance(event, dict):
                return
            if event.get("type") == protocol.EV_DESCRIPTION:
                generation = int(event.get("generation", 1))
                if event.get("description", {}).get("type") == "offer":
                    leg.negotiation = calls.remote_offer(leg.negotiation, generation)
                else:
                    leg.negotiation = calls.remote_answer(leg.negotiation, generation)
            leg.deliver({**event, "call_id": call_id, "from": message.get("from")})
