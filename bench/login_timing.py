"""Policy-login timing by case (checklist A9, issue 11 item 10): unknown policy, wrong birth date, right.

Sends ``--tries`` ``POST /api/auth/policy/start`` of each case, interleaved, against the real
server in its own process with the default code sender (the file outbox, drained in the
background), and prints each case's median and p95, the largest difference of medians, and the
median of the paired (same round) differences, which a loaded machine disturbs less. Baseline in
the same run: the unknown-policy case (no code sent).

    python -m bench.login_timing [--database-url postgresql://postgres@127.0.0.1:5432/test] [--tries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.login_latency import _seed, percentile
from server.config import normalize_database_url
from server.db.migrate import upgrade
from tests.test_multiprocess import ServerProcess


async def _measure(url: str, tries: int, data_dir: Path) -> dict[str, list[float]]:
    """The server runs in its own process, as in production: its background code sender must not
    run inside the client's timed window, which it would if both shared one event loop."""
    people = await _seed(url, tries)
    big = tries * 10
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": str(data_dir),
        "TELEMED_DATABASE_URL": url,
        "TELEMED_REDIS_URL": "",
        "TELEMED_JWT_SECRET": "bench-secret-" + "t" * 40,
        "TELEMED_LOGIN_STARTS_PER_ADDRESS_PER_HOUR": str(big * 3),
        "TELEMED_LOGIN_STARTS_PER_PERSON_PER_HOUR": str(big),
        "TELEMED_LOGIN_STARTS_PER_POLICY_PER_HOUR": str(big),
        "TELEMED_LOG_LEVEL": "WARNING",
        "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
        "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
        "TELEMED_HR_FREEZE_INTERVAL_SECONDS": "0",
        "TELEMED_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "0",
    }
    server = ServerProcess(env, data_dir / "server.log")
    timings: dict[str, list[float]] = {"unknown policy": [], "wrong birth date": [], "right": []}
    try:
        async with aiohttp.ClientSession(server.url) as session:
            await server.wait_ready(session, timeout=180)
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
        sent = 0
        for _ in range(100):  # the background sender drains the last codes after their answers
            sent = len((data_dir / "outbox.jsonl").read_text().splitlines())
            if sent >= len(people):
                break
            await asyncio.sleep(0.05)
        assert sent == len(people), f"{sent} codes sent for {len(people)} right logins"
    finally:
        server.stop()
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
    # The three cases of one round run back to back, so their differences cancel most of the drift
    # a loaded machine adds; the median of those paired differences is the steadier figure.
    base = timings["unknown policy"]
    for case in ("wrong birth date", "right"):
        paired = statistics.median(b - a for a, b in zip(base, timings[case], strict=True)) * 1000
        print(f"median paired difference, {case} - unknown policy: {paired:+.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
