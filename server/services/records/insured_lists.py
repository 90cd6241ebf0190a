"""Loading an employer's list of insured persons: validate all, compare with the records, apply all or nothing.

A dry run reports who would be added, changed and removed without writing. Applying is one transaction
(the policyholder's row is locked, so two imports of one client do not interleave); re-applying the same
list writes nothing. Removal ends cover on a date (``coverage_end``), and nothing is ever deleted.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    ImportBatch,
)
from server.db.repositories import records as records_repo
from server.domain.errors import Conflict, DomainError, NotFound
from server.domain.insured_list import (
    ExistingPerson,
    ListContext,
    ListDiff,
    ListEntry,
    PolicyOption,
    RowProblem,
    diff_list,
    map_header,
    validate_rows,
)
from server.services.context import ServiceContext
from server.services.coverage_facts import coverage_day
from server.services.records import coverage_end
from server.services.records.changes import Actor, audit_txn, change_row, diff_json, record_many_txn
from server.services.records.files import Table, export_cell, read_table
from server.services.records.identifiers import insured_numbers

PREVIEW_LIMIT: Final = 200
"""How many persons of each kind a report lists by name (counts are always complete)."""
T = TypeVar("T")
Progress = Callable[[Iterable[T]], Iterable[T]]


class ListRejected(DomainError):
    """The list has problems; nothing was written. ``details`` carries the per-row report."""

    code = "list_rejected"
    status = 422


@dataclass(frozen=True, slots=True)
class PersonLine:
    """A person named in a report."""

    row: int | None
    person_id: int | None
    full_name: str
    birth_date: date
    changes: dict[str, list[object]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListReport:
    """What a list import found and did."""

    policyholder_id: int
    file_name: str
    file_kind: str
    encoding: str | None
    delimiter: str | None
    rows: int
    dry_run: bool
    applied: bool
    batch_id: int | None
    removal_date: date
    counts: dict[str, int]
    added: list[PersonLine]
    changed: list[PersonLine]
    removed: list[PersonLine]
    problems: list[dict[str, object]]


async def import_insured_list(
    ctx: ServiceContext,
    actor: Actor,
    *,
    policyholder_id: int,
    content: bytes,
    file_name: str,
    encoding: str | None = None,
    removal_date: date | None = None,
    dry_run: bool = False,
    progress: Progress[Any] | None = None,
) -> ListReport:
    """Validate a list, compare it with the records and (unless ``dry_run``) apply it in one transaction.

    Args:
        ctx: The service context.
        actor: Who loads it.
        policyholder_id: The employer whose list it is.
        content: The file (CSV or XLSX).
        file_name: Recorded with the batch and in every change it makes.
        encoding: Force the CSV encoding (default: BOM, UTF-8, else cp1251).
        removal_date: The day cover ends for persons no longer listed (default today).
        dry_run: Report only.
        progress: Wraps the row iterator (a tqdm bar at the command line).

    Raises:
        NotFound: no such policyholder.
        ListRejected: any problem in any row (422; the report is in ``details``); nothing is written.
        InvalidInput, FileTooLarge, UnsupportedFile: the file cannot be read at all.
    """
    table = read_table(content, file_name=file_name, encoding=encoding)
    digest = hashlib.sha256(content).hexdigest()
    now = ctx.clock.now()
    today = coverage_day(now)
    removal = removal_date or today
    columns, header_problems = map_header(table.header)
    if header_problems:
        raise _rejected(header_problems, table)
    async with ctx.uow() as uow:
        session = uow.session
        holder = await records_repo.lock_policyholder(session, policyholder_id)
        if holder is None:
            raise NotFound("no such policyholder")
        context = await _context_txn(session, holder.id, table, columns, today)
        rows: Iterable[tuple[int, Sequence[str]]] = table.rows
        if progress is not None:
            rows = progress(rows)
        entries, problems = validate_rows(rows, columns, context)
        if problems:
            raise _rejected(problems, table)
        policy_ids = frozenset(option.id for option in context.policies)
        diff = diff_list(entries, await _existing_txn(session, policy_ids), removal_date=removal)
        if diff.problems:
            raise _rejected(diff.problems, table)
        batch_id: int | None = None
        if not dry_run and not diff.is_empty:
            batch_id = await _apply_txn(session, actor, holder.id, file_name, digest, diff, removal, now)
            await uow.commit()
    if batch_id is not None and diff.removed and removal <= today:
        await coverage_end.end_coverage_due(ctx, actor)
    return _report(policyholder_id, file_name, table, len(entries), dry_run, batch_id, removal, diff)


def _rejected(problems: Sequence[RowProblem], table: Table) -> ListRejected:
    shown = [p.as_dict() for p in problems[:1000]]
    return ListRejected(
        f"nothing was imported: {len(problems)} problem(s) in the file",
        details={
            "problems": shown,
            "problem_count": len(problems),
            "file_kind": table.kind,
            "encoding": table.encoding,
            "delimiter": table.delimiter,
        },
    )


async def _context_txn(
    session: AsyncSession, holder_id: int, table: Table, columns: dict[str, int], today: date
) -> ListContext:
    departments = frozenset(await records_repo.department_names(session, holder_id))
    policy_rows = await records_repo.policies_with_programs(session, holder_id)
    clinics = await records_repo.program_clinic_ids(session, sorted({program.id for _, program in policy_rows}))
    options = [
        PolicyOption(
            id=policy.id,
            number=policy.number,
            program_code=program.code,
            starts_on=policy.starts_on,
            ends_on=policy.ends_on,
            registry_offered=program.registry_offered,
            clinic_ids=frozenset(clinics[program.id]),
        )
        for policy, program in policy_rows
    ]
    others: frozenset[str] = frozenset()
    index = columns.get("policy")
    if index is not None:
        own = {o.number for o in options}
        named = {row[index].strip() for _, row in table.rows if index < len(row) and row[index].strip()} - own
        if named:
            others = frozenset(await records_repo.existing_policy_numbers(session, sorted(named)))
    return ListContext(today=today, departments=departments, policies=options, other_policy_numbers=others)


async def _existing_txn(session: AsyncSession, policy_ids: frozenset[int]) -> list[ExistingPerson]:
    return [ExistingPerson(*row) for row in await records_repo.persons_on_policies(session, sorted(policy_ids))]


async def _apply_txn(
    session: AsyncSession,
    actor: Actor,
    holder_id: int,
    file_name: str,
    digest: str,
    diff: ListDiff,
    removal: date,
    now: Any,
) -> int:
    counts = {
        "added": len(diff.added),
        "changed": len(diff.changed),
        "removed": len(diff.removed),
        "unchanged": diff.unchanged,
    }
    batch = ImportBatch(
        kind="insured_list",
        policyholder_id=holder_id,
        file_name=file_name[:300],
        file_sha256=digest,
        actor=actor.key,
        counts=counts,
        created_at=now,
    )
    batch_id = await records_repo.add_import_batch(session, batch)
    changes: list[dict[str, Any]] = []
    if diff.added:
        numbers = await _unique_insured_numbers_txn(session, len(diff.added))
        before = await records_repo.insert_persons(
            session,
            PERSON_COLUMNS,
            [_new_person(entry, now, number) for entry, number in zip(diff.added, numbers, strict=True)],
        )
        await records_repo.record_persons_added(
            session,
            sorted({e.policy_id for e in diff.added}),
            after_id=before,
            occurred_at=now,
            actor=actor.key,
            batch_id=batch_id,
        )
    if diff.changed:
        await records_repo.update_persons(
            session,
            [
                (
                    c.person.id,
                    c.entry.phone,
                    c.entry.city,
                    c.entry.department,
                    c.entry.policy_id,
                    c.entry.starts_on,
                    c.entry.service_type.value,
                )
                for c in diff.changed
            ],
        )
        changes.extend(
            change_row(
                actor,
                now,
                entity_type="insured_person",
                entity_id=c.person.id,
                action="readded" if "removed_on" in c.changes else "changed",
                changes=diff_json(c.changes),
                person_id=c.person.id,
                batch_id=batch_id,
            )
            for c in diff.changed
        )
    if diff.removed:
        await records_repo.set_removal_date(session, [p.id for p in diff.removed], removal)
    changes.extend(
        change_row(
            actor,
            now,
            entity_type="insured_person",
            entity_id=p.id,
            action="removed",
            changes={"removed_on": [None, removal.isoformat()]},
            person_id=p.id,
            batch_id=batch_id,
        )
        for p in diff.removed
    )
    await record_many_txn(session, changes)
    await audit_txn(
        session, actor, now, action="insured_list.import", resource_type="import_batch", resource_id=batch_id
    )
    return batch_id


async def _unique_insured_numbers_txn(session: AsyncSession, count: int) -> list[str]:
    """``count`` insured numbers nobody has, drawing again the rare one that is taken (or drawn twice).

    Random 12-digit numbers collide now and then across a large insurer; one failed unique index would
    otherwise abort a whole list. A few rounds settle it.
    """
    numbers = insured_numbers(count)
    for _ in range(5):
        taken = await records_repo.taken_insured_numbers(session, numbers)
        seen: set[str] = set()
        clashes: list[int] = []
        for index, number in enumerate(numbers):
            if number in taken or number in seen:
                clashes.append(index)
            seen.add(number)
        if not clashes:
            return numbers
        for index, number in zip(clashes, insured_numbers(len(clashes)), strict=True):
            numbers[index] = number
    raise Conflict("could not draw unique insured numbers; try again", code="insured_number_clash")


PERSON_COLUMNS: Final = (
    "policy_id",
    "full_name",
    "birth_date",
    "phone",
    "city",
    "department",
    "service_type",
    "attached_clinic_id",
    "is_active",
    "starts_on",
    "removed_on",
    "created_at",
    "insured_number",
)


def _new_person(entry: ListEntry, now: Any, number: str) -> tuple[Any, ...]:
    """A new person's row in ``PERSON_COLUMNS`` order (a tuple: 100,000 of them go to ``COPY``)."""
    return (
        entry.policy_id,
        entry.full_name,
        entry.birth_date,
        entry.phone,
        entry.city,
        entry.department,
        entry.service_type.value,
        entry.clinic_id,
        True,
        entry.starts_on,
        None,
        now,
        number,
    )


def _report(
    holder_id: int,
    file_name: str,
    table: Table,
    rows: int,
    dry_run: bool,
    batch_id: int | None,
    removal: date,
    diff: ListDiff,
) -> ListReport:
    return ListReport(
        policyholder_id=holder_id,
        file_name=file_name,
        file_kind=table.kind,
        encoding=table.encoding,
        delimiter=table.delimiter,
        rows=rows,
        dry_run=dry_run,
        applied=batch_id is not None,
        batch_id=batch_id,
        removal_date=removal,
        counts={
            "added": len(diff.added),
            "changed": len(diff.changed),
            "removed": len(diff.removed),
            "unchanged": diff.unchanged,
        },
        added=[PersonLine(e.row, None, e.full_name, e.birth_date) for e in diff.added[:PREVIEW_LIMIT]],
        changed=[
            PersonLine(c.entry.row, c.person.id, c.person.full_name, c.person.birth_date, diff_json(c.changes))
            for c in diff.changed[:PREVIEW_LIMIT]
        ],
        removed=[PersonLine(None, p.id, p.full_name, p.birth_date) for p in diff.removed[:PREVIEW_LIMIT]],
        problems=[],
    )


async def export_insured_csv(ctx: ServiceContext, policyholder_id: int) -> bytes:
    """The policyholder's persons (removed ones too, with their date) as CSV, UTF-8 with BOM, ``;``.

    Every cell goes through ``export_cell``: text that came in as ``=HYPERLINK(...)`` goes out as text.

    Raises:
        NotFound: no such policyholder.
    """
    async with ctx.uow() as uow:
        if not await records_repo.policyholder_exists(uow.session, policyholder_id):
            raise NotFound("no such policyholder")
        rows = await records_repo.persons_for_export(uow.session, policyholder_id)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for person, number in rows:
            values = (
                person.full_name,
                _ru(person.birth_date),
                person.phone,
                person.city,
                person.department or "",
                number,
                person.service_type,
                _ru(person.starts_on),
                _ru(person.removed_on),
            )
            writer.writerow([export_cell(v) for v in values])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


EXPORT_COLUMNS: Final = (
    "full_name",
    "birth_date",
    "phone",
    "city",
    "department",
    "policy",
    "service_type",
    "starts_on",
    "removed_on",
)


def _ru(day: date | None) -> str:
    return day.strftime("%d.%m.%Y") if day is not None else ""
