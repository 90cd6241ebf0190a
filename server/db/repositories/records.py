"""Bulk writes of the back office: many rows in one statement, and ``COPY`` on PostgreSQL.

A list of 100,000 employees is written as ``COPY`` (asyncpg's binary ``copy_records_to_table``) inside the
import's own transaction, with ids taken from the table's sequence first so that each person's change
history can name them. SQLite (the embedded default) gets multi-row ``INSERT``s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.base import UTCDateTime
from server.db.models import (
    Consultation,
    ImportBatch,
    ImportedPaymentReference,
    InsuredPerson,
    Policy,
    Policyholder,
    PolicyholderDepartment,
    Program,
    ProgramClinic,
    RecordChange,
)

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


# --- Reads and small writes of the insured-list import, the coverage end and the change history ---------------


async def lock_policyholder(session: AsyncSession, policyholder_id: int) -> Policyholder | None:
    """The policyholder, its row locked to the end of the transaction (two imports of one client queue)."""
    return await session.get(Policyholder, policyholder_id, with_for_update=True)


async def policyholder_exists(session: AsyncSession, policyholder_id: int) -> bool:
    """Whether there is such a policyholder."""
    return await session.get(Policyholder, policyholder_id) is not None


async def department_names(session: AsyncSession, policyholder_id: int) -> list[str]:
    """The policyholder's departments, which an insured list must name."""
    stmt = select(PolicyholderDepartment.name).where(PolicyholderDepartment.policyholder_id == policyholder_id)
    return list((await session.scalars(stmt)).all())


async def policies_with_programs(session: AsyncSession, policyholder_id: int) -> list[tuple[Policy, Program]]:
    """The policyholder's policies, each with its program."""
    stmt = (
        select(Policy, Program)
        .join(Program, Program.id == Policy.program_id)
        .where(Policy.policyholder_id == policyholder_id)
    )
    return [(policy, program) for policy, program in (await session.execute(stmt)).all()]


async def program_clinic_ids(session: AsyncSession, program_ids: Sequence[int]) -> dict[int, set[int]]:
    """Each program's clinic list (every given program is a key, possibly with no clinics)."""
    clinics: dict[int, set[int]] = {program_id: set() for program_id in program_ids}
    if program_ids:
        stmt = select(ProgramClinic.program_id, ProgramClinic.clinic_id).where(
            ProgramClinic.program_id.in_(list(program_ids))
        )
        for program_id, clinic_id in (await session.execute(stmt)).all():
            clinics[program_id].add(clinic_id)
    return clinics


async def existing_policy_numbers(session: AsyncSession, numbers: Sequence[str]) -> list[str]:
    """Which of these policy numbers exist (of any policyholder)."""
    if not numbers:
        return []
    return list((await session.scalars(select(Policy.number).where(Policy.number.in_(list(numbers))))).all())


async def persons_for_export(session: AsyncSession, policyholder_id: int) -> list[tuple[InsuredPerson, str]]:
    """The policyholder's persons (removed ones too) with their policy number, by name."""
    stmt = (
        select(InsuredPerson, Policy.number)
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .where(Policy.policyholder_id == policyholder_id)
        .order_by(InsuredPerson.full_name, InsuredPerson.id)
    )
    return [(person, number) for person, number in (await session.execute(stmt)).all()]


async def add_import_batch(session: AsyncSession, batch: ImportBatch) -> int:
    """Write an import batch and return its id (the changes it makes name it)."""
    session.add(batch)
    await session.flush()
    return batch.id


async def due_removals(session: AsyncSession, day: date) -> list[int]:
    """Persons whose removal date has come by ``day`` and who still have cover."""
    stmt = select(InsuredPerson.id).where(
        InsuredPerson.removed_on.is_not(None),
        InsuredPerson.removed_on <= day,
        InsuredPerson.is_active.is_(True),
    )
    return list((await session.scalars(stmt)).all())


async def claim_coverage_end(session: AsyncSession, person_id: int, now: datetime) -> tuple[str, date | None] | None:
    """End one person's cover if it is still on: ``(phone, removed_on)``, or None when another run got there first.

    The conditional ``UPDATE`` is the claim: of several processes running the coverage end at once,
    exactly one sees the row change.
    """
    stmt = (
        update(InsuredPerson)
        .where(InsuredPerson.id == person_id, InsuredPerson.is_active.is_(True))
        .values(is_active=False, tokens_valid_after=now)
        .returning(InsuredPerson.phone, InsuredPerson.removed_on)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def open_consultation_ids(session: AsyncSession, person_id: int, statuses: Sequence[str]) -> list[int]:
    """The person's consultations in one of these statuses."""
    stmt = select(Consultation.id).where(
        Consultation.insured_person_id == person_id, Consultation.status.in_(list(statuses))
    )
    return list((await session.scalars(stmt)).all())


def add_change(session: AsyncSession, change: RecordChange) -> None:
    """Append one change-history row (written with the caller's transaction)."""
    session.add(change)


async def person_changes(session: AsyncSession, person_id: int) -> list[tuple[RecordChange, str | None]]:
    """Every change to an insured person, oldest first, with the name of the file it came from."""
    stmt = (
        select(RecordChange, ImportBatch.file_name)
        .outerjoin(ImportBatch, ImportBatch.id == RecordChange.import_batch_id)
        .where(RecordChange.insured_person_id == person_id)
        .order_by(RecordChange.id)
    )
    return [(change, file_name) for change, file_name in (await session.execute(stmt)).all()]


async def staff_changes(session: AsyncSession, account_id: int) -> list[RecordChange]:
    """Every change to a staff account, oldest first."""
    stmt = (
        select(RecordChange)
        .where(RecordChange.entity_type == "staff_account", RecordChange.entity_id == account_id)
        .order_by(RecordChange.id)
    )
    return list((await session.scalars(stmt)).all())


async def policies_by_number(session: AsyncSession, numbers: Sequence[str]) -> dict[str, Policy]:
    """The policies with these numbers, by number (a payments file names them)."""
    if not numbers:
        return {}
    stmt = select(Policy).where(Policy.number.in_(list(numbers)))
    return {policy.number: policy for policy in (await session.scalars(stmt)).all()}


async def loaded_payment_references(session: AsyncSession, references: Sequence[str]) -> set[str]:
    """Which of these payment references were loaded before (a file loaded twice bundles once)."""
    if not references:
        return set()
    stmt = select(ImportedPaymentReference.reference).where(ImportedPaymentReference.reference.in_(list(references)))
    return set((await session.scalars(stmt)).all())


def add_payment_references(session: AsyncSession, batch_id: int, bundled: Sequence[tuple[str, int]]) -> None:
    """Remember each bundled payment's reference, with the batch it came in."""
    session.add_all(
        [ImportedPaymentReference(reference=ref, payment_id=pid, import_batch_id=batch_id) for ref, pid in bundled]
    )
