"""Approval decisions: the pure rule (decisions per second) and ``POST /api/dispatch/approval-check`` on
PostgreSQL with 100,000 insured persons and 1,000,000 letters of guarantee (p50/p99 and requests/s), next to
a bare aiohttp + asyncpg baseline doing the same indexed reads and the same pure decision, without the
framework's authentication, validation and audit.

    python -m bench.approval_bench --pure-only
    python -m bench.approval_bench --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --persons 100000 --letters 1000000 --requests 2000 --concurrency 1,8

Creates its own database (dropped at the end), bulk-loads it with COPY (asyncpg), prints EXPLAIN of the
hot queries, then runs the app (``telemed serve``) and the baseline as separate processes on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from tqdm import tqdm

from server.db.models import AttachmentLetter, InsuredEvent, InsuredPerson, LetterOfGuarantee
from server.domain.approval import needs_approval
from server.domain.coverage_types import (
    AttachmentLetterFacts,
    InsuredFacts,
    LetterFacts,
    LetterStatus,
    ServiceType,
)
from server.domain.letters import add_months
from server.security.passwords import hash_password

SERVICES = [
    "therapist consultation",
    "cardiologist consultation",
    "neurologist consultation",
    "orthopedist consultation",
    "ECG",
    "echocardiography",
    "MRI knee",
    "MRI spine",
    "CT chest",
    "X-ray chest",
    "X-ray knee",
    "blood test",
    "urine test",
    "ultrasound abdomen",
    "physiotherapy",
    "massage",
    "ENT consultation",
    "dermatologist consultation",
    "endoscopy",
    "allergy tests",
]
PASSWORD = "bench-dispatcher-password"
CLINICS = 200
PERSONS_PER_POLICY = 100
EVENTS_PER_PERSON = 3
OPEN_LETTERS = 3  # letters of each person's open event; the rest belong to closed events
REGISTRY_SHARE = 0.2
LAPSED_SHARE = 0.1  # registry persons whose attachment ended (unpaid installment, R7.4)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ----------------------------------------------------------------------------- 1. the pure decision


def _pure_cases(count: int, today: date, rng: random.Random) -> list[dict[str, Any]]:
    """A realistic mix: follow-ups within a letter, extra services, expired letters, new events, registry."""
    cases = []
    for index in range(count):
        registry = rng.random() < REGISTRY_SHARE
        clinic = rng.randrange(1, 50)
        insured = InsuredFacts(
            id=index,
            service_type=ServiceType.REGISTRY if registry else ServiceType.DISPATCHER,
            attached_clinic_id=clinic if registry else None,
        )
        letters = []
        for n in range(rng.randrange(0, 6)):
            issued = today - timedelta(days=rng.randrange(0, 60))
            letters.append(
                LetterFacts(
                    number=f"LG-2026-{index * 10 + n + 1:06d}",
                    clinic_id=rng.choice([clinic, rng.randrange(1, 50)]),
                    services=frozenset(rng.sample(SERVICES, rng.randrange(1, 5))),
                    issued_on=issued,
                    valid_until=add_months(issued, 1),
                    status=rng.choice([LetterStatus.ACTIVE] * 4 + [LetterStatus.CLOSED, LetterStatus.CANCELLED]),
                )
            )
        attachments = []
        if registry:
            until = today + timedelta(days=30) if rng.random() > LAPSED_SHARE else today - timedelta(days=5)
            attachments.append(
                AttachmentLetterFacts(
                    f"AL-2026-{index + 1:06d}",
                    clinic,
                    date(today.year, 1, 10),
                    date(today.year, 1, 12),
                    date(today.year, 1, 12),
                    until,
                )
            )
        wanted = (
            sorted(rng.choice(letters).services)[: rng.randrange(1, 3)]
            if letters and rng.random() < 0.7
            else rng.sample(SERVICES, 2)
        )
        cases.append(
            {
                "insured": insured,
                "clinic_id": rng.choice([clinic, *[x.clinic_id for x in letters]]),
                "services": wanted,
                "on": today,
                "new_event": rng.random() < 0.15,
                "letters": letters,
                "attachment_letters": attachments,
            }
        )
    return cases


def bench_pure(iterations: int) -> tuple[float, dict[str, int]]:
    """Decisions per second of ``approval.needs_approval`` on one core, and how the mix was decided."""
    rng = random.Random(7)
    today = date(2026, 6, 10)
    cases = _pure_cases(2000, today, rng)
    outcomes: dict[str, int] = {}
    for case in cases:  # warm-up, and the mix it produces
        decision = needs_approval(
            case["insured"],
            case["clinic_id"],
            case["services"],
            case["on"],
            new_event=case["new_event"],
            letters=case["letters"],
            attachment_letters=case["attachment_letters"],
        )
        key = next(
            (r.rule for r in decision.reasons if r.rule in {"R6.2", "R3", "R3.1", "R3.2", "R3.3", "R2.5"}),
            decision.reasons[-1].rule,
        )
        outcomes[key] = outcomes.get(key, 0) + 1
    started = time.perf_counter()
    for index in range(iterations):
        case = cases[index % len(cases)]
        needs_approval(
            case["insured"],
            case["clinic_id"],
            case["services"],
            case["on"],
            new_event=case["new_event"],
            letters=case["letters"],
            attachment_letters=case["attachment_letters"],
        )
    elapsed = time.perf_counter() - started
    return iterations / elapsed, outcomes


# ----------------------------------------------------------------------------- 2. bulk load


@dataclass(frozen=True, slots=True)
class PersonPlan:
    """What the load generator needs to know about one person to ask realistic questions."""

    id: int
    registry: bool
    attached_clinic: int | None
    open_event: int
    letter_clinic: int
    letter_services: tuple[str, ...]


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _copy(
    connection: asyncpg.Connection,
    table: str,
    columns: list[str],
    rows: Iterator[tuple[Any, ...]],
    total: int,
    *,
    batch: int = 50_000,
    desc: str | None = None,
) -> None:
    with tqdm(total=total, desc=desc or table, unit="row", unit_scale=True, disable=total < batch) as bar:
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                await connection.copy_records_to_table(table, records=chunk, columns=columns)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            await connection.copy_records_to_table(table, records=chunk, columns=columns)
            bar.update(len(chunk))


async def bulk_load(url: str, persons: int, letters: int, today: date) -> list[PersonPlan]:
    """Load a program, clinics, policies, persons, events, letters and attachment letters with COPY."""
    rng = random.Random(20260610)
    now = datetime.now(UTC)
    year_start, year_end = date(today.year, 1, 1), date(today.year, 12, 31)
    policies = max(1, (persons + PERSONS_PER_POLICY - 1) // PERSONS_PER_POLICY)
    letters_per_person = max(OPEN_LETTERS + 1, letters // persons)
    connection = await asyncpg.connect(_plain_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO programs (id, code, name, components, price_category, tariff_dispatcher, tariff_registry, "
            "registry_offered, telemedicine_allowance_per_year) VALUES (1, 'BENCH', 'Bench program', $1, 2, "
            "40000, 52000, true, 12)",
            json.dumps(["outpatient", "dental", "ambulance", "inpatient", "telemedicine"]),
        )
        await _copy(
            connection,
            "clinics",
            ["id", "name", "city", "address", "phone", "price_category", "has_access_system"],
            (
                (c, f"Clinic {c}", "Moscow", f"{c} Bench St", "+7 495 000-00-00", 1 + c % 3, c % 10 == 0)
                for c in range(1, CLINICS + 1)
            ),
            CLINICS,
        )
        await _copy(
            connection, "program_clinics", ["program_id", "clinic_id"], ((1, c) for c in range(1, CLINICS + 1)), CLINICS
        )
        await _copy(
            connection,
            "policyholders",
            ["id", "kind", "name", "created_at"],
            ((h, "corporate", f"Company {h}", now) for h in range(1, 101)),
            100,
        )
        await _copy(
            connection,
            "policies",
            [
                "id",
                "number",
                "policyholder_id",
                "program_id",
                "starts_on",
                "ends_on",
                "payment_mode",
                "premium",
                "created_at",
            ],
            (
                (p, f"BENCH-{p:06d}", 1 + p % 100, 1, year_start, year_end, "lump_sum", Decimal("4000000.00"), now)
                for p in range(1, policies + 1)
            ),
            policies,
        )
        await _copy(
            connection,
            "payments",
            ["id", "policy_id", "amount", "bundled_on", "created_at"],
            ((p, p, Decimal("4000000.00"), year_start, now) for p in range(1, policies + 1)),
            policies,
        )

        category2 = [c for c in range(1, CLINICS + 1) if 1 + c % 3 == 2]
        plans: list[PersonPlan] = []
        for p in range(1, persons + 1):
            registry = rng.random() < REGISTRY_SHARE
            services = tuple(rng.sample(SERVICES, rng.randrange(2, 5)))
            plans.append(
                PersonPlan(
                    p,
                    registry,
                    rng.choice(category2) if registry else None,
                    (p - 1) * EVENTS_PER_PERSON + 1,
                    rng.randrange(1, CLINICS + 1),
                    services,
                )
            )
        await _copy(
            connection,
            "insured_persons",
            [
                "id",
                "policy_id",
                "insured_number",
                "full_name",
                "birth_date",
                "phone",
                "city",
                "service_type",
                "attached_clinic_id",
                "is_active",
                "created_at",
            ],
            (
                (
                    plan.id,
                    1 + (plan.id - 1) // PERSONS_PER_POLICY,
                    f"{plan.id:012d}",  # the card's number (a real one carries a check digit)
                    f"Person {plan.id}",
                    date(1980, 1, 1),
                    f"+7900{plan.id:07d}",
                    "Moscow",
                    "registry" if plan.registry else "dispatcher",
                    plan.attached_clinic,
                    True,
                    now,
                )
                for plan in plans
            ),
            persons,
            desc="insured persons",
        )

        def events() -> Iterator[tuple[Any, ...]]:
            for plan in plans:
                for k in range(EVENTS_PER_PERSON):
                    status = "open" if k == 0 else "closed"
                    yield (
                        plan.open_event + k,
                        plan.id,
                        "outpatient",
                        f"complaints {plan.id}-{k}",
                        status,
                        "dispatcher",
                        True,
                        "[]",
                        now - timedelta(days=30 * (k + 1)),
                        None if k == 0 else now - timedelta(days=10 * k),
                    )

        await _copy(
            connection,
            "insured_events",
            [
                "id",
                "insured_person_id",
                "component",
                "complaints",
                "status",
                "source",
                "covered",
                "reasons",
                "opened_at",
                "closed_at",
            ],
            events(),
            persons * EVENTS_PER_PERSON,
            desc="insured events",
        )

        def letter_rows() -> Iterator[tuple[Any, ...]]:
            index = 0
            for plan in plans:
                for j in range(letters_per_person):
                    if index >= letters:
                        return
                    if j < OPEN_LETTERS:  # the open treatment: recent letters, some expired (R3.3)
                        event, clinic = plan.open_event, plan.letter_clinic
                        services = list(plan.letter_services) if j == 0 else rng.sample(SERVICES, 2)
                        issued = today - timedelta(days=rng.randrange(0, 45))
                        status = "active"
                    else:
                        event = plan.open_event + 1 + j % (EVENTS_PER_PERSON - 1)
                        clinic = rng.randrange(1, CLINICS + 1)
                        services = rng.sample(SERVICES, 2)
                        issued = today - timedelta(days=rng.randrange(60, 700))
                        status = "closed"
                    number = f"LG-{2000 + index // 100_000}-{index % 100_000 + 1:06d}"
                    index += 1
                    yield (
                        index,
                        number,
                        event,
                        plan.id,
                        clinic,
                        json.dumps(services),
                        issued,
                        add_months(issued, 1),
                        status,
                        now,
                        now,
                    )

        await _copy(
            connection,
            "letters_of_guarantee",
            [
                "id",
                "number",
                "insured_event_id",
                "insured_person_id",
                "clinic_id",
                "services",
                "issued_on",
                "valid_until",
                "status",
                "sent_to_clinic_at",
                "created_at",
            ],
            letter_rows(),
            letters,
            desc="letters of guarantee",
        )

        registry_plans = [plan for plan in plans if plan.registry]
        await _copy(
            connection,
            "attachment_letters",
            [
                "id",
                "number",
                "insured_person_id",
                "clinic_id",
                "payment_id",
                "generated_on",
                "send_on",
                "valid_from",
                "valid_until",
            ],
            (
                (
                    n,
                    f"AL-{today.year}-{n:06d}",
                    plan.id,
                    plan.attached_clinic,
                    1 + (plan.id - 1) // PERSONS_PER_POLICY,
                    year_start,
                    date(today.year, 1, 12),
                    date(today.year, 1, 12),
                    year_end if rng.random() > LAPSED_SHARE else today - timedelta(days=5),
                )
                for n, plan in enumerate(registry_plans, start=1)
            ),
            len(registry_plans),
            desc="attachment letters",
        )

        await connection.execute(
            "INSERT INTO staff_accounts (username, password_hash, role, full_name, specialties, "
            "max_active_consultations, is_active, created_at) VALUES ('bench.dispatcher', $1, 'dispatcher', "
            "'Bench Dispatcher', '[]', 3, true, $2)",
            hash_password(PASSWORD),
            now,
        )
        for table in (
            "programs",
            "clinics",
            "policyholders",
            "policies",
            "payments",
            "insured_persons",
            "insured_events",
            "letters_of_guarantee",
            "attachment_letters",
        ):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return plans


async def explain_hot_queries(url: str, plan: PersonPlan) -> list[tuple[str, str]]:
    """EXPLAIN the approval check's reads (as the repository builds them) for one person."""
    statements = {
        "person + policy + program": select(InsuredPerson).where(InsuredPerson.id == plan.id),
        "letters of one event": select(LetterOfGuarantee).where(LetterOfGuarantee.insured_event_id == plan.open_event),
        "letters of open events": select(LetterOfGuarantee)
        .join(InsuredEvent, InsuredEvent.id == LetterOfGuarantee.insured_event_id)
        .where(LetterOfGuarantee.insured_person_id == plan.id, InsuredEvent.status == "open"),
        "attachment letters": select(AttachmentLetter).where(AttachmentLetter.insured_person_id == plan.id),
        "next letter number": select(LetterOfGuarantee.number)
        .where(LetterOfGuarantee.number >= "LG-2026-000000", LetterOfGuarantee.number <= "LG-2026-999999")
        .order_by(LetterOfGuarantee.number.desc())
        .limit(1),
    }
    out = []
    connection = await asyncpg.connect(_plain_dsn(url))
    try:
        for label, statement in statements.items():
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            rows = await connection.fetch("EXPLAIN " + sql)
            plan_text = " | ".join(row[0].strip() for row in rows)
            out.append((label, plan_text))
    finally:
        await connection.close()
    return out


# ----------------------------------------------------------------------------- 3. servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _baseline_app(url: str) -> web.Application:
    """The ceiling: parse JSON, the same indexed reads, the same pure decision; no auth, validation or audit."""
    app = web.Application()
    pool_key: web.AppKey[asyncpg.Pool] = web.AppKey("pool")

    async def pool_ctx(app: web.Application) -> Any:
        app[pool_key] = await asyncpg.create_pool(_plain_dsn(url), min_size=2, max_size=10)
        yield
        await app[pool_key].close()

    async def check(request: web.Request) -> web.Response:
        body = await request.json()
        on = datetime.now(UTC).date()
        async with request.app[pool_key].acquire() as connection:
            person = await connection.fetchrow(
                "SELECT p.id, p.service_type, p.attached_clinic_id FROM insured_persons p "
                "JOIN policies o ON o.id = p.policy_id WHERE p.id = $1",
                body["insured_person_id"],
            )
            if body.get("insured_event_id"):
                rows = await connection.fetch(
                    "SELECT number, clinic_id, services, issued_on, valid_until, status FROM letters_of_guarantee "
                    "WHERE insured_event_id = $1",
                    body["insured_event_id"],
                )
            else:
                rows = await connection.fetch(
                    "SELECT l.number, l.clinic_id, l.services, l.issued_on, l.valid_until, l.status "
                    "FROM letters_of_guarantee l JOIN insured_events e ON e.id = l.insured_event_id "
                    "WHERE l.insured_person_id = $1 AND e.status = 'open'",
                    body["insured_person_id"],
                )
            attachments = []
            if person["service_type"] == "registry":
                attachments = await connection.fetch(
                    "SELECT number, clinic_id, generated_on, send_on, valid_from, valid_until "
                    "FROM attachment_letters WHERE insured_person_id = $1",
                    body["insured_person_id"],
                )
        insured = InsuredFacts(person["id"], person["service_type"], person["attached_clinic_id"])
        decision = needs_approval(
            insured,
            body["clinic_id"],
            body.get("services", []),
            on,
            new_event=bool(body.get("new_event")),
            letters=[
                LetterFacts(
                    r["number"],
                    r["clinic_id"],
                    frozenset(json.loads(r["services"])),
                    r["issued_on"],
                    r["valid_until"],
                    r["status"],
                )
                for r in rows
            ],
            attachment_letters=[AttachmentLetterFacts(*a) for a in attachments],
        )
        return web.json_response(decision.as_dict())

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/check", check)
    app.router.add_get("/healthz", healthz)
    return app


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def _wait_ready(base: str, process: subprocess.Popen[bytes], wait_seconds: float = 60) -> None:
    deadline = time.monotonic() + wait_seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# ----------------------------------------------------------------------------- 4. load


def make_payloads(plans: list[PersonPlan], count: int, seed: int = 11) -> list[dict[str, Any]]:
    """The question mix: follow-ups within a letter, visits without an event, new events, registry visits."""
    rng = random.Random(seed)
    dispatchers = [p for p in plans if not p.registry]
    registries = [p for p in plans if p.registry] or dispatchers
    payloads = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            p = rng.choice(dispatchers)
            wanted = list(p.letter_services[: rng.randrange(1, len(p.letter_services) + 1)])
            if rng.random() < 0.2:
                wanted.append(rng.choice(SERVICES))  # a prescribed service not in the letter (R3.2)
            payloads.append(
                {
                    "insured_person_id": p.id,
                    "clinic_id": p.letter_clinic,
                    "services": wanted,
                    "insured_event_id": p.open_event,
                }
            )
        elif roll < 0.7:
            p = rng.choice(dispatchers)
            payloads.append(
                {"insured_person_id": p.id, "clinic_id": p.letter_clinic, "services": list(p.letter_services[:1])}
            )
        elif roll < 0.85:
            p = rng.choice(dispatchers)
            payloads.append(
                {
                    "insured_person_id": p.id,
                    "clinic_id": rng.randrange(1, CLINICS + 1),
                    "services": rng.sample(SERVICES, 1),
                    "new_event": True,
                }
            )
        else:
            p = rng.choice(registries)
            payloads.append(
                {
                    "insured_person_id": p.id,
                    "clinic_id": p.attached_clinic or p.letter_clinic,
                    "services": rng.sample(SERVICES, 1),
                    "new_event": True,
                }
            )
    return payloads


async def run_load(
    url: str,
    headers: dict[str, str],
    payloads: list[dict[str, Any]],
    concurrency: int,
    desc: str,
    *,
    get: bool = False,
) -> tuple[list[float], float, dict[str, int]]:
    """POST every payload (or GET ``url`` as often) with ``concurrency`` workers: latencies, wall time, answers."""
    timings: list[float] = []
    answers: dict[str, int] = {}
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        bar = tqdm(total=len(payloads), desc=desc, unit="req", leave=False)

        async def worker() -> None:
            while not queue.empty():
                payload = queue.get_nowait()
                started = time.perf_counter()
                request = session.get(url) if get else session.post(url, json=payload)
                async with request as response:
                    body = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {body}")
                timings.append(time.perf_counter() - started)
                if "needs_approval" in body:
                    key = "needs approval" if body["needs_approval"] else "no approval"
                    answers[key] = answers.get(key, 0) + 1
                bar.update(1)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        bar.close()
    return timings, elapsed, answers


async def bench_http(args: argparse.Namespace) -> None:
    """Create the database, load it, EXPLAIN, run the app and the baseline, print the figures."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.config import normalize_database_url
    from server.db.migrate import upgrade

    admin_url = normalize_database_url(args.database_url)
    name = f"telemed_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.to_thread(upgrade, url)
        today = datetime.now(UTC).date()
        started = time.perf_counter()
        plans = await bulk_load(url, args.persons, args.letters, today)
        load_seconds = time.perf_counter() - started
        print(
            f"\nloaded {args.persons:,} insured persons and {args.letters:,} letters of guarantee "
            f"in {load_seconds:.0f} s (COPY)"
        )
        print("\nEXPLAIN of the approval check's reads:")
        for label, plan_text in await explain_hot_queries(url, plans[0]):
            uses = "index" if "Index" in plan_text else "NO INDEX"
            print(f"  {label:28} [{uses}] {plan_text[:150]}")

        with tempfile.TemporaryDirectory() as workdir:
            app_port, base_port = _free_port(), _free_port()
            env = {
                "TELEMED_DATABASE_URL": url,
                "TELEMED_DATA_DIR": workdir,
                "TELEMED_LOG_LEVEL": "WARNING",
                "TELEMED_JWT_SECRET": "bench-secret-" + "z" * 40,
                "TELEMED_ENVIRONMENT": "dev",
                "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
                "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
            }
            processes.append(_start(["-m", "server.cli", "serve", "--skip-migrations", "--port", str(app_port)], env))
            processes.append(
                _start(
                    ["-m", "bench.approval_bench", "--serve-baseline", "--port", str(base_port), "--database-url", url],
                    {},
                )
            )
            app_base, bare_base = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{base_port}"
            await _wait_ready(app_base, processes[0])
            await _wait_ready(bare_base, processes[1])
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    app_base + "/api/auth/login", json={"username": "bench.dispatcher", "password": PASSWORD}
                ) as response,
            ):
                token = (await response.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            payloads = make_payloads(plans, args.requests)
            warmup = make_payloads(plans, 200, seed=3)
            await run_load(app_base + "/api/dispatch/approval-check", headers, warmup, 4, "warm-up app")
            await run_load(bare_base + "/check", {}, warmup, 4, "warm-up baseline")
            rows = []
            for concurrency in args.concurrency:
                for label, target, hdrs in (
                    ("approval-check endpoint", app_base + "/api/dispatch/approval-check", headers),
                    ("bare aiohttp+asyncpg baseline", bare_base + "/check", {}),
                ):
                    timings, elapsed, answers = await run_load(
                        target, hdrs, payloads, concurrency, f"{label} c={concurrency}"
                    )
                    rows.append((label, concurrency, timings, elapsed, answers))
            # The framework's floor: an authenticated GET /api/me (token check + session lookup, no audit).
            timings, elapsed, answers = await run_load(
                app_base + "/api/me", headers, payloads, 1, "GET /api/me", get=True
            )
            rows.append(("authenticated GET /api/me", 1, timings, elapsed, answers))
        print(f"\n{args.requests:,} approval checks per run, 127.0.0.1, PostgreSQL, one server process each")
        print(f"{'':32}{'conc':>6}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>9}")
        for label, concurrency, timings, elapsed, _answers in rows:
            print(
                f"{label:32}{concurrency:6d}{percentile(timings, 0.5) * 1000:9.2f}"
                f"{percentile(timings, 0.99) * 1000:9.2f}{statistics.fmean(timings) * 1000:9.2f}"
                f"{len(timings) / elapsed:9.0f}"
            )
        print(f"answers of the endpoint: {rows[0][4]}")
        print(f"bulk load: {load_seconds:.0f} s for {args.persons:,} persons, {args.letters:,} letters")
    finally:
        for process in processes:
            _stop(process)
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    """Run the pure benchmark, then (with --database-url) the HTTP one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="", help="PostgreSQL server URL (a bench database is created)")
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--letters", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated worker counts")
    parser.add_argument("--iterations", type=int, default=200_000, help="pure decisions to time")
    parser.add_argument("--pure-only", action="store_true")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        web.run_app(_baseline_app(args.database_url), host="127.0.0.1", port=args.port, print=None, access_log=None)
        return
    args.concurrency = [int(part) for part in args.concurrency.split(",") if part.strip()]
    rate, outcomes = bench_pure(args.iterations)
    print(
        f"pure approval.needs_approval: {rate:,.0f} decisions/s on one core "
        f"({1e6 / rate:.1f} us each, {args.iterations:,} decisions); mix decided by {outcomes}"
    )
    if args.pure_only or not args.database_url:
        return
    asyncio.run(bench_http(args))


if __name__ == "__main__":
    main()
