"""Chat storage: per-consultation message sequences, duplicate detection, read marks, attachments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Integer, String, bindparam, case, func, literal_column, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import ChatAttachment, Consultation, ConsultationMessage, ReadMark
from server.domain.errors import Unavailable

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
class ConsultationAccess:
    """What chat needs to know about a consultation: who takes part, its state, its last sequence."""

    id: int
    status: str
    insured_person_id: int
    doctor_id: int | None
    last_seq: int


@dataclass(frozen=True, slots=True)
class AttachmentOwner:
    """Which consultation an attachment belongs to and who uploaded it."""

    id: int
    consultation_id: int
    uploader_key: str


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


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
    stmt = (
        update(Consultation.__table__)
        .where(Consultation.__table__.c.id == bindparam("cid"))
        .values(last_seq=bindparam("new_last_seq"))
    )
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
    table = ConsultationMessage.__table__
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
    stmt = dialect_insert(ReadMark).values(
        consultation_id=consultation_id, reader_key=reader_key, last_read_seq=seq, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[ReadMark.consultation_id, ReadMark.reader_key],
        set_={
            "last_read_seq": case(
                (stmt.excluded.last_read_seq > ReadMark.last_read_seq, stmt.excluded.last_read_seq),
                else_=ReadMark.last_read_seq,
            ),
            "updated_at": now,
        },
    ).returning(ReadMark.last_read_seq)
    return int((await session.execute(stmt)).scalar_one())


async def add_attachment_txn(session: AsyncSession, attachment: ChatAttachment) -> ChatAttachment:
    """Store an attachment's record (the file is already on disk)."""
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


@dataclass(frozen=True, slots=True)
class BatchState:
    """What a batch needs to decide, read under the consultations' row locks."""

    accesses: dict[int, ConsultationAccess]
    sent: list[Any]
    owners: dict[int, AttachmentOwner]


class BatchStore(Protocol):
    """The statements of one chat batch, inside one transaction (see :class:`BatchDatabase`)."""

    async def lock_and_read(
        self, consultation_ids: Iterable[int], keys: Sequence[tuple[int, str, str]], attachment_ids: Iterable[int]
    ) -> BatchState:
        """Lock the consultations (in id order) and read them, the resent messages and the attachments."""
        ...

    async def save(self, last_seqs: dict[int, int], rows: list[dict[str, Any]]) -> list[int]:
        """Advance ``last_seq`` and insert the rows; their ids in the given order."""
        ...

    async def commit(self) -> None:
        """Commit the batch (durably: one fsync for all its messages)."""
        ...


class _SessionBatchStore:
    """The portable store (SQLite, or any backend) on a SQLAlchemy session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_and_read(
        self, consultation_ids: Iterable[int], keys: Sequence[tuple[int, str, str]], attachment_ids: Iterable[int]
    ) -> BatchState:
        accesses = await lock_consultations_txn(self.session, consultation_ids)
        sent = await find_sent_txn(self.session, keys)
        owners = await attachment_owners(self.session, attachment_ids)
        return BatchState(accesses, sent, owners)

    async def save(self, last_seqs: dict[int, int], rows: list[dict[str, Any]]) -> list[int]:
        await set_last_seqs_txn(self.session, last_seqs)
        return await insert_messages_txn(self.session, rows)

    async def commit(self) -> None:
        await self.session.commit()


# One round trip reads everything a batch decides on. FOR UPDATE re-reads each consultation's latest
# version after waiting for its lock, so last_seq is current; the resend lookup shares the statement's
# snapshot, so a resend committed by another process during the wait is caught by the unique key
# instead, and the batch is retried (BatchConflict).
_PG_LOCK_AND_READ = """
WITH locked AS (
    SELECT id, status, insured_person_id, doctor_id, last_seq FROM consultations
    WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
)
SELECT 'c' AS row_kind, id, id AS consultation_id, last_seq AS seq, status AS sender_key, NULL::text AS sender_role,
       NULL::text AS client_message_id, NULL::text AS kind, NULL::text AS body, doctor_id AS attachment_id,
       NULL::timestamptz AS created_at, insured_person_id
  FROM locked
UNION ALL
SELECT 'm', m.id, m.consultation_id, m.seq, m.sender_key, m.sender_role, m.client_message_id, m.kind, m.body,
       m.attachment_id, m.created_at, NULL
  FROM unnest($2::bigint[], $3::text[], $4::text[]) AS k(cid, sender, cmid)
  JOIN consultation_messages m
    ON m.consultation_id = k.cid AND m.sender_key = k.sender AND m.client_message_id = k.cmid
UNION ALL
SELECT 'a', a.id, a.consultation_id, NULL, a.uploader_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM chat_attachments a WHERE a.id = ANY($5::bigint[])
"""
_PG_SAVE = (
    "WITH advanced AS ("
    "  UPDATE consultations AS c SET last_seq = v.seq"
    "  FROM unnest($1::bigint[], $2::integer[]) AS v(id, seq) WHERE c.id = v.id RETURNING c.id)"
    " INSERT INTO consultation_messages"
    " (consultation_id, seq, sender_key, sender_role, client_message_id, kind, body, attachment_id, created_at)"
    " SELECT * FROM unnest($3::bigint[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[],"
    " $9::text[], $10::bigint[], $11::timestamptz[])"
    " RETURNING id, consultation_id, seq"
)
_SAVE_COLUMNS = (
    "consultation_id",
    "seq",
    "sender_key",
    "sender_role",
    "client_message_id",
    "kind",
    "body",
    "attachment_id",
    "created_at",
)


class _PostgresBatchStore:
    """The PostgreSQL store: asyncpg directly, arrays instead of one parameter per value.

    The chat writer is the hottest write path of the system; going around the ORM here makes a
    batch four short round trips (begin, lock-and-read, save, commit) on a connection the
    writer keeps, which is what lets one process persist thousands of messages per second.
    """

    def __init__(self, connection: Any, transaction: Any) -> None:
        self.connection = connection
        self.transaction = transaction
        self.committed = False

    async def lock_and_read(
        self, consultation_ids: Iterable[int], keys: Sequence[tuple[int, str, str]], attachment_ids: Iterable[int]
    ) -> BatchState:
        rows = await self.connection.fetch(
            _PG_LOCK_AND_READ,
            sorted(set(consultation_ids)),
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            sorted(set(attachment_ids)),
        )
        accesses: dict[int, ConsultationAccess] = {}
        sent: list[Any] = []
        owners: dict[int, AttachmentOwner] = {}
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
            else:
                owners[row["id"]] = AttachmentOwner(row["id"], row["consultation_id"], row["sender_key"])
        return BatchState(accesses, sent, owners)

    async def save(self, last_seqs: dict[int, int], rows: list[dict[str, Any]]) -> list[int]:
        if not rows:
            return []
        columns = [[row[name] for row in rows] for name in _SAVE_COLUMNS]
        inserted = await self.connection.fetch(_PG_SAVE, list(last_seqs), list(last_seqs.values()), *columns)
        ids = {(row["consultation_id"], row["seq"]): row["id"] for row in inserted}
        return [ids[(row["consultation_id"], row["seq"])] for row in rows]

    async def commit(self) -> None:
        await self.transaction.commit()
        self.committed = True


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

    On PostgreSQL the lane keeps its own asyncpg connection, opened in the event loop that uses
    it (the chat writer's own thread, see ``server.services.chat``), and drops it after any
    connection error; elsewhere each batch gets a session of the app's session factory.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._engine = session_factory.kw["bind"]
        self._connection: Any = None

    @property
    def is_postgres(self) -> bool:
        """Whether the fast PostgreSQL path is used."""
        return bool(self._engine.dialect.name == "postgresql")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BatchStore]:
        """One batch transaction, rolled back unless ``commit()`` is called.

        Raises:
            BatchConflict: a concurrent writer made this attempt fail (deadlock, unique key): retry.
            Unavailable: the database cannot be reached; nothing was saved.
        """
        if not self.is_postgres:
            async with self._session_factory() as session:
                try:
                    yield _SessionBatchStore(session)
                finally:
                    await session.rollback()
            return
        import asyncpg

        try:
            driver = await self._driver()
            transaction = driver.transaction()
            await transaction.start()
            store = _PostgresBatchStore(driver, transaction)
            try:
                yield store
            finally:
                if not store.committed and not driver.is_closed():
                    try:
                        await transaction.rollback()
                    except Exception:
                        await self.close()
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
            await self.close()
            raise Unavailable("the database is not reachable right now; nothing was saved") from exc

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
