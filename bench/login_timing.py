"""Policy-login timing by case (checklist A9, issue 11 item 10): unknown policy, wrong birth date, right.

Sends ``--tries`` ``POST /api/auth/policy/start`` of each case, interleaved, against the real app
with the default code sender (the file outbox), and prints each case's median and p95 and the
largest difference of medians. Baseline in the same run: the unknown-policy case (no code sent).

    python -m bench.login_timing [--database-url postgresql://postgres@127.0.0.1:5432/test] [--tries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.login_latency import _seed, percentile
from server.app import create_app
from server.config import Settings, normalize_database_url
from server.db.migrate import upgrade


async def _measure(url: str, tries: int, data_dir: Path) -> dict[str, list[float]]:
    people = await _seed(url, tries)
    big = tries * 10
    settings = Settings(
        environment="test",
        data_dir=data_dir,
        database_url=url,
        jwt_secret="bench-secret-" + "t" * 40,
        login_starts_per_address_per_hour=big * 3,
        login_starts_per_person_per_hour=big,
        login_starts_per_policy_per_hour=big,
        log_level="WARNING",
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    timings: dict[str, list[float]] = {"unknown policy": [], "wrong birth date": [], "right": []}
    try:
        async with aiohttp.ClientSession(str(server.make_url(""))) as session:
            for index, (number, born, _phone) in enumerate(people):
                cases = {
                    "unknown policy": {"policy_number": f"NOPE-{index:06d}", "birth_date": born.isoformat()},
                    "wrong birth date": {"policy_number": number, "birth_date": born.replace(year=1950).isoformat()},
                    "right": {"policy_number": number, "birth_date": born.isoformat()},
                }
                for case in sorted(cases, key=lambda c: (index + hash(c)) % 3):
                    started = time.perf_counter()
                    async with session.post("/api/auth/policy/start", json=cases[case]) as response:
                        assert response.status == 200, await response.text()
                        await response.read()
                    timings[case].append(time.perf_counter() - started)
    finally:
        await server.close()
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--tries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            name = f"bench_timing_{uuid.uuid4().hex[:8]}"
            admin_url = normalize_database_url(args.database_url)
            admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
            async with admin.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        try:
            await asyncio.to_thread(upgrade, url)
            timings = await _measure(url, args.tries, Path(tmp) / "data")
        finally:
            if args.database_url:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await admin.dispose()
    print(f"{'case':<18}{'median ms':>10}{'p95 ms':>10}  ({args.tries} tries each)")
    medians = {}
    for case, values in timings.items():
        medians[case] = statistics.median(values) * 1000
        print(f"{case:<18}{medians[case]:>10.3f}{percentile(values, 0.95) * 1000:>10.3f}")
    spread = max(medians.values()) - min(medians.values())
    print(f"largest difference of medians: {spread:.3f} ms (aim < 0.2 ms); baseline = unknown policy")


if __name__ == "__main__":
    asyncio.run(main())
