"""Case e: a chat-writer batch failing halfway (issue 11, item 12; checklist G1, I2).

A database trigger refuses one message of a batch (a constraint error raised by the database
itself, as a CHECK would). The writer splits the batch: its neighbours are stored, the bad
message gets its own ``message_rejected`` (not ``unavailable``: resending it cannot help), and
nothing is half-written (no gap in the sequence, ``last_seq`` equals the stored count). Runs on
the normal per-test database: SQLite in the embedded pass, PostgreSQL in the real pass.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.models import Consultation, ConsultationMessage
from server.domain.errors import DomainError
from server.services import chat
from server.services.chat import ChatWriter, MessageRejected, PostedMessage
from server.services.context import ServiceContext
from server.services.identity import Principal
from tests.conftest import TEST_NOW
from tests.factories import Factories
from tests.faults.harness import counts_line

POISON = "POISON"


async def _install_poison_trigger(engine: AsyncEngine) -> None:
    """Make the database refuse any message whose text contains POISON (SQLSTATE 23514 on PostgreSQL)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "CREATE FUNCTION faults_poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.body LIKE '%{POISON}%' THEN "
                    "RAISE EXCEPTION 'poisoned message' USING ERRCODE = 'check_violation'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER faults_poison BEFORE INSERT ON consultation_messages "
                    "FOR EACH ROW EXECUTE FUNCTION faults_poison()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER faults_poison BEFORE INSERT ON consultation_messages "
                    f"WHEN NEW.body LIKE '%{POISON}%' BEGIN SELECT RAISE(ABORT, 'poisoned message'); END"
                )
            )


async def test_a_batch_failing_halfway_stores_the_others_and_fails_only_the_bad_one(
    ctx: ServiceContext, factories: Factories, engine: AsyncEngine
) -> None:
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    first = await factories.consultation(patient, doctor, status="active")
    second = await factories.consultation(patient, doctor, status="active")
    await _install_poison_trigger(engine)
    p = Principal("insured", patient.id, "insured", "session", TEST_NOW)
    writer = ChatWriter(ctx, lanes=1)  # one lane: the whole burst is one batch
    writer.start()
    drafts = []
    for n in range(9):
        consultation = first if n % 3 else second
        body = f"{POISON} in message {n}" if n == 4 else f"message {n}"
        drafts.append(chat.make_draft(consultation.id, f"m{n}", body, None))
    try:
        outcomes: list[PostedMessage | BaseException] = await asyncio.gather(
            *(writer.submit(p, draft) for draft in drafts), return_exceptions=True
        )
        # The lane survives: the next message is stored right after the others.
        after = await writer.submit(p, chat.make_draft(first.id, "after", "after the failure", None))
    finally:
        await writer.stop()

    bad = outcomes[4]
    assert isinstance(bad, MessageRejected) and bad.code == "message_rejected" and bad.status == 422
    good = [o for i, o in enumerate(outcomes) if i != 4]
    assert all(isinstance(o, PostedMessage) and not o.duplicate for o in good), good
    assert not any(isinstance(o, DomainError) for o in good)

    async with factories.session_factory() as session:
        rows = (
            await session.execute(
                select(
                    ConsultationMessage.consultation_id, ConsultationMessage.seq, ConsultationMessage.client_message_id
                ).order_by(ConsultationMessage.consultation_id, ConsultationMessage.seq)
            )
        ).all()
        last_seqs = dict(
            (
                await session.execute(
                    select(Consultation.id, Consultation.last_seq).where(Consultation.id.in_([first.id, second.id]))
                )
            ).all()
        )
    stored = {(cid, cmid): seq for cid, seq, cmid in rows}
    assert "m4" not in {cmid for _, cmid in stored}, "the refused message must not be stored"
    # Each consultation: contiguous seqs from 1 in send order, last_seq = what is stored (nothing half-written).
    for consultation in (first, second):
        seqs = [seq for (cid, _), seq in sorted(stored.items(), key=lambda kv: kv[1]) if cid == consultation.id]
        assert seqs == list(range(1, len(seqs) + 1))
        assert last_seqs[consultation.id] == len(seqs)
    expected_first = [f"m{n}" for n in range(9) if n % 3 and n != 4] + ["after"]
    assert [
        cmid for (cid, cmid), _ in sorted(stored.items(), key=lambda kv: kv[1]) if cid == first.id
    ] == expected_first
    assert isinstance(after, PostedMessage) and after.message.seq == len(expected_first)
    print(
        counts_line(
            "e batch failing halfway",
            backend=engine.dialect.name,
            sent=len(drafts) + 1,
            acknowledged=len(good) + 1,
            rejected=1,
            stored=len(rows),
        )
    )
    assert len(rows) == len(good) + 1 == 9
