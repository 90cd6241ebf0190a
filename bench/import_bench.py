"""Insured-list import on PostgreSQL beside a bare COPY of the same rows, in the same run.

    python -m bench.import_bench --database-url postgresql://postgres@127.0.0.1:5432/test --rows 100000

Creates its own database, a corporate client (policyholder with departments, program, policy) through the
back-office services, and a cp1251 ';' CSV of N employees. Then it times:

* the import as an admin runs it (``import_insured_list``: decode, parse, validate every row incl. phone
  numbers with ``phonenumbers``, compare with the records, insert persons and their change history, one
  transaction);
* the same file again (nothing to change: everything read and compared, nothing written);
* the baseline: ``COPY`` of the same rows, already parsed, into ``insured_persons`` (asyncpg
  ``copy_records_to_table``), in the same database, in the same run.

Aim (issue 16): at least 20,000 rows/s and within 5x of the bare COPY.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

DEPARTMENTS = ("Продажи", "ИТ", "Бухгалтерия", "Склад", "Логистика")
LETTERS = "абвгдежзиклмнопрстуфхцчшэюя"


def _name(index: int) -> str:
    letters = ""
    while True:
        index, rest = divmod(index, len(LETTERS))
        letters = LETTERS[rest] + letters
        if index == 0:
            break
    return f"Сотрудников {letters.capitalize()} Петрович"


def employees(count: int) -> list[tuple[str, date, str, str, str]]:
    """N distinct employees: name, birth date, phone (as an office types it), city, department."""
    rows = []
    for i in range(count):
        birth = date(1960, 1, 1) + timedelta(days=i % 15000)
        phone = f"8 (9{16 + i // 10_000_000 % 10}) {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}"
        rows.append((_name(i), birth, phone, "Москва", DEPARTMENTS[i % len(DEPARTMENTS)]))
    return rows


def employees_csv(rows: list[tuple[str, date, str, str, str]]) -> bytes:
    """As a Russian office's Excel saves it: cp1251, ';', CRLF, dd.mm.yyyy."""
    lines = ["ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала"]
    lines += [f"{n};{b:%d.%m.%Y};{p};{c};{d};BENCH;01.02.2026" for n, b, p, c, d in rows]
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


async def run(args: argparse.Namespace) -> None:
    """Create the database, the client and the file; time the import, the re-import and the bare COPY."""
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.cli_records import service_context
    from server.config import Settings, normalize_database_url
    from server.db.migrate import upgrade
    from server.domain.insured_list import normalise_phone
    from server.domain.insured_number import new_insured_numbers
    from server.domain.records import Installment, ProgramTerms
    from server.services.records import insured_lists, reference
    from server.services.records.changes import Actor

    admin_url = normalize_database_url(args.database_url)
    name = f"telemed_import_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(upgrade, url)
        with tempfile.TemporaryDirectory() as workdir:
            settings = Settings(database_url=url, data_dir=Path(workdir), environment="dev").with_dev_secret()
            async with service_context(settings) as ctx:
                actor = Actor("cli:bench")
                holder = await reference.create_policyholder(
                    ctx, actor, kind="corporate", name="Bench LLC", tax_id=None, departments=list(DEPARTMENTS)
                )
                program = await reference.create_program(
                    ctx,
                    actor,
                    code="BENCH",
                    name="Bench",
                    terms=ProgramTerms(["outpatient", "telemedicine"], 2, {"dispatcher": Decimal(30000)}, False, 12),
                )
                policies = [
                    await reference.create_policy(
                        ctx,
                        actor,
                        number=number,
                        policyholder_id=holder.id,
                        program_id=program.id,
                        starts_on=date(2026, 1, 1),
                        ends_on=date(2026, 12, 31),
                        payment_mode="lump_sum",
                        premium=Decimal(1000),
                        installments=[Installment(date(2026, 1, 1), Decimal(1000))],
                    )
                    for number in ("BENCH-IMPORT", "BENCH-COPY")
                ]
                rows = employees(args.rows)
                content = employees_csv(rows)
                print(f"{args.rows:,} employees, {len(content) / 1024 / 1024:.1f} MiB of cp1251 CSV")

                started, cpu_started = time.perf_counter(), time.process_time()
                report = await insured_lists.import_insured_list(
                    ctx, actor, policyholder_id=holder.id, content=content, file_name="bench.csv"
                )
                import_seconds = time.perf_counter() - started
                import_cpu = time.process_time() - cpu_started
                assert report.counts["added"] == args.rows, report.counts

                started, cpu_started = time.perf_counter(), time.process_time()
                again = await insured_lists.import_insured_list(
                    ctx, actor, policyholder_id=holder.id, content=content, file_name="bench.csv"
                )
                again_seconds = time.perf_counter() - started
                again_cpu = time.process_time() - cpu_started
                assert again.counts["unchanged"] == args.rows and not again.applied

        # The baseline: the same rows, already parsed and normalised, straight into the table with COPY.
        now = datetime.now(UTC)
        records = [
            (
                policies[1].id,
                n,
                b,
                normalise_phone(p),
                c,
                d,
                "dispatcher",
                True,
                date(2026, 2, 1),
                now,
                number,
            )
            for (n, b, p, c, d), number in zip(rows, new_insured_numbers(len(rows)), strict=True)
        ]
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            started = time.perf_counter()
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "insured_persons",
                    records=records,
                    columns=[
                        "policy_id",
                        "full_name",
                        "birth_date",
                        "phone",
                        "city",
                        "department",
                        "service_type",
                        "is_active",
                        "starts_on",
                        "created_at",
                        "insured_number",
                    ],
                )
            copy_seconds = time.perf_counter() - started
        finally:
            await connection.close()
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    import_rate = args.rows / import_seconds
    copy_rate = args.rows / copy_seconds
    print(f"\n{'':44} {'seconds':>8} {'rows/s':>10} {'cpu s':>7}")
    print(
        f"{'import (validate all, diff, insert, history)':44} {import_seconds:8.2f} {import_rate:10,.0f} "
        f"{import_cpu:7.2f}"
    )
    print(
        f"{'same file again (nothing to change)':44} {again_seconds:8.2f} {args.rows / again_seconds:10,.0f} "
        f"{again_cpu:7.2f}"
    )
    print(f"{'bare COPY of the same rows (baseline)':44} {copy_seconds:8.2f} {copy_rate:10,.0f}")
    print("(cpu s: this process's CPU time; the rest of the wall time is the database and waiting for a core)")
    print(
        f"\nimport is {copy_rate / import_rate:.1f}x slower than the bare COPY (aim: within 5x; "
        f"aim >= 20,000 rows/s: {'met' if import_rate >= 20_000 else 'not met'})"
    )


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
