"""Bulk writes of the back office: many rows in one statement, and ``COPY`` on PostgreSQL.

A list of 100,000 employees is written as ``COPY`` (asyncpg's binary ``copy_records_to_table``) inside the
import's own transaction, with ids taken from the table's sequence first so that each person's change
history can name them. SQLite (the embedded default) gets multi-row ``INSERT``s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
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
    """Which of these insured numbers some person already has (checked before a bulk insert).

    One statement with an array parameter on PostgreSQL (the unique index answers each probe); chunks
    of ``IN`` lists elsewhere.
    """
    driver = await _driver(session)
    if driver is not None:
        rows = await driver.fetch(
            "SELECT insured_number FROM insured_persons WHERE insured_number = ANY($1::varchar[])", list(numbers)
        )
        return {row[0] for row in rows}
    taken: set[str] = set()
    for start in range(0, len(numbers), CHUNK):
        chunk = list(numbers[start : start + CHUNK])
        taken.update(
            await session.scalars(select(InsuredPerson.insured_number).where(InsuredPerson.insured_number.in_(chunk)))
        )
    return taken


async def persons_on_policies(session: AsyncSession, policy_ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Every person on these policies (removed ones too) as ``(id, full_name, birth_date, phone, city,
    department, policy_id, service_type, starts_on, removed_on)``: what a list import compares with.

    Plain tuples straight from the driver on PostgreSQL: 100,000 ORM rows would cost more than the query.
    """
    if not policy_ids:
        return []
    driver = await _driver(session)
    if driver is not None:
        return [
            tuple(row)
            for row in await driver.fetch(
                f"SELECT {', '.join(EXISTING_COLUMNS)} FROM insured_persons WHERE policy_id = ANY($1::bigint[])",  # noqa: S608
                list(policy_ids),
            )
        ]
    person = InsuredPerson
    rows = await session.execute(
        select(*(getattr(person, name) for name in EXISTING_COLUMNS)).where(person.policy_id.in_(policy_ids))
    )
    return [tuple(row) for row in rows.all()]


EXISTING_COLUMNS: Final = (
    "id",
    "full_name",
    "birth_date",
    "phone",
    "city",
    "department",
    "policy_id",
    "service_type",
    "starts_on",
    "removed_on",
)


async def insert_persons(session: AsyncSession, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert insured persons (tuples in ``columns`` order): ``COPY`` on PostgreSQL, multi-row INSERTs elsewhere.

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
            await session.execute(
                insert(table), [dict(zip(columns, row, strict=True)) for row in rows[start : start + CHUNK]]
            )
        return before
    await driver.copy_records_to_table("insured_persons", records=rows, columns=list(columns))
    return before


CHANGED_COLUMNS: Final = ("id", "phone", "city", "department", "policy_id", "starts_on", "service_type")


async def update_persons(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    """Apply a new list version's changes (tuples in ``CHANGED_COLUMNS`` order); a re-listed person is active again.

    PostgreSQL: the rows go by ``COPY`` into a temporary table dropped at commit and one ``UPDATE ... FROM``
    applies them all; elsewhere an executemany ``UPDATE``.
    """
    if not rows:
        return
    driver = await _driver(session)
    if driver is None:
        table = cast(Table, InsuredPerson.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                **{name: bindparam(f"b_{name}") for name in CHANGED_COLUMNS[1:]},
                removed_on=None,
                is_active=True,
            )
        )
        for start in range(0, len(rows), CHUNK):
            await session.execute(
                statement,
                [
                    {f"b_{name}": value for name, value in zip(CHANGED_COLUMNS, row, strict=True)}
                    for row in rows[start : start + CHUNK]
                ],
            )
        return
    await driver.execute(
        "CREATE TEMPORARY TABLE import_person_changes (id bigint PRIMARY KEY, phone varchar(40), city varchar(100), "
        "department varchar(200), policy_id bigint, starts_on date, service_type varchar(16)) ON COMMIT DROP"
    )
    await driver.copy_records_to_table("import_person_changes", records=rows, columns=list(CHANGED_COLUMNS))
    await driver.execute(
        "UPDATE insured_persons AS p SET phone = c.phone, city = c.city, department = c.department, "
        "policy_id = c.policy_id, starts_on = c.starts_on, service_type = c.service_type, removed_on = NULL, "
        "is_active = true FROM import_person_changes AS c WHERE p.id = c.id"
    )
    await driver.execute("DROP TABLE import_person_changes")


async def set_removal_date(session: AsyncSession, person_ids: Sequence[int], removal: date) -> None:
    """Mark persons no longer listed as removed on ``removal`` (cover ends then; nothing is deleted)."""
    table = cast(Table, InsuredPerson.__table__)
    for start in range(0, len(person_ids), CHUNK):
        await session.execute(
            update(table).where(table.c.id.in_(list(person_ids[start : start + CHUNK]))).values(removed_on=removal)
        )


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
