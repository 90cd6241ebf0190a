"""HR dashboard on PostgreSQL with 100,000 insured persons and 2,000,000 consultations (issue 15).

Prints, in one run, the response time of ``GET /api/hr/usage`` and ``GET /api/hr/health`` of the real
server (``telemed serve``) next to two baselines computing the same month's figures on every request:
the same GROUP BY queries without a snapshot (``month_counts``), and a naive version that fetches the
month's rows and counts them in Python. Also the cold first request of a month (aggregate queries plus
the suppression's linear programs, then frozen).

    python -m bench.hr_bench --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --persons 100000 --consultations 2000000 --requests 300

Creates its own database (dropped at the end) and bulk-loads it with COPY.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from bench.approval_bench import _copy, _free_port, _plain_dsn, _start, _stop, _wait_ready, percentile
from server.security.passwords import hash_password

COMPANIES = 10
DEPARTMENTS = (
    "Sales",
    "Engineering",
    "Logistics",
    "Finance",
    "Legal",
    "HR",
    "Customer Care",
    "Warehouse",
    "Procurement",
    "IT",
    "Marketing",
    "Security",
)
CHANNELS = ("text", "audio", "video")
SPECIALTIES = ("general_practice",) * 5 + ("cardiology", "neurology", "dermatology", "gastroenterology")
CODES = ("J06.9", "J20.9", "M54.5", "K29.7", "I10", "F41.1", "R51", "N39.0", "L20.9", "E11.9", "H10.9", "A09.0")
PASSWORD = "bench-password-hr"
YEAR = 2026


async def _fill_defaults(connection: asyncpg.Connection, table: str, given: dict[str, Any]) -> dict[str, Any]:
    """Values for NOT NULL columns without a default that this bench does not set (the schema grows)."""
    rows = await connection.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        table,
    )
    filler: dict[str, Any] = {}
    for row in rows:
        name, kind = row["column_name"], row["data_type"]
        if name in given or name == "id":
            continue
        if kind == "boolean":
            filler[name] = False
        elif kind in ("integer", "bigint", "smallint", "numeric"):
            filler[name] = 0
        elif kind == "json" or kind == "jsonb":
            filler[name] = "[]"
        elif kind.startswith("timestamp"):
            filler[name] = datetime(YEAR, 1, 1, tzinfo=UTC)
        elif kind == "date":
            filler[name] = date(YEAR, 1, 1)
        else:
            filler[name] = ""
    return filler


async def _insert(connection: asyncpg.Connection, table: str, values: dict[str, Any]) -> int:
    """One row, with whatever NOT NULL columns later migrations added filled in; returns its id."""
    row = {**values, **await _fill_defaults(connection, table, values)}
    names = ", ".join(row)
    marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    return int(await connection.fetchval(f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING id", *row.values()))


async def bulk_load(url: str, persons: int, consultations: int) -> list[str]:
    """Companies, their staff and a year of consultations; returns the HR usernames."""
    rng = random.Random(20261201)
    now = datetime.now(UTC)
    connection = await asyncpg.connect(_plain_dsn(url))
    try:
        await _insert(
            connection,
            "programs",
            {
                "id": 1,
                "code": "HRB",
                "name": "Bench program",
                "components": '["outpatient", "telemedicine"]',
                "price_category": 2,
                "tariff_dispatcher": 40000,
                "tariff_registry": 52000,
                "registry_offered": True,
                "telemedicine_allowance_per_year": 12,
            },
        )
        password_hash = hash_password(PASSWORD)
        usernames = []
        for company in range(1, COMPANIES + 1):
            await _insert(
                connection,
                "policyholders",
                {
                    "id": company,
                    "kind": "corporate",
                    "name": f"Company {company}",
                    "account_manager": "Bench Manager, +7 495 000-00-00",
                    "created_at": now,
                },
            )
            await _insert(
                connection,
                "policies",
                {
                    "id": company,
                    "number": f"HRB-{company:03d}",
                    "policyholder_id": company,
                    "program_id": 1,
                    "starts_on": date(YEAR, 1, 1),
                    "ends_on": date(YEAR, 12, 31),
                    "payment_mode": "lump_sum",
                    "premium": 400_000_000,
                    "created_at": now,
                },
            )
            username = f"hr.company{company}"
            usernames.append(username)
            await _insert(
                connection,
                "staff_accounts",
                {
                    "username": username,
                    "password_hash": password_hash,
                    "role": "hr",
                    "full_name": username,
                    "specialties": "[]",
                    "hr_policyholder_id": company,
                    "is_active": True,
                    "created_at": now,
                },
            )
        doctor_id = await _insert(
            connection,
            "staff_accounts",
            {
                "username": "bench.doctor",
                "password_hash": password_hash,
                "role": "doctor",
                "full_name": "Dr Bench",
                "specialties": '["general_practice"]',
                "is_active": True,
                "created_at": now,
            },
        )
        person_cols = {
            "id": 0,
            "policy_id": 0,
            "insured_number": "",
            "full_name": "",
            "birth_date": None,
            "phone": "",
            "city": "Moscow",
            "department": "",
            "service_type": "dispatcher",
            "is_active": True,
            "created_at": now,
        }
        extra = await _fill_defaults(connection, "insured_persons", person_cols)
        person_company: list[tuple[int, int, str]] = []

        def persons_rows() -> Iterator[tuple[Any, ...]]:
            for pid in range(1, persons + 1):
                company = (pid - 1) % COMPANIES + 1
                department = rng.choice(DEPARTMENTS)
                person_company.append((pid, company, department))
                birth = date(1958, 1, 1) + timedelta(days=rng.randrange(45 * 365))
                values = {
                    **person_cols,
                    **extra,
                    "id": pid,
                    "policy_id": company,
                    "insured_number": f"{pid:012d}",
                    "full_name": f"Person {pid}",
                    "birth_date": birth,
                    "phone": f"+7900{pid:07d}",
                    "department": department,
                    "service_type": "registry" if pid % 9 == 0 else "dispatcher",
                }
                yield tuple(values.values())

        columns = list({**person_cols, **extra})
        await _copy(connection, "insured_persons", columns, persons_rows(), persons, desc="insured persons")
        consult_cols = {
            "insured_person_id": 0,
            "policyholder_id": 0,
            "department": "",
            "channel": "",
            "specialty": "",
            "complaints": "bench",
            "status": "completed",
            "doctor_id": doctor_id,
            "requested_at": None,
            "accepted_at": None,
            "completed_at": None,
            "icd10_code": "",
            "outcome": "advice",
            "notes": "bench",
            "last_seq": 0,
            "skipped_doctor_ids": "[]",
            "referral_services": "[]",
        }
        extra = await _fill_defaults(connection, "consultations", consult_cols)
        start = datetime(YEAR, 1, 1, tzinfo=UTC)
        span = (datetime(YEAR, 11, 30, tzinfo=UTC) - start).total_seconds()

        def consultation_rows() -> Iterator[tuple[Any, ...]]:
            for _ in range(consultations):
                pid, company, department = person_company[rng.randrange(len(person_company))]
                accepted = start + timedelta(seconds=rng.random() * span)
                values = {
                    **consult_cols,
                    **extra,
                    "insured_person_id": pid,
                    "policyholder_id": company,
                    "department": department,
                    "channel": rng.choice(CHANNELS),
                    "specialty": rng.choice(SPECIALTIES),
                    "requested_at": accepted - timedelta(seconds=rng.randrange(30, 1800)),
                    "accepted_at": accepted,
                    "completed_at": accepted + timedelta(minutes=15),
                    "icd10_code": rng.choice(CODES),
                    "outcome": "referral" if rng.random() < 0.15 else "advice",
                }
                yield tuple(values.values())

        columns = list({**consult_cols, **extra})
        await _copy(connection, "consultations", columns, consultation_rows(), consultations, desc="consultations")
        await connection.execute("ANALYZE")
        for table in ("insured_persons", "consultations", "staff_accounts", "policyholders", "policies"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        return usernames
    finally:
        await connection.close()


async def naive_month(pool: asyncpg.Pool, company: int, month: int) -> dict[str, Counter[str]]:
    """The same month's breakdowns the naive way: fetch every row, count in Python."""
    first = datetime(YEAR, month, 1, tzinfo=UTC) - timedelta(hours=3)
    last = datetime(YEAR + (month == 12), month % 12 + 1, 1, tzinfo=UTC) - timedelta(hours=3)
    rows = await pool.fetch(
        "SELECT c.channel, c.specialty, c.department, c.icd10_code, p.birth_date, c.insured_person_id "
        "FROM consultations c JOIN insured_persons p ON p.id = c.insured_person_id "
        "WHERE c.policyholder_id = $1 AND c.accepted_at >= $2 AND c.accepted_at < $3",
        company,
        first,
        last,
    )
    tables: dict[str, Counter[str]] = {name: Counter() for name in ("channel", "specialty", "department", "chapter")}
    for row in rows:
        tables["channel"][row["channel"]] += 1
        tables["specialty"][row["specialty"]] += 1
        tables["department"][row["department"]] += 1
        tables["chapter"][row["icd10_code"][:1]] += 1
    return tables


async def timed_get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {await response.text()}")
    return time.perf_counter() - started


def row(label: str, timings: list[float]) -> str:
    return (
        f"{label:52}{len(timings):6d}{percentile(timings, 0.5) * 1000:10.1f}"
        f"{percentile(timings, 0.95) * 1000:10.1f}{max(timings) * 1000:10.1f}"
    )


async def bench(args: argparse.Namespace) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from server.config import normalize_database_url
    from server.db.migrate import upgrade
    from server.db.repositories.hr import month_counts
    from server.domain.hr_reports import Month

    admin_url = normalize_database_url(args.database_url)
    name = f"telemed_hrbench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    process = None
    try:
        await asyncio.to_thread(upgrade, url)
        started = time.perf_counter()
        usernames = await bulk_load(url, args.persons, args.consultations)
        print(
            f"\nloaded {args.persons:,} persons, {args.consultations:,} consultations in "
            f"{time.perf_counter() - started:.0f} s (COPY)"
        )
        months = list(range(1, 11))  # January..October 2026 are closed on 2026-12-01
        with tempfile.TemporaryDirectory() as workdir:
            port = _free_port()
            env = {
                "TELEMED_DATABASE_URL": url,
                "TELEMED_DATA_DIR": workdir,
                "TELEMED_LOG_LEVEL": "WARNING",
                "TELEMED_JWT_SECRET": "bench-secret-" + "h" * 40,
                "TELEMED_ENVIRONMENT": "dev",
                "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
                "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
                "TELEMED_LOGIN_STARTS_PER_ADDRESS_PER_HOUR": "100000",
                # The first request of each month is measured cold: no background freezing here.
                "TELEMED_HR_FREEZE_INTERVAL_SECONDS": "0",
            }
            process = _start(["-m", "server.cli", "serve", "--skip-migrations", "--port", str(port)], env)
            base = f"http://127.0.0.1:{port}"
            await _wait_ready(base, process)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session:
                async with session.post(
                    base + "/api/auth/login", json={"username": usernames[0], "password": PASSWORD}
                ) as response:
                    token = (await response.json())["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                cold = []
                for m in months:
                    cold.append(await timed_get(session, f"{base}/api/hr/usage?period={YEAR}-{m:02d}", headers))
                    print(f"  first request of {YEAR}-{m:02d}: {cold[-1] * 1000:.0f} ms", flush=True)
                rng = random.Random(7)
                usage = [
                    await timed_get(session, f"{base}/api/hr/usage?period={YEAR}-{rng.choice(months):02d}", headers)
                    for _ in range(args.requests)
                ]
                health = [
                    await timed_get(session, f"{base}/api/hr/health?period={YEAR}-{rng.choice(months):02d}", headers)
                    for _ in range(args.requests // 3)
                ]
        engine = create_async_engine(url)
        factory = async_sessionmaker(engine, expire_on_commit=False)
        grouped = []
        for _ in range(max(10, args.requests // 10)):
            month = rng.choice(months)
            started = time.perf_counter()
            async with factory() as db:
                await month_counts(db, 1, Month(YEAR, month))
            grouped.append(time.perf_counter() - started)
        await engine.dispose()
        pool = await asyncpg.create_pool(_plain_dsn(url), min_size=1, max_size=2)
        naive = []
        for _ in range(max(10, args.requests // 10)):
            started = time.perf_counter()
            await naive_month(pool, 1, rng.choice(months))
            naive.append(time.perf_counter() - started)
        await pool.close()
        per_month = args.consultations / COMPANIES / 11
        print(
            f"\none company of {args.persons // COMPANIES:,} staff, ~{per_month:,.0f} consultations a month; "
            "PostgreSQL, one server process, 127.0.0.1"
        )
        print(f"{'':52}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        print(row("GET /api/hr/usage (frozen snapshot)", usage))
        print(row("GET /api/hr/health (snapshot + 6-month trend)", health))
        print(row("first GET of a month (aggregates + LP audit, freeze)", cold))
        print(row("baseline: the GROUP BY queries on every request", grouped))
        print(row("baseline: naive, fetch the month's rows, count in Python", naive))
        print(f"aim: usage p95 < 300 ms -> {'met' if percentile(usage, 0.95) < 0.3 else 'NOT met'}")
    finally:
        if process is not None:
            _stop(process)
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--consultations", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
