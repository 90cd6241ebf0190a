"""The batched chat writer: sequence allocation across writers, idempotent resend, database outage (G2, G5, I2)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from server.db.engine import make_engine, make_session_factory
from server.db.models import ConsultationMessage
from server.domain import chat as rules
from server.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from server.services import chat
from server.services.chat import ChatWriter
from server.services.context import ServiceContext
from server.services.identity import Principal
from tests.factories import Factories


def _principal(subject_type: str, subject_id: int, role: str) -> Principal:
    from tests.conftest import TEST_NOW

    return Principal(subject_type, subject_id, role, "session", TEST_NOW)


async def _stored(factories: Factories, consultation_id: int) -> list[tuple[int, str, str]]:
    async with factories.session_factory() as session:
        rows = await session.execute(
            select(ConsultationMessage.seq, ConsultationMessage.sender_key, ConsultationMessage.client_message_id)
            .where(ConsultationMessage.consultation_id == consultation_id)
            .order_by(ConsultationMessage.seq)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_two_writers_on_one_consultation_allocate_contiguous_sequences_in_send_order_G5(
    ctx: ServiceContext, factories: Factories
) -> None:
    """Two processes writing to the same consultation: no gap, no duplicate, each sender's order kept."""
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(patient, doctor)
    writer_a, writer_b = ChatWriter(ctx, batch_max=7), ChatWriter(ctx, batch_max=5)
    writer_a.start()
    writer_b.start()
    p = _principal("insured", patient.id, "insured")
    d = _principal("staff", doctor.id, "doctor")
    futures = []
    for n in range(60):
        futures.append(writer_a.submit(p, chat.make_draft(consultation.id, f"p{n}", f"from patient {n}", None)))
        futures.append(writer_b.submit(d, chat.make_draft(consultation.id, f"d{n}", f"from doctor {n}", None)))
    results = await asyncio.gather(*futures)
    await writer_a.stop()
    await writer_b.stop()
    assert sorted(r.message.seq for r in results) == list(range(1, 121))
    rows = await _stored(factories, consultation.id)
    assert [seq for seq, _, _ in rows] == list(range(1, 121))
    for prefix in ("p", "d"):
        mine = [cmid for _, _, cmid in rows if cmid.startswith(prefix)]
        assert mine == [f"{prefix}{n}" for n in range(60)]


async def test_a_resend_racing_through_two_writers_is_stored_once_G2(ctx: ServiceContext, factories: Factories) -> None:
    patient = await factories.insured()
    consultation = await factories.consultation(patient, await factories.staff("doctor"))
    writers = [ChatWriter(ctx) for _ in range(2)]
    for writer in writers:
        writer.start()
    p = _principal("insured", patient.id, "insured")
    draft = chat.make_draft(consultation.id, "same-id", "hello", None)
    results = await asyncio.gather(*(writer.submit(p, draft) for writer in writers for _ in range(3)))
    for writer in writers:
        await writer.stop()
    assert {r.message.seq for r in results} == {1}
    assert sum(not r.duplicate for r in results) == 1
    assert len(await _stored(factories, consultation.id)) == 1


async def test_refusals_in_a_batch_do_not_fail_their_neighbours(ctx: ServiceContext, factories: Factories) -> None:
    patient = await factories.insured()
    active = await factories.consultation(patient, await factories.staff("doctor"))
    closed = await factories.consultation(patient, None, status="cancelled")
    p = _principal("insured", patient.id, "insured")
    stranger = _principal("insured", patient.id + 1000, "insured")
    writer = ChatWriter(ctx)
    writer.start()
    outcomes = await asyncio.gather(
        writer.submit(p, chat.make_draft(active.id, "ok-1", "fine", None)),
        writer.submit(stranger, chat.make_draft(active.id, "bad-1", "intrusion", None)),
        writer.submit(p, chat.make_draft(closed.id, "late-1", "too late", None)),
        writer.submit(p, chat.make_draft(999_999, "ghost", "nobody", None)),
        writer.submit(p, chat.make_draft(active.id, "ok-2", "also fine", None)),
        return_exceptions=True,
    )
    await writer.stop()
    assert [type(o) for o in outcomes] == [chat.PostedMessage, NotFound, Conflict, NotFound, chat.PostedMessage]
    assert [o.message.seq for o in outcomes if isinstance(o, chat.PostedMessage)] == [1, 2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_database_outage_fails_each_message_and_acknowledges_none_I2(
    ctx: ServiceContext, factories: Factories, tmp_path: Path, backend: str
) -> None:
    """Never a success for an unsaved message: every waiting sender gets ``unavailable``.

    The PostgreSQL case points the writer at a port where nothing listens (its one-statement path).
    """
    patient = await factories.insured()
    consultation = await factories.consultation(patient, await factories.staff("doctor"))
    unreachable = {
        "sqlite": f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
        "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere",
    }
    engine = make_engine(unreachable[backend])
    down = dataclasses.replace(ctx, session_factory=make_session_factory(engine))
    writer = ChatWriter(down)
    writer.start()
    p = _principal("insured", patient.id, "insured")
    outcomes = await asyncio.gather(
        *(writer.submit(p, chat.make_draft(consultation.id, f"m{n}", "hello", None)) for n in range(5)),
        return_exceptions=True,
    )
    await writer.stop()
    await engine.dispose()
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert await _stored(factories, consultation.id) == []


async def test_a_stopped_writer_refuses_instead_of_hanging(ctx: ServiceContext, factories: Factories) -> None:
    writer = ChatWriter(ctx)
    with pytest.raises(Unavailable):
        await writer.submit(_principal("insured", 1, "insured"), chat.make_draft(1, "x", "hello", None))


@given(st.text(max_size=60) | st.text(alphabet=" \t\r\n\x00\u200b\u2028ab", max_size=10))
def test_the_text_shortcut_agrees_with_the_chat_rule_exactly(text: str) -> None:
    """``_checked_text`` may skip the rule only where the rule would return the text unchanged."""
    try:
        expected: str | tuple[str, str] = rules.validate_text(text)
    except InvalidInput as exc:
        expected = ("refused", exc.code)
    try:
        actual: str | tuple[str, str] = chat._checked_text(text)
    except InvalidInput as exc:
        actual = ("refused", exc.code)
    assert actual == expected


async def test_the_resend_lookup_probes_the_unique_index_however_large_the_chat_table(
    ctx: ServiceContext, factories: Factories, database_url: str
) -> None:
    """The one-statement batch must not scan every stored message to find resends.

    Seen in the benchmark: with the lookup written as ``(...) IN (SELECT ...)`` the planner,
    working from a young table's statistics, hashed the whole table on every batch, so each
    batch got slower as the chat grew.
    """
    from tests.backends import POSTGRES_URL, require_real_services

    if not POSTGRES_URL:
        require_real_services("PostgreSQL (the one-statement batch is PostgreSQL's)")
    import asyncpg

    from server.db.repositories.chat import _PG_WRITE_BATCH

    patient = await factories.insured()
    consultation = await factories.consultation(patient, await factories.staff("doctor"))
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(
            "INSERT INTO consultation_messages (consultation_id, seq, sender_key, sender_role, client_message_id,"
            " kind, body, created_at) SELECT $1, n, 'insured:1', 'insured', 'old-' || n, 'text', repeat('x', 80), now()"
            " FROM generate_series(1, 20000) AS n",
            consultation.id,
        )
        count = 400
        arguments = [
            [consultation.id] * count,
            [f"insured:{patient.id}"] * count,
            ["insured"] * count,
            ["insured"] * count,
            [patient.id] * count,
            [f"new-{n}" for n in range(count)],
            ["text"] * count,
            ["hello"] * count,
            [None] * count,
            ctx.clock.now(),
        ]
        plan = "\n".join(row[0] for row in await connection.fetch("EXPLAIN " + _PG_WRITE_BATCH, *arguments))
    finally:
        await connection.close()
    assert "Seq Scan on consultation_messages" not in plan, plan
    assert "consultation_id_sender_key" in plan, plan  # the (consultation, sender, client id) unique index
