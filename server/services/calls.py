"""Calls of a consultation (R11.1): authorization and the call record, one transaction per transition.

The state machine is ``signaling.calls`` (pure); this module loads the row under a lock, applies
one transition and stores it, so two server processes can never both start, end or rejoin the
same call. It implements the ``signaling.relay.CallStore`` port; ``signaling`` never sees the
database.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import EVENT_DISPATCH_QUEUE_CHANGED, dispatch_queue_channel
from server.db.models import Call, Consultation, DispatchRequest
from server.db.repositories import chat as chat_repo
from server.db.uow import UnitOfWork
from server.domain.errors import Conflict, NotFound
from server.domain.participation import participant_of
from server.services import audit
from server.services.context import ServiceContext
from server.services.identity import Principal
from signaling import calls as rules
from signaling import protocol
from signaling.protocol import Part
from signaling.relay import Joined

log = logging.getLogger(__name__)

RESOURCE: Final = "consultation_call"
CALL_BACK_SOURCE: Final = "call_back"  # dispatch_requests.source of a call that stepped down to a call-back


def _state(row: Call) -> rules.CallState:
    return rules.CallState(
        consultation_id=row.consultation_id,
        channel=row.channel,
        status=row.status,
        started_at=row.started_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,  # type: ignore[arg-type]
        end_reason=row.end_reason,
        legs=dict(row.legs or {}),
        away={part: datetime.fromisoformat(at) for part, at in (row.away or {}).items()},
        steps=tuple(
            rules.StepRecord(s["step"], s["by"], datetime.fromisoformat(s["at"]), s.get("reason", ""))
            for s in row.steps or ()
        ),
        quality=dict(row.quality or {}),
    )


def _store(row: Call, state: rules.CallState) -> None:
    row.status = state.status
    row.answered_at = state.answered_at
    row.ended_at = state.ended_at
    row.ended_by = state.ended_by
    row.end_reason = state.end_reason
    row.legs = dict(state.legs)
    row.away = {part: at.isoformat() for part, at in state.away.items()}
    row.steps = [step.as_dict() for step in state.steps]
    row.quality = dict(state.quality)


def record_of(call_id: int, state: rules.CallState) -> dict[str, Any]:
    """The call record as the API and the events show it (no media, nothing clinical)."""
    return {
        "call_id": call_id,
        "consultation_id": state.consultation_id,
        "channel": state.channel,
        "status": state.status,
        "started_at": state.started_at.isoformat(),
        "answered_at": state.answered_at.isoformat() if state.answered_at else None,
        "ended_at": state.ended_at.isoformat() if state.ended_at else None,
        "duration_seconds": state.duration_seconds,
        "ended_by": state.ended_by,
        "end_reason": state.end_reason,
        "step_downs": [step.as_dict() for step in state.steps],
        "quality": {
            part: {
                "rtt_ms": figures["rtt_ms"],
                "loss_pct": figures["loss_pct"],
                "jitter_ms": figures["jitter_ms"],
                "grade": rules.GRADES[int(figures["grade_rank"])],
            }
            for part, figures in state.quality.items()
        },
    }


class CallService:
    """The ``CallStore`` the relay uses: every method is one transaction on the ``calls`` table."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def now(self) -> datetime:
        """The service clock (tests pass a fixed one)."""
        return self.ctx.clock.now()

    async def join(self, principal: Any, consultation_id: int, leg: str) -> Joined:
        """Authorize and join: the doctor starts (or rejoins) the call, the patient answers or rejoins.

        Raises:
            NotFound: not the consultation's patient or assigned doctor (audited).
            Conflict: the consultation is not active; the patient called in before the doctor.
            ProtocolError: the call ended.
        """
        assert isinstance(principal, Principal)
        ctx = self.ctx
        now = self.now()
        async with ctx.uow() as uow:
            session = uow.session
            locked = await chat_repo.lock_consultations_txn(session, [consultation_id])
            access = locked.get(consultation_id)
            part = participant_of(access, principal)
            if access is None or part is None:
                allowed = False
            else:
                allowed = True
                if access.status != "active":
                    raise Conflict(
                        "calls are possible only while the consultation is active",
                        code=protocol.ERR_CONSULTATION_NOT_ACTIVE,
                    )
                row = await _open_call(session, consultation_id)
                if row is not None:
                    state = rules.expire(_state(row), now)
                    if state.ended:
                        _store(row, state)
                        row = None
                if row is None:
                    if part != "doctor":
                        await uow.commit()
                        raise Conflict("the doctor has not called yet", code=protocol.ERR_CALL_NOT_STARTED)
                    channel = await _consultation_channel(session, consultation_id)
                    state = rules.start_call(consultation_id, channel, now)
                    row = Call(consultation_id=consultation_id, channel=channel, status=state.status, started_at=now)
                    _store(row, state)
                    session.add(row)
                    await session.flush()
                state, rejoin = rules.join(_state(row), part, leg, now)
                _store(row, state)
                # Write the call row before the audit append takes the chain's one lock (shared by every
                # audited action of every process): the lock is then held only for the head read, the
                # audit insert and the commit, not for this statement as well.
                await session.flush()
                await audit.record_txn(
                    ctx,
                    session,
                    principal,
                    action="call.join",
                    resource_type=RESOURCE,
                    resource_id=row.id,
                    patient_id=access.insured_person_id,
                )
                await uow.commit()
                call_id = row.id
        if not allowed or access is None or part is None:
            await audit.record(
                ctx,
                principal,
                action="call.join",
                resource_type=RESOURCE,
                resource_id=consultation_id,
                patient_id=None,
                result=audit.RESULT_DENIED,
            )
            raise NotFound("no such consultation", code=protocol.ERR_NOT_FOUND)
        return Joined(
            call_id=call_id,
            consultation_id=consultation_id,
            part=part,
            state=state,
            rejoin=rejoin,
            patient_key=f"insured:{access.insured_person_id}",
        )

    async def _transition(self, call_id: int, change: Any) -> tuple[rules.CallState, rules.CallState]:
        async with self.ctx.uow() as uow:
            row = (
                await uow.session.execute(select(Call).where(Call.id == call_id).with_for_update())
            ).scalar_one_or_none()
            if row is None:
                raise NotFound("no such call", code=protocol.ERR_NOT_FOUND)
            before = _state(row)
            after = change(before)
            if after != before:
                _store(row, after)
                await uow.commit()
        return before, after

    async def drop(self, call_id: int, part: Part, leg: str) -> rules.CallState:
        """A leg left or vanished: the rejoin grace period starts."""
        now = self.now()
        return (await self._transition(call_id, lambda s: rules.drop(s, part, leg, now)))[1]

    async def hang_up(self, call_id: int, part: Part | None, reason: str) -> rules.CallState:
        """End the call (``reason``: hangup, consultation_ended)."""
        now = self.now()
        return (await self._transition(call_id, lambda s: rules.hang_up(s, part, now, reason)))[1]

    async def step_down(self, call_id: int, part: Part, step: str, reason: str) -> rules.CallState:
        """Record one step down the ladder; the first ``callback_request`` also queues a call-back.

        The call-back lands in the dispatchers' queue in the same transaction as the step (issue 13,
        item 6: the last rung must reach a person), and the queue is told live.
        """
        now = self.now()
        async with self.ctx.uow() as uow:
            row = (
                await uow.session.execute(select(Call).where(Call.id == call_id).with_for_update())
            ).scalar_one_or_none()
            if row is None:
                raise NotFound("no such call", code=protocol.ERR_NOT_FOUND)
            before = _state(row)
            after = rules.step_down(before, part, step, reason, now)
            _store(row, after)
            if step == protocol.STEP_CALLBACK:
                await _queue_call_back_txn(uow, row.consultation_id, now)
            await uow.commit()
        return after

    async def report_quality(self, call_id: int, part: Part, rtt_ms: float, loss_pct: float, jitter_ms: float) -> None:
        """Keep the worst figures each side reported."""
        await self._transition(
            call_id, lambda s: s if s.ended else rules.report_quality(s, part, rtt_ms, loss_pct, jitter_ms)
        )

    async def expire(self, call_id: int) -> tuple[rules.CallState, bool]:
        """End the call if an away participant's grace is over; says whether this call ended now."""
        now = self.now()
        before, after = await self._transition(call_id, lambda s: rules.expire(s, now))
        return after, after.ended and not before.ended

    async def consultation_active(self, consultation_id: int) -> bool:
        """Whether the consultation still allows a call (checked when its status changes)."""
        async with self.ctx.uow() as uow:
            access = await chat_repo.get_access(uow.session, consultation_id)
        return access is not None and access.status == "active"

    async def parts_now(self, consultation_id: int, principals: list[Any]) -> tuple[bool, list[Part | None]]:
        """Whether the consultation is active, and each caller's part now (a handed-over doctor: None)."""
        async with self.ctx.uow() as uow:
            access = await chat_repo.get_access(uow.session, consultation_id)
        active = access is not None and access.status == "active"
        return active, [participant_of(access, p) if isinstance(p, Principal) else None for p in principals]


async def _queue_call_back_txn(uow: UnitOfWork, consultation_id: int, now: datetime) -> None:
    """One open call-back request per consultation in the dispatchers' queue (a repeat adds none)."""
    session = uow.session
    existing = (
        await session.execute(
            select(DispatchRequest.id).where(
                DispatchRequest.consultation_id == consultation_id,
                DispatchRequest.source == CALL_BACK_SOURCE,
                DispatchRequest.status.in_(("open", "in_progress")),
            )
        )
    ).first()
    if existing is not None:
        return
    consultation = (await session.execute(select(Consultation).where(Consultation.id == consultation_id))).scalar_one()
    request = DispatchRequest(
        insured_person_id=consultation.insured_person_id,
        consultation_id=consultation_id,
        source=CALL_BACK_SOURCE,
        complaints=consultation.complaints,
        requested_specialty=consultation.specialty,
        requested_services=[],
        status="open",
        created_at=now,
    )
    session.add(request)
    await session.flush()
    uow.publish(
        dispatch_queue_channel(),
        {"type": EVENT_DISPATCH_QUEUE_CHANGED, "dispatch_request_id": request.id, "source": CALL_BACK_SOURCE},
    )
    log.info("call of consultation %s stepped down to a call-back: dispatch request %s", consultation_id, request.id)


async def _open_call(session: AsyncSession, consultation_id: int) -> Call | None:
    stmt = (
        select(Call)
        .where(Call.consultation_id == consultation_id, Call.status != rules.STATUS_ENDED)
        .order_by(Call.id.desc())
        .limit(1)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _consultation_channel(session: AsyncSession, consultation_id: int) -> str:
    channel = (
        await session.execute(select(Consultation.channel).where(Consultation.id == consultation_id))
    ).scalar_one()
    return "audio" if channel == "audio" else "video"


async def call_records(ctx: ServiceContext, principal: Principal, consultation_id: int) -> list[dict[str, Any]]:
    """Every call of a consultation, oldest first, for its patient and doctor (audited read).

    Raises:
        NotFound: not a participant.
    """
    async with ctx.uow() as uow:
        access = await chat_repo.get_access(uow.session, consultation_id)
        if access is None or participant_of(access, principal) is None:
            raise NotFound("no such consultation")
        rows = (
            await uow.session.execute(select(Call).where(Call.consultation_id == consultation_id).order_by(Call.id))
        ).scalars()
        records = [record_of(row.id, rules.expire(_state(row), ctx.clock.now())) for row in rows]
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="call.records",
            resource_type=RESOURCE,
            resource_id=consultation_id,
            patient_id=access.insured_person_id,
        )
        await uow.commit()
    return records
