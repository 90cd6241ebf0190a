"""Chat throughput and latency: N consultations exchanging messages through the real server, beside a bare relay.

For each N it creates a fresh database, seeds N patients, N doctors and N active consultations,
starts the real server (``python -m server.cli serve``; one process, or two with ``--processes 2``
where each consultation's patient is on one process and its doctor on the other), opens 2N
authenticated sockets, and lets every pair chat: each side keeps ``--window`` messages in flight
and sends the next one when an earlier one is acknowledged (so every acknowledged message was
committed first). It measures delivered messages per second (received by the other participant)
and end-to-end latency (send -> receipt by the other participant), then runs the same client
load against ``bench/bare_relay.py`` (no auth, no storage) as the ceiling.

    python -m bench.chat_bench --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --redis-url redis://127.0.0.1:6379/0 --consultations 50,200

127.0.0.1 only; bounded by ``--messages-per-consultation`` and ``--seconds``; everything it
creates (databases, processes, Redis prefix) is removed at the end (``BENCH_KEEP_LOGS=1`` keeps
the server logs and prints their paths). ``TELEMED_CHAT_WRITER_LANES`` etc. pass through to the
server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from server.config import normalize_database_url
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.models import (
    AuthSession,
    Consultation,
    InsuredPerson,
    Policy,
    Policyholder,
    Program,
    StaffAccount,
    WebSocketTicket,
)
from server.security.tokens import hash_token, new_opaque_token

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1:8080"
SECRET = "bench-secret-" + "c" * 40


# -- databases and seed data ----------------------------------------------------------------------


async def create_database(server_url: str) -> str:
    """A new empty database on the PostgreSQL server, migrated to head."""
    admin_url = normalize_database_url(server_url)
    name = f"telemed_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    await asyncio.to_thread(upgrade, url)
    return url


async def drop_database(url: str) -> None:
    """Drop a bench database."""
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@dataclass(frozen=True)
class Pair:
    """One consultation and the tickets its two participants open their sockets with."""

    consultation_id: int
    patient_ticket: str
    doctor_ticket: str


async def seed(url: str, count: int, *, tickets_per_subject: int = 1) -> tuple[list[Pair], list[list[str]]]:
    """N patients (one policy), N doctors, N active consultations, and live sessions with socket tickets.

    Returns:
        The pairs (first ticket of each participant) and every ticket per patient (for idle sockets).
    """
    engine = make_engine(url)
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    async with engine.begin() as connection:
        program_id = (
            await connection.execute(
                insert(Program).returning(Program.id),
                [
                    {
                        "code": "BENCH",
                        "name": "Bench",
                        "components": ["telemedicine"],
                        "price_category": 2,
                        "tariff_dispatcher": 1,
                        "tariff_registry": 2,
                        "registry_offered": True,
                        "telemedicine_allowance_per_year": 12,
                    }
                ],
            )
        ).scalar_one()
        holder_id = (
            await connection.execute(
                insert(Policyholder).returning(Policyholder.id), [{"kind": "corporate", "name": "B", "created_at": now}]
            )
        ).scalar_one()
        policy_id = (
            await connection.execute(
                insert(Policy).returning(Policy.id),
                [
                    {
                        "number": "BENCH-1",
                        "policyholder_id": holder_id,
                        "program_id": program_id,
                        "starts_on": date(now.year, 1, 1),
                        "ends_on": date(now.year, 12, 31),
                        "payment_mode": "lump_sum",
                        "premium": 1,
                        "created_at": now,
                    }
                ],
            )
        ).scalar_one()
        patient_ids = list(
            (
                await connection.execute(
                    insert(InsuredPerson).returning(InsuredPerson.id, sort_by_parameter_order=True),
                    [
                        {
                            "policy_id": policy_id,
                            "full_name": f"Bench patient {i}",
                            "birth_date": date(1990, 1, 1),
                            "phone": f"+7900{i:07d}",
                            "city": "Moscow",
                            "service_type": "dispatcher",
                            "is_active": True,
                            "created_at": now,
                        }
                        for i in range(count)
                    ],
                )
            ).scalars()
        )
        doctor_ids = list(
            (
                await connection.execute(
                    insert(StaffAccount).returning(StaffAccount.id, sort_by_parameter_order=True),
                    [
                        {
                            "username": f"bench.doctor.{i}",
                            "password_hash": "!bench-no-login",
                            "role": "doctor",
                            "full_name": f"Bench doctor {i}",
                            "specialties": ["general_practice"],
                            "is_active": True,
                            "created_at": now,
                        }
                        for i in range(count)
                    ],
                )
            ).scalars()
        )
        consultation_ids = list(
            (
                await connection.execute(
                    insert(Consultation).returning(Consultation.id, sort_by_parameter_order=True),
                    [
                        {
                            "insured_person_id": patient,
                            "policyholder_id": holder_id,
                            "channel": "text",
                            "specialty": "general_practice",
                            "complaints": "bench",
                            "status": "active",
                            "doctor_id": doctor,
                            "requested_at": now,
                            "accepted_at": now,
                            "last_seq": 0,
                            "skipped_doctor_ids": [],
                            "referral_services": [],
                        }
                        for patient, doctor in zip(patient_ids, doctor_ids, strict=True)
                    ],
                )
            ).scalars()
        )
        sessions: list[dict[str, Any]] = []
        tickets: list[dict[str, Any]] = []
        patient_tickets: list[list[str]] = []
        doctor_tickets: list[str] = []
        for subject_type, role, ids in (("insured", "insured", patient_ids), ("staff", "doctor", doctor_ids)):
            for subject_id in ids:
                session_id = uuid.uuid4().hex
                sessions.append(
                    {
                        "id": session_id,
                        "subject_type": subject_type,
                        "subject_id": subject_id,
                        "role": role,
                        "created_at": now,
                        "last_used_at": now,
                        "expires_at": later,
                    }
                )
                mine = []
                for _ in range(tickets_per_subject if subject_type == "insured" else 1):
                    ticket = new_opaque_token()
                    mine.append(ticket)
                    tickets.append(
                        {
                            "ticket_hash": hash_token(ticket),
                            "session_id": session_id,
                            "created_at": now,
                            "expires_at": later,
                        }
                    )
                if subject_type == "insured":
                    patient_tickets.append(mine)
                else:
                    doctor_tickets.append(mine[0])
        for start in range(0, len(sessions), 2000):
            await connection.execute(insert(AuthSession), sessions[start : start + 2000])
        for start in range(0, len(tickets), 2000):
            await connection.execute(insert(WebSocketTicket), tickets[start : start + 2000])
    await engine.dispose()
    pairs = [
        Pair(cid, patient[0], doctor)
        for cid, patient, doctor in zip(consultation_ids, patient_tickets, doctor_tickets, strict=True)
    ]
    return pairs, patient_tickets


# -- server processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raise_fd_limit() -> None:
    """Allow many sockets (child processes inherit it)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _profiler(args: Sequence[str]) -> list[str]:
    """``BENCH_PROFILE=/path`` runs the server under cProfile (for finding the hot path)."""
    target = os.environ.get("BENCH_PROFILE", "")
    if target and args[0] == "server.cli":
        return [
            "-c",
            "import runpy, sys; sys.argv[0] = 'profserve'; runpy.run_module('profserve', run_name='__main__')",
        ]
    return []


class Process:
    """A server (or the bare relay) in a subprocess, always terminated with bounded waits."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="telemed-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args, "--port", str(self.port)],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, limit_seconds: float = 60) -> None:
        """Poll /readyz."""
        async with aiohttp.ClientSession() as session, asyncio.timeout(limit_seconds):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"process exited: {Path(self.log.name).read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        """Resident memory (VmRSS) in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """Terminate, wait at most 15 s, then kill."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print("log:", self.log.name, file=sys.stderr)
        else:
            Path(self.log.name).unlink(missing_ok=True)


def server_env(database_url: str, redis_url: str, data_dir: str, redis_prefix: str) -> dict[str, str]:
    """Environment of a benchmarked server process."""
    return {
        "TELEMED_DATABASE_URL": database_url,
        "TELEMED_REDIS_URL": redis_url,
        "TELEMED_REDIS_PREFIX": redis_prefix,
        "TELEMED_JWT_SECRET": SECRET,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": data_dir,
        "TELEMED_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        "TELEMED_LOG_LEVEL": "WARNING",
        "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
        "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
        # Each simulated person sends as fast as acknowledgements come back: far past the
        # per-socket limit meant for people (100 a minute), which would otherwise be measured.
        "TELEMED_WS_MESSAGES_PER_MINUTE": "10000000",
        "TELEMED_WS_MESSAGE_BURST": "1000000",
    }


# -- the client load ------------------------------------------------------------------------------


@dataclass
class SideStats:
    """What one client process measured."""

    delivered: int = 0
    acked: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_send: float = 0.0
    last_receipt: float = 0.0


async def open_authenticated(session: aiohttp.ClientSession, url: str, ticket: str) -> aiohttp.ClientWebSocketResponse:
    """Open a socket and pass the auth phase."""
    ws = await session.ws_connect(url + "/api/ws", headers={"Origin": ORIGIN}, max_msg_size=1 << 20)
    await ws.receive(timeout=30)
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    reply = json.loads((await ws.receive(timeout=30)).data)
    if reply.get("type") != "auth_ok":
        raise RuntimeError(f"auth failed: {reply}")
    return ws


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, consultation_id: int) -> None:
    await ws.send_str(json.dumps({"id": 1, "type": "consultation.subscribe", "consultation_id": consultation_id}))
    async with asyncio.timeout(60):
        while True:
            frame = json.loads((await ws.receive()).data)
            if frame.get("id") == 1 and frame.get("type") == "result":
                if not frame["success"]:
                    raise RuntimeError(f"subscribe failed: {frame}")
                return


async def _run_side(
    ws: aiohttp.ClientWebSocketResponse,
    consultation_id: int,
    tag: str,
    count: int,
    window: int,
    expect: int,
    deadline: float,
    stats: SideStats,
) -> None:
    """Send ``count`` messages keeping ``window`` in flight; count the ``expect`` messages of the peer."""
    slots = asyncio.Semaphore(window)
    received = 0
    prefix = tag + ":"

    async def reader() -> None:
        nonlocal received
        while received < expect or stats_acked[0] < count:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            now = time.perf_counter()
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "result":
                if frame.get("success"):
                    stats.acked += 1
                else:
                    stats.errors += 1
                stats_acked[0] += 1
                slots.release()
            elif kind == "event" and frame["event"].get("type") == "chat.message":
                body = frame["event"]["text"]
                if body.startswith(prefix):
                    continue  # our own message coming back (multi-device echo)
                sent_ns = int(body.split(":", 1)[1])
                stats.latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)
                stats.delivered += 1
                stats.last_receipt = now
                received += 1

    stats_acked = [0]
    reading = asyncio.create_task(reader())
    try:
        for n in range(count):
            await slots.acquire()
            if time.perf_counter() > deadline or reading.done():
                break
            payload = (
                f'{{"id":{n + 2},"type":"chat.send","consultation_id":{consultation_id},'
                f'"client_message_id":"{tag}-{n}","text":"{tag}:{time.perf_counter_ns()}"}}'
            )
            await ws.send_str(payload)
        remaining = max(0.1, deadline - time.perf_counter())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), remaining)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reading


async def run_load(
    pairs: Sequence[Pair],
    patient_url: str,
    doctor_url: str,
    per_side: int,
    window: int,
    seconds: float,
    bare: bool,
    before_start: Callable[[], Awaitable[None]] | None = None,
) -> SideStats:
    """Open 2N sockets, subscribe, then let every pair chat; returns the combined measurements."""
    connector = aiohttp.TCPConnector(limit=0)
    stats = SideStats()
    async with aiohttp.ClientSession(connector=connector) as session:
        semaphore = asyncio.Semaphore(50)

        async def prepare(pair: Pair) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
            async with semaphore:
                patient = await open_authenticated(session, patient_url, "bare" if bare else pair.patient_ticket)
                doctor = await open_authenticated(session, doctor_url, "bare" if bare else pair.doctor_ticket)
                await _subscribe(patient, pair.consultation_id)
                await _subscribe(doctor, pair.consultation_id)
                return patient, doctor

        sockets = await asyncio.gather(*(prepare(pair) for pair in pairs))
        if before_start is not None:
            await before_start()
        started = time.perf_counter()
        stats.first_send = started
        deadline = started + seconds
        await asyncio.gather(
            *(
                _run_side(ws, pair.consultation_id, tag, per_side, window, per_side, deadline, stats)
                for pair, (patient, doctor) in zip(pairs, sockets, strict=True)
                for ws, tag in ((patient, f"p{pair.consultation_id}"), (doctor, f"d{pair.consultation_id}"))
            )
        )
        await asyncio.gather(*(ws.close() for both in sockets for ws in both), return_exceptions=True)
    return stats


def _client_process(args: tuple[Any, ...], results: Any, go: Any, ready: Any) -> None:
    raise_fd_limit()

    async def barrier() -> None:
        ready.put(True)
        await asyncio.to_thread(go.wait)

    results.put(asyncio.run(run_load(*args, before_start=barrier)))


async def run_load_in_processes(
    pairs: Sequence[Pair],
    patient_url: str,
    doctor_url: str,
    per_side: int,
    window: int,
    seconds: float,
    bare: bool,
    processes: int,
    on_start: Callable[[], None] = lambda: None,
) -> SideStats:
    """The same load split over several client processes (so the client is not the bottleneck)."""
    if processes <= 1:

        async def started() -> None:
            on_start()

        return await run_load(pairs, patient_url, doctor_url, per_side, window, seconds, bare, started)
    context = multiprocessing.get_context("spawn")
    results, ready, go = context.Queue(), context.Queue(), context.Event()
    slices = [list(pairs[i::processes]) for i in range(processes)]
    workers = [
        context.Process(
            target=_client_process,
            args=((chunk, patient_url, doctor_url, per_side, window, seconds, bare), results, go, ready),
        )
        for chunk in slices
        if chunk
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            await asyncio.to_thread(ready.get, True, 120)
        on_start()
        go.set()
        parts: list[SideStats] = [await asyncio.to_thread(results.get, True, seconds + 120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    combined = SideStats(first_send=min(p.first_send for p in parts), last_receipt=max(p.last_receipt for p in parts))
    for part in parts:
        combined.delivered += part.delivered
        combined.acked += part.acked
        combined.errors += part.errors
        combined.latencies_ms.extend(part.latencies_ms)
    # Processes start within milliseconds of each other; use the longest span as the elapsed time.
    combined.first_send = 0.0
    combined.last_receipt = max(p.last_receipt - p.first_send for p in parts)
    return combined


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Row:
    """One line of the result table."""

    consultations: int
    system: str
    delivered: int
    rate: float
    p50: float
    p99: float
    errors: int
    server_cpu: float


def _row(consultations: int, system: str, stats: SideStats, cpu: float) -> Row:
    elapsed = max(1e-9, stats.last_receipt - stats.first_send)
    return Row(
        consultations,
        system,
        stats.delivered,
        stats.delivered / elapsed,
        percentile(stats.latencies_ms, 0.50),
        percentile(stats.latencies_ms, 0.99),
        stats.errors,
        cpu,
    )


async def bench_one(args: argparse.Namespace, consultations: int, bare_relay: Process, workdir: str) -> list[Row]:
    """Both systems at one N."""
    per_side = max(1, args.messages_per_consultation // 2)
    rows: list[Row] = []
    database_url = await create_database(args.database_url)
    prefix = f"telemed-bench-{uuid.uuid4().hex[:8]}"
    servers: list[Process] = []
    try:
        pairs, _ = await seed(database_url, consultations)
        env = server_env(database_url, args.redis_url, str(Path(workdir) / "data"), prefix)
        servers = [Process(["server.cli", "serve", "--skip-migrations"], env) for _ in range(args.processes)]
        await asyncio.gather(*(server.wait_ready() for server in servers))
        patient_url, doctor_url = servers[0].url, servers[-1].url
        cpu_before = [0.0]

        def snapshot() -> None:
            cpu_before[0] = sum(server.cpu_seconds() for server in servers)

        stats = await run_load_in_processes(
            pairs, patient_url, doctor_url, per_side, args.window, args.seconds, False, args.client_processes, snapshot
        )
        cpu = sum(server.cpu_seconds() for server in servers) - cpu_before[0]
        label = "persisted chat" + (f" ({args.processes} processes)" if args.processes > 1 else "")
        rows.append(_row(consultations, label, stats, cpu))
    finally:
        for server in servers:
            server.stop()
        await drop_database(database_url)
        if args.redis_url:
            import redis.asyncio as redis_asyncio

            client = redis_asyncio.Redis.from_url(args.redis_url)
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
    fake_pairs = [Pair(pair.consultation_id, "", "") for pair in pairs]
    relay_before = [0.0]

    def relay_snapshot() -> None:
        relay_before[0] = bare_relay.cpu_seconds()

    stats = await run_load_in_processes(
        fake_pairs,
        bare_relay.url,
        bare_relay.url,
        per_side,
        args.window,
        args.seconds,
        True,
        args.client_processes,
        relay_snapshot,
    )
    rows.append(_row(consultations, "bare relay (ceiling)", stats, bare_relay.cpu_seconds() - relay_before[0]))
    return rows


async def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--consultations", default="50,200", help="comma-separated N values")
    parser.add_argument("--messages-per-consultation", type=int, default=400, help="both sides together")
    parser.add_argument("--seconds", type=float, default=30.0, help="upper bound per run")
    parser.add_argument("--window", type=int, default=1, help="messages each side keeps in flight")
    parser.add_argument("--processes", type=int, default=1, choices=[1, 2], help="server processes")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--database-url", required=True, help="PostgreSQL server URL (bench databases are created)")
    parser.add_argument("--redis-url", default="", help="Redis URL (required with --processes 2)")
    args = parser.parse_args()
    if args.processes > 1 and not args.redis_url:
        parser.error("--processes 2 needs --redis-url")
    raise_fd_limit()
    rows: list[Row] = []
    bare_relay = Process(["bench.bare_relay"])
    try:
        await bare_relay.wait_ready()
        with tempfile.TemporaryDirectory() as workdir:
            for consultations in [int(part) for part in args.consultations.split(",") if part.strip()]:
                rows.extend(await bench_one(args, consultations, bare_relay, workdir))
                print(f"done: {consultations} consultations", file=sys.stderr, flush=True)
    finally:
        bare_relay.stop()
    print()
    header = f"{'N':>6}  {'system':<32} {'delivered':>10} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header + f" {'errors':>6} {'srv cpu s':>9}")
    for row in rows:
        print(
            f"{row.consultations:>6}  {row.system:<32} {row.delivered:>10} {row.rate:>9.0f} {row.p50:>8.1f} "
            f"{row.p99:>8.1f} {row.errors:>6} {row.server_cpu:>9.1f}"
        )
    print()
    by_n: dict[int, dict[str, Row]] = {}
    for row in rows:
        by_n.setdefault(row.consultations, {})["bare" if row.system.startswith("bare") else "app"] = row
    for consultations, pair in by_n.items():
        if "bare" in pair and "app" in pair:
            print(f"N={consultations}: persisted / bare throughput = {pair['app'].rate / pair['bare'].rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
