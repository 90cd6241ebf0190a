"""Ending the cover of persons removed from their employer's list, on the removal date.

From that day the person cannot log in (their sessions end and their sockets close at once, on every
process), their open consultations are cancelled with a message to the patient and the doctor, and
nothing of their history is deleted. Safe to run again and from several processes: each person is
claimed by a conditional UPDATE, so only one run handles them. Every server process runs it on a loop
(``coverage_end_interval_seconds``, ``server/api/coverage_end.py``); ``telemed coverage-end`` runs it by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from server.channels import EVENT_SESSION_REVOKED, session_channel
from server.db.repositories import accounts as accounts_repo
from server.db.repositories import records as records_repo
from server.domain.errors import DomainError
from server.services import consultations as consultation_service
from server.services.context import ServiceContext
from server.services.coverage_facts import coverage_day
from server.services.identity import ROLE_INSURED, Principal
from server.services.records.changes import Actor, audit_txn, record_txn

log = logging.getLogger(__name__)
OPEN_STATUSES = ("queued", "offered", "active")


@dataclass(frozen=True, slots=True)
class CoverageEndReport:
    """Who lost cover in this run and which consultations were cancelled."""

    persons: list[int]
    consultations_cancelled: list[int]


async def end_coverage_due(ctx: ServiceContext, actor: Actor, *, today: date | None = None) -> CoverageEndReport:
    """End the cover of every person whose removal date has come and who is still active."""
    now = ctx.clock.now()
    day = today or coverage_day(now)
    async with ctx.uow() as uow:
        due = await records_repo.due_removals(uow.session, day)
    ended: list[int] = []
    cancelled: list[int] = []
    for person_id in due:
        revoked: list[str] = []
        async with ctx.uow() as uow:
            session = uow.session
            claimed = await records_repo.claim_coverage_end(session, person_id, now)
            if claimed is None:
                continue
            revoked = await accounts_repo.revoke_subject_sessions(session, "insured", person_id, now, "coverage_ended")
            await record_txn(
                session,
                actor,
                now,
                entity_type="insured_person",
                entity_id=person_id,
                action="coverage_ended",
                changes={"is_active": [True, False]},
                person_id=person_id,
            )
            await audit_txn(
                session,
                actor,
                now,
                action="insured.coverage_end",
                resource_type="insured_person",
                resource_id=person_id,
                patient_id=person_id,
            )
            await uow.commit()
        ended.append(person_id)
        for session_id in revoked:
            await ctx.bus.publish(
                session_channel(session_id), {"type": EVENT_SESSION_REVOKED, "reason": "coverage_ended"}
            )
        phone, removed_on = claimed[0], claimed[1] or day
        cancelled += await _cancel_open_consultations(ctx, person_id, removed_on)
        await ctx.code_sender.send(
            phone,
            f"Your VHI cover through your employer ended on {removed_on.strftime('%d.%m.%Y')}. "
            "Your consultation history is kept.",
            now=now,
        )
    if ended:
        log.info("cover ended for %d removed person(s); %d consultation(s) cancelled", len(ended), len(cancelled))
    return CoverageEndReport(ended, cancelled)


SYSTEM_ACTOR = Actor("system:coverage-end")
"""Who ended the cover when the server's own loop did (``telemed coverage-end`` records the operator)."""


async def end_coverage_job(ctx: ServiceContext) -> CoverageEndReport:
    """The background loop's run: every due removal, by the service clock (the server's ``setup`` schedules it).

    Every process runs it; the per-person claim (a conditional ``UPDATE`` of ``is_active``) makes each
    person's cover end exactly once, with one SMS and one cancellation of each open consultation.
    """
    return await end_coverage_due(ctx, SYSTEM_ACTOR)


async def _cancel_open_consultations(ctx: ServiceContext, person_id: int, removed_on: date) -> list[int]:
    async with ctx.uow() as uow:
        open_ids = await records_repo.open_consultation_ids(uow.session, person_id, OPEN_STATUSES)
    # The patient's own cancellation path: both sides are told (consultation.updated with the reason).
    patient = Principal(
        subject_type="insured",
        subject_id=person_id,
        role=ROLE_INSURED,
        session_id="coverage-end",
        token_expires_at=ctx.clock.now(),
    )
    done = []
    for consultation_id in open_ids:
        try:
            await consultation_service.cancel_consultation(
                ctx,
                patient,
                consultation_id,
                reason=f"cover ended on {removed_on.strftime('%d.%m.%Y')}: removed from the employer's list",
            )
        except DomainError as exc:  # finished meanwhile: nothing left to cancel
            log.info("consultation %s not cancelled at cover end: %s", consultation_id, exc.message)
            continue
        done.append(consultation_id)
    return done
