"""Chat storage: per-consultation message sequences, duplicate detection, read marks, attachments."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, case, func, literal_column, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import ChatAttachment, Consultation, ConsultationMessage, ReadMark
from server.domain.errors import Unavailable
from server.domain.participation import ConsultationAccess, write_refusal

MESSAGE_COLUMNS = (
    ConsultationMessage.id,
    ConsultationMessage.consultation_id,
    ConsultationMessage.seq,
    ConsultationMessage.sender_key,
    ConsultationMessage.sender_role,
    ConsultationMessage.client_message_id,
    ConsultationMessage.kind,
    ConsultationMessage.body,
    ConsultationMessage.attachment_id,
    ConsultationMessage.created_at,
)


@dataclass(frozen=True, slots=True)
class AttachmentOwner:
    """Which consultation an attachment belongs to and who uploaded it."""

    id: int
    consultation_id: int
    uploader_key: str


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _access(row: Any) -> ConsultationAccess:
    return ConsultationAccess(
        id=row.id,
        status=row.status,
        insured_person_id=row.insured_person_id,
        doctor_id=row.doctor_id,
        last_seq=row.last_seq,
    )


_ACCESS_COLUMNS = (
    Consultation.id,
    Consultation.status,
    Consultation.insured_person_id,
    Consultation.doctor_id,
    Consultation.last_seq,
)


async def get_access(session: AsyncSession, consultation_id: int) -> ConsultationAccess | None:
    """The consultation's participants, status and last sequence, or None if it does not exist."""
    row = (await session.execute(select(*_ACCESS_COLUMNS).where(Consultation.id == consultation_id))).first()
    return _access(row) if row is not None else None


async def lock_consultations_txn(
    session: AsyncSession, consultation_ids: Iterable[int]
) -> dict[int, ConsultationAccess]:
    """Lock the consultations' rows (in id order, so two writers cannot deadlock) and read them.

    On PostgreSQL this is ``SELECT ... FOR UPDATE``: a second process writing to the same
    consultation waits until this transaction commits, so sequences are allocated in commit
    order (checklist G5) and a reader never sees seq N+1 committed before seq N. SQLite's
    ``BEGIN IMMEDIATE`` already serialises writers.

    Returns:
        The rows found, by id (missing ids do not exist).
    """
    ids = sorted(set(consultation_ids))
    stmt = select(*_ACCESS_COLUMNS).where(Consultation.id.in_(ids)).order_by(Consultation.id).with_for_update()
    return {row.id: _access(row) for row in (await session.execute(stmt))}


async def set_last_seqs_txn(session: AsyncSession, last_seqs: dict[int, int]) -> None:
    """Advance ``consultations.last_seq`` for each consultation that got new messages (rows already locked)."""
    if not last_seqs:
        return
    table = cast(Table, Consultation.__table__)
    stmt = update(table).where(table.c.id == bindparam("cid")).values(last_seq=bindparam("new_last_seq"))
    await session.execute(stmt, [{"cid": cid, "new_last_seq": seq} for cid, seq in last_seqs.items()])


async def find_sent_txn(session: AsyncSession, keys: Sequence[tuple[int, str, str]]) -> list[Any]:
    """Messages already stored under these (consultation_id, sender_key, client_message_id) keys.

    PostgreSQL joins against unnested arrays (constant planning cost, one index probe per key);
    SQLite uses a row-value ``IN`` list.
    """
    if not keys:
        return []
    if _is_postgres(session):
        keyset = (
            text(
                "SELECT * FROM unnest(CAST(:cids AS bigint[]), CAST(:senders AS text[]), CAST(:cmids AS text[]))"
                " AS k(cid, sender, cmid)"
            )
            .columns(literal_column("cid", Integer), literal_column("sender", String), literal_column("cmid", String))
            .subquery("k")
        )
        stmt = select(*MESSAGE_COLUMNS).join(
            keyset,
            (ConsultationMessage.consultation_id == keyset.c.cid)
            & (ConsultationMessage.sender_key == keyset.c.sender)
            & (ConsultationMessage.client_message_id == keyset.c.cmid),
        )
        params = {
            "cids": [k[0] for k in keys],
            "senders": [k[1] for k in keys],
            "cmids": [k[2] for k in keys],
        }
        return list(await session.execute(stmt, params))
    rows: list[Any] = []
    for start in range(0, len(keys), 300):  # SQLite caps bound parameters per statement
        chunk = keys[start : start + 300]
        stmt = select(*MESSAGE_COLUMNS).where(
            tuple_(
                ConsultationMessage.consultation_id,
                ConsultationMessage.sender_key,
                ConsultationMessage.client_message_id,
            ).in_(chunk)
        )
        rows.extend(await session.execute(stmt))
    return rows


async def insert_messages_txn(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert message rows in one multi-row statement; returns their ids in the given order."""
    if not rows:
        return []
    table = cast(Table, ConsultationMessage.__table__)
    stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in await session.execute(stmt, rows)]


async def attachment_owners(session: AsyncSession, attachment_ids: Iterable[int]) -> dict[int, AttachmentOwner]:
    """Owner facts of the given attachments, by id."""
    ids = sorted(set(attachment_ids))
    if not ids:
        return {}
    stmt = select(ChatAttachment.id, ChatAttachment.consultation_id, ChatAttachment.uploader_key).where(
        ChatAttachment.id.in_(ids)
    )
    return {
        row.id: AttachmentOwner(row.id, row.consultation_id, row.uploader_key) for row in await session.execute(stmt)
    }


async def messages_after(session: AsyncSession, consultation_id: int, after_seq: int, limit: int) -> list[Any]:
    """Up to ``limit`` messages with ``seq > after_seq``, in sequence order."""
    stmt = (
        select(*MESSAGE_COLUMNS)
        .where(ConsultationMessage.consultation_id == consultation_id, ConsultationMessage.seq > after_seq)
        .order_by(ConsultationMessage.seq)
        .limit(limit)
    )
    return list(await session.execute(stmt))


async def messages_after_many(session: AsyncSession, cursors: dict[int, int], limit_each: int) -> list[Any]:
    """For several consultations at once, up to ``limit_each`` messages after each cursor.

    One round trip on PostgreSQL (a LATERAL join over unnested cursors), so a process that
    hears "consultations 1..200 moved on" catches all of them up with one query.

    Returns:
        Rows ordered by consultation and sequence.
    """
    if not cursors:
        return []
    if _is_postgres(session):
        stmt = text(
            "SELECT m.id, m.consultation_id, m.seq, m.sender_key, m.sender_role, m.client_message_id,"
            " m.kind, m.body, m.attachment_id, m.created_at"
            " FROM unnest(CAST(:cids AS bigint[]), CAST(:afters AS integer[])) AS c(cid, after_seq)"
            " CROSS JOIN LATERAL (SELECT * FROM consultation_messages cm"
            "   WHERE cm.consultation_id = c.cid AND cm.seq > c.after_seq ORDER BY cm.seq LIMIT :lim) AS m"
            " ORDER BY m.consultation_id, m.seq"
        ).columns(*MESSAGE_COLUMNS)
        params = {"cids": list(cursors), "afters": list(cursors.values()), "lim": limit_each}
        return list(await session.execute(stmt, params))
    rows: list[Any] = []
    for consultation_id in sorted(cursors):
        rows.extend(await messages_after(session, consultation_id, cursors[consultation_id], limit_each))
    return rows


async def read_marks(session: AsyncSession, consultation_id: int) -> dict[str, int]:
    """How far each participant has read: ``{"insured:12": 7, "staff:3": 9}``."""
    stmt = select(ReadMark.reader_key, ReadMark.last_read_seq).where(ReadMark.consultation_id == consultation_id)
    return {row.reader_key: row.last_read_seq for row in await session.execute(stmt)}


async def advance_read_mark_txn(
    session: AsyncSession, consultation_id: int, reader_key: str, seq: int, now: datetime
) -> int:
    """Move a reader's mark forward to ``seq`` (never backwards); returns the mark now stored."""
    dialect_insert = postgresql.insert if _is_postgres(session) else sqlite.insert
    inserting = dialect_insert(ReadMark).values(
        consultation_id=consultation_id, reader_key=reader_key, last_read_seq=seq, updated_at=now
    )
    upsert = inserting.on_conflict_do_update(
        index_elements=[ReadMark.consultation_id, ReadMark.reader_key],
        set_={
            "last_read_seq": case(
                (inserting.excluded.last_read_seq > ReadMark.last_read_seq, inserting.excluded.last_read_seq),
                else_=ReadMark.last_read_seq,
            ),
            "updated_at": now,
        },
    ).returning(ReadMark.last_read_seq)
    return int((await session.execute(upsert)).scalar_one())


async def add_attachment_txn(session: AsyncSession, attachment: ChatAttachment) -> ChatAttachment:
    """Store an attachment (its record and its bytes)."""
    session.add(attachment)
    await session.flush()
    return attachment


async def get_attachment(session: AsyncSession, consultation_id: int, attachment_id: int) -> ChatAttachment | None:
    """An attachment of this consultation, or None (also when it belongs to another one)."""
    stmt = select(ChatAttachment).where(
        ChatAttachment.id == attachment_id, ChatAttachment.consultation_id == consultation_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def message_count(session: AsyncSession, consultation_id: int) -> int:
    """How many messages a consultation has (tests and checks)."""
    stmt = select(func.count()).where(ConsultationMessage.consultation_id == consultation_id)
    return int((await session.execute(stmt)).scalar_one())


# -- the chat writer's batch transaction -----------------------------------------------------------


# (consultation_id, sender_key, sender_role, subject_type, subject_id, client_message_id, kind, body, attachment_id)
BatchItem = tuple[int, str, str, str, int, str, str, str, int | None]


@dataclass(frozen=True, slots=True)
class _Writer:
    """The sender of a batch item, as the participation rule sees it."""

    subject_type: str
    subject_id: int
    role: str


class _Row:
    """Attribute access to an asyncpg record, like a SQLAlchemy row."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return self._record[name]


class BatchConflict(Exception):
    """A batch lost a race with another writer; retrying it sees the other's rows."""


class BatchDatabase:
    """Where one chat writer lane sends its batches.

    On PostgreSQL the lane keeps its own asyncpg connection (no pool checkout or pre-ping per
    batch) and drops it after any connection error; elsewhere each batch gets a session.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._engine = session_factory.kw["bind"]
        self._connection: Any = None

    @property
    def is_postgres(self) -> bool:
        """Whether the fast PostgreSQL path is used."""
        return bool(self._engine.dialect.name == "postgresql")

    async def write_batch(self, items: Sequence[BatchItem], now: datetime) -> BatchWrite:
        """Store one chat batch durably and say what it did; the backend decides how.

        PostgreSQL runs the whole batch as one statement on the lane's own connection
        (``_PG_WRITE_BATCH``); any other backend runs the same steps in one transaction on a
        session. Both keep only what :func:`server.domain.participation.write_refusal` allows and
        what refers to the sender's own attachment, skip resends, number the new messages after
        each consultation's ``last_seq`` and advance it.

        Args:
            items: Per message (consultation_id, sender_key, sender_role, subject_type, subject_id,
                client_message_id, kind, body, attachment_id), in the order they were sent.
            now: The stored ``created_at`` of every new message.

        Raises:
            BatchConflict: lost a race with another writer (PostgreSQL); retry.
            Unavailable: the database cannot be reached; nothing was saved.
        """
        if self.is_postgres:
            return await write_batch_pg(self, items, now)
        return await self._write_batch_portable(items, now)

    async def _write_batch_portable(self, items: Sequence[BatchItem], now: datetime) -> BatchWrite:
        keys = [(item[0], item[1], item[5]) for item in items]
        async with self._session_factory() as session:
            try:
                accesses = await lock_consultations_txn(session, {key[0] for key in keys})
                sent = await find_sent_txn(session, keys)
                owners = await attachment_owners(session, [item[8] for item in items if item[8] is not None])
                sent_keys = {(row.consultation_id, row.sender_key, row.client_message_id) for row in sent}
                next_seq = {cid: access.last_seq for cid, access in accesses.items()}
                rows: list[dict[str, Any]] = []
                new_keys: list[tuple[tuple[int, str, str], int]] = []
                taken: set[tuple[int, str, str]] = set()
                for item, key in zip(items, keys, strict=True):
                    cid, sender, role, subject_type, subject_id, _, kind, body, attachment_id = item
                    if key in sent_keys or key in taken:
                        continue
                    if write_refusal(accesses.get(cid), _Writer(subject_type, subject_id, role)) is not None:
                        continue
                    owner = owners.get(attachment_id) if attachment_id is not None else None
                    if attachment_id is not None and (
                        owner is None or owner.consultation_id != cid or owner.uploader_key != sender
                    ):
                        continue
                    taken.add(key)
                    next_seq[cid] += 1
                    new_keys.append((key, next_seq[cid]))
                    rows.append(
                        {
                            "consultation_id": cid,
                            "seq": next_seq[cid],
                            "sender_key": sender,
                            "sender_role": role,
                            "client_message_id": key[2],
                            "kind": kind,
                            "body": body,
                            "attachment_id": attachment_id,
                            "created_at": now,
                        }
                    )
                inserted: dict[tuple[int, str, str], tuple[int, int]] = {}
                if rows:
                    changed = {cid: seq for cid, seq in next_seq.items() if seq != accesses[cid].last_seq}
                    await set_last_seqs_txn(session, changed)
                    ids = await insert_messages_txn(session, rows)
                    inserted = {key: (message_id, seq) for (key, seq), message_id in zip(new_keys, ids, strict=True)}
                await session.commit()
            finally:
                await session.rollback()
        return BatchWrite(accesses, sent, inserted)

    async def _driver(self) -> Any:
        import asyncpg

        if self._connection is not None and self._connection.is_closed():
            self._connection = None
        if self._connection is None:
            url = self._engine.url.set(drivername="postgresql")
            self._connection = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=10)
        return self._connection

    async def close(self) -> None:
        """Close the kept connection (call it from the event loop that opened it)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


# The whole batch in ONE statement (and so one round trip, committed on return): lock the
# consultations, find resends, keep what the sender may write (the same rule as
# domain.participation.write_refusal, checked again in Python on the result), number the new messages
# after each consultation's last_seq, insert them and advance last_seq. Under load every round
# trip waits for a full event-loop turn, so this is what sets the chat's latency and throughput.
# A resend committed by another process while this statement waited for a lock is caught by the
# unique key (BatchConflict) and the batch is retried.
_PG_WRITE_BATCH = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                         $8::text[], $9::bigint[])
        WITH ORDINALITY AS t(cid, sender, role, subject_type, subject_id, cmid, kind, body, att, ord)
),
locked AS (
    SELECT c.id, c.status, c.insured_person_id, c.doctor_id, c.last_seq FROM consultations c
    WHERE c.id = ANY($1::bigint[]) ORDER BY c.id FOR UPDATE
),
existing AS (
    SELECT m.id, m.consultation_id, m.seq, m.sender_key, m.sender_role, m.client_message_id, m.kind, m.body,
           m.attachment_id, m.created_at
    FROM input i CROSS JOIN LATERAL (
        -- LIMIT keeps this a per-message probe of the unique index: flattened into a join, the
        -- planner may hash the whole table (seen: a sequential scan growing with every message).
        SELECT * FROM consultation_messages m
        WHERE m.consultation_id = i.cid AND m.sender_key = i.sender AND m.client_message_id = i.cmid
        LIMIT 1
    ) m
),
allowed AS (
    SELECT i.*, l.last_seq AS base_seq FROM input i
    JOIN locked l ON l.id = i.cid
    LEFT JOIN chat_attachments a ON a.id = i.att
    WHERE ((i.subject_type = 'insured' AND i.subject_id = l.insured_person_id
            AND l.status IN ('queued', 'offered', 'active'))
        OR (i.subject_type = 'staff' AND i.role = 'doctor' AND i.subject_id = l.doctor_id AND l.status = 'active'))
      AND (i.att IS NULL OR (a.consultation_id = i.cid AND a.uploader_key = i.sender))
      AND NOT EXISTS (SELECT 1 FROM existing e
                      WHERE e.consultation_id = i.cid AND e.sender_key = i.sender AND e.client_message_id = i.cmid)
),
fresh AS (
    SELECT DISTINCT ON (cid, sender, cmid) * FROM allowed ORDER BY cid, sender, cmid, ord
),
numbered AS (
    SELECT f.*, f.base_seq + row_number() OVER (PARTITION BY f.cid ORDER BY f.ord) AS seq FROM fresh f
),
inserted AS (
    INSERT INTO consultation_messages
        (consultation_id, seq, sender_key, sender_role, client_message_id, kind, body, attachment_id, created_at)
    SELECT cid, seq, sender, role, cmid, kind, body, att, $10::timestamptz FROM numbered ORDER BY cid, seq
    RETURNING id, consultation_id, seq, sender_key, client_message_id
),
advanced AS (
    UPDATE consultations c SET last_seq = x.top
    FROM (SELECT cid, max(seq) AS top FROM numbered GROUP BY cid) x
    WHERE c.id = x.cid
    RETURNING c.id
)
SELECT 'c' AS row_kind, id, id AS consultation_id, last_seq AS seq, status AS sender_key,
       NULL::text AS sender_role, NULL::text AS client_message_id, NULL::text AS kind, NULL::text AS body,
       doctor_id AS attachment_id, NULL::timestamptz AS created_at, insured_person_id
  FROM locked
UNION ALL
SELECT 'm', id, consultation_id, seq, sender_key, sender_role, client_message_id, kind, body, attachment_id,
       created_at, NULL
  FROM existing
UNION ALL
SELECT 'i', id, consultation_id, seq, sender_key, NULL, client_message_id, NULL, NULL, NULL, NULL, NULL
  FROM inserted
UNION ALL
SELECT 'u', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM advanced
"""


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """What the one-statement batch did."""

    accesses: dict[int, ConsultationAccess]
    sent: list[Any]
    inserted: dict[tuple[int, str, str], tuple[int, int]]  # (cid, sender, cmid) -> (id, seq)


async def write_batch_pg(database: BatchDatabase, items: Sequence[BatchItem], now: datetime) -> BatchWrite:
    """Run ``_PG_WRITE_BATCH`` (autocommit: durable when it returns).

    Args:
        items: Per message (consultation_id, sender_key, sender_role, subject_type, subject_id,
            client_message_id, kind, body, attachment_id), in the order they were sent.

    Raises:
        BatchConflict: lost a race with another writer; retry.
        Unavailable: the database cannot be reached; nothing was saved.
    """
    import asyncpg

    columns = list(zip(*items, strict=True)) if items else [()] * 9
    try:
        driver = await database._driver()
        rows = await driver.fetch(_PG_WRITE_BATCH, *[list(column) for column in columns], now)
    except (asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError, asyncpg.SerializationError) as exc:
        raise BatchConflict(str(exc)) from exc
    except (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        OSError,
        TimeoutError,
    ) as exc:
        await database.close()
        raise Unavailable("the database is not reachable right now; nothing was saved") from exc
    accesses: dict[int, ConsultationAccess] = {}
    sent: list[Any] = []
    inserted: dict[tuple[int, str, str], tuple[int, int]] = {}
    for row in rows:
        kind = row["row_kind"]
        if kind == "c":
            accesses[row["id"]] = ConsultationAccess(
                id=row["id"],
                status=row["sender_key"],
                insured_person_id=row["insured_person_id"],
                doctor_id=row["attachment_id"],
                last_seq=row["seq"],
            )
        elif kind == "m":
            sent.append(_Row(row))
        elif kind == "i":
            inserted[(row["consultation_id"], row["sender_key"], row["client_message_id"])] = (row["id"], row["seq"])
    return BatchWrite(accesses, sent, inserted)
