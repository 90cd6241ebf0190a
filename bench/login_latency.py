"""Login latency: p50/p99 of full policy logins (start + verify) against the real app.

Baseline in the same run: a bare aiohttp endpoint that signs a JWT with no database (the ceiling).

    python -m bench.login_latency                    # SQLite file, 1,000 logins
    python -m bench.login_latency --database-url postgresql://postgres@127.0.0.1:5432/test --logins 1000

Creates and drops its own database (PostgreSQL) or temporary file (SQLite). 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine
from tqdm import tqdm

from server.app import create_app
from server.config import Settings, normalize_database_url
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.models import InsuredPerson, Policy, Policyholder, Program
from tests.fakes import RecordingSender


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _seed(url: str, persons: int) -> list[tuple[str, date, str]]:
    engine = make_engine(url)
    now = datetime.now(UTC)
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
        people = []
        for index in range(persons):
            number = f"BENCH-{index:06d}"
            policy_id = (
                await connection.execute(
                    insert(Policy).returning(Policy.id),
                    [
                        {
                            "number": number,
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
            phone = f"+7900{index:07d}"
            await connection.execute(
                insert(InsuredPerson),
                [
                    {
                        "policy_id": policy_id,
                        "full_name": f"Bench {index}",
                        "birth_date": date(1990, 1, 1),
                        "phone": phone,
                        "city": "Moscow",
                        "service_type": "dispatcher",
                        "is_active": True,
                        "created_at": now,
                    }
                ],
            )
            people.append((number, date(1990, 1, 1), phone))
    await engine.dispose()
    return people


async def _measure_app(url: str, logins: int, data_dir: Path) -> list[float]:
    people = await _seed(url, logins)
    sender = RecordingSender()
    settings = Settings(
        environment="test",
        data_dir=data_dir,
        database_url=url,
        jwt_secret="bench-secret-" + "b" * 40,
        login_starts_per_address_per_hour=logins * 2,
        log_level="WARNING",
    )
    server = TestServer(create_app(settings, code_sender=sender), host="127.0.0.1")
    await server.start_server()
    timings: list[float] = []
    try:
        async with aiohttp.ClientSession(str(server.make_url(""))) as session:
            for number, born, phone in tqdm(people, desc="app logins", unit="login"):
                started = time.perf_counter()
                async with session.post(
                    "/api/auth/policy/start", json={"policy_number": number, "birth_date": born.isoformat()}
                ) as response:
                    challenge = (await response.json())["challenge_id"]
                async with session.post(
                    "/api/auth/policy/verify", json={"challenge_id": challenge, "code": sender.last_code(phone)}
                ) as response:
                    assert response.status == 200, await response.text()
                    await response.json()
                timings.append(time.perf_counter() - started)
    finally:
        await server.close()
    return timings


async def _measure_baseline(logins: int) -> list[float]:
    secret = "bench-secret-" + "b" * 40

    async def start(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"challenge_id": uuid.uuid4().hex})

    async def verify(request: web.Request) -> web.Response:
        await request.json()
        now = datetime.now(UTC)
        token = jwt.encode({"sub": "x", "exp": now + timedelta(minutes=15)}, secret, algorithm="HS256")
        return web.json_response({"access_token": token})

    app = web.Application()
    app.router.add_post("/start", start)
    app.router.add_post("/verify", verify)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    timings: list[float] = []
    try:
        async with aiohttp.ClientSession(str(server.make_url(""))) as session:
            for _ in range(logins):
                started = time.perf_counter()
                async with session.post("/start", json={"policy_number": "X", "birth_date": "1990-01-01"}) as r:
                    challenge = (await r.json())["challenge_id"]
                async with session.post("/verify", json={"challenge_id": challenge, "code": "123456"}) as r:
                    await r.json()
                timings.append(time.perf_counter() - started)
    finally:
        await server.close()
    return timings


async def main() -> None:
    """Run both measurements and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument("--database-url", default="", help="PostgreSQL server URL (a bench database is created)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        admin_url = ""
        if args.database_url:
            admin_url = normalize_database_url(args.database_url)
            name = f"telemed_bench_{uuid.uuid4().hex[:8]}"
            admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
            async with admin.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = admin_url.rsplit("/", 1)[0] + "/" + name
        else:
            url = f"sqlite+aiosqlite:///{workdir}/bench.sqlite3"
        try:
            await asyncio.to_thread(upgrade, url)
            app_timings = await _measure_app(url, args.logins, Path(workdir) / "data")
        finally:
            if admin_url:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await admin.dispose()
        base_timings = await _measure_baseline(args.logins)
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"\npolicy login (start + verify), {args.logins} sequential logins, backend {backend}")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, timings in (("telemed app", app_timings), ("bare aiohttp + JWT baseline", base_timings)):
        print(
            f"{label:28}{percentile(timings, 0.5) * 1000:10.2f}{percentile(timings, 0.99) * 1000:10.2f}"
            f"{statistics.fmean(timings) * 1000:10.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
