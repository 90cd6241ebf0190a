"""Bulk writes of the back office: many rows in one statement, and ``COPY`` on PostgreSQL.

A list of 100,000 employees is written as ``COPY`` (asyncpg's binary ``copy_records_to_table``) inside the
import's own transaction, with ids taken from the table's sequence first so that each person's change
history can name them. SQLite (the embedded default) gets multi-row ``INSERT``s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.base import UTCDateTime
from server.db.models import InsuredPerson, RecordChange

CHUNK: Final = 5000


async def _driver(session: AsyncSession) -> Any | None:
    """The asyncpg connection under the session's transaction, or None on another backend."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return None
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def taken_insured_numbers(session: AsyncSession, numbers: Sequence[str]) -> set[str]:
    """Which of these insured numbers some person already has (checked before a bulk insert)."""
    taken: set[str] = set()
    for start in range(0, len(numbers), CHUNK):
        chunk = list(numbers[start : start + CHUNK])
        taken.update(
            await session.scalars(select(InsuredPerson.insured_number).where(InsuredPerson.insured_number.in_(chunk)))
        )
    return taken


async def insert_persons(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert insured persons (all rows have the same keys): ``COPY`` on PostgreSQL, multi-row INSERTs elsewhere.

    Returns:
        The highest person id before the insert: the new persons of a policy are those above it.
    """
    before = int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM insured_persons")) or 0)
    if not rows:
        return before
    driver = await _driver(session)
    if driver is None:
        table = cast(Table, InsuredPerson.__table__)
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(table), list(rows[start : start + CHUNK]))
        return before
    columns = list(rows[0])
    await driver.copy_records_to_table(
        "insured_persons", records=[tuple(row.values()) for row in rows], columns=columns
    )
    return before


CHANGE_COLUMNS: Final = (
    "occurred_at",
    "actor",
    "entity_type",
    "entity_id",
    "insured_person_id",
    "action",
    "changes",
    "import_batch_id",
)


async def insert_changes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append change-history rows (``record_changes``)."""
    if not rows:
        return
    driver = await _driver(session)
    if driver is None:
        table = cast(Table, RecordChange.__table__)
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(table), list(rows[start : start + CHUNK]))
        return
    await driver.copy_records_to_table(
        "record_changes",
        records=[
            tuple(json.dumps(row[c], ensure_ascii=False) if c == "changes" else row[c] for c in CHANGE_COLUMNS)
            for row in rows
        ],
        columns=list(CHANGE_COLUMNS),
    )


ADDED_FIELDS: Final = (
    "full_name",
    "birth_date",
    "phone",
    "city",
    "department",
    "policy_id",
    "service_type",
    "starts_on",
)


async def record_persons_added(
    session: AsyncSession, policy_ids: Sequence[int], *, after_id: int, occurred_at: Any, actor: str, batch_id: int
) -> None:
    """One ``added`` change per person just inserted on these policies (ids above ``after_id``), built by the database.

    Building 100,000 JSON documents in Python would cost more than loading the persons; the database reads
    the rows just written and writes their history in one statement. The caller holds the policyholder's
    row lock, so nobody else adds persons to these policies meanwhile.
    """
    if not policy_ids:
        return
    postgres = (await session.connection()).dialect.name == "postgresql"
    build, pair = ("json_build_object", "json_build_array") if postgres else ("json_object", "json_array")
    # Column names come from this module's constant, never from input.
    fields = ", ".join(f"'{name}', {pair}(NULL, {name})" for name in ADDED_FIELDS)
    listed = ", ".join(f":p{i}" for i in range(len(policy_ids)))
    statement = text(
        "INSERT INTO record_changes (occurred_at, actor, entity_type, entity_id, insured_person_id, action, "  # noqa: S608
        f"changes, import_batch_id) SELECT :occurred_at, :actor, 'insured_person', id, id, 'added', "
        f"{build}({fields}), :batch_id FROM insured_persons WHERE policy_id IN ({listed}) "
        "AND id > :after_id ORDER BY id"
    ).bindparams(bindparam("occurred_at", type_=UTCDateTime()))
    await session.execute(
        statement,
        {
            "occurred_at": occurred_at,
            "after_id": after_id,
            "actor": actor,
            "batch_id": batch_id,
            **{f"p{i}": v for i, v in enumerate(policy_ids)},
        },
    )
