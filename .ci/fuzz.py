"""Schema-driven fuzzing of the real server on PostgreSQL + Redis (issue 11 item 4, checklist I3).

Creates a throwaway database, seeds the demo, starts ``telemed serve`` on a free port and runs
schemathesis (every check on) for a bounded time per role: insured, doctor, dispatcher, admin.
Prints the requests and 5xx answers per role; exits 1 if any answer was a 5xx.

    python .ci/fuzz.py --database-url postgresql://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/0 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
ROLES = ("insured", "doctor", "dispatcher", "admin")
STAFF = {"doctor": "dr.gp1", "dispatcher": "dispatcher", "admin": "admin"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(url: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _token(base: str, role: str, data_dir: Path, insured: tuple[str, str]) -> str:
    if role != "insured":
        return _post(f"{base}/api/auth/login", {"username": STAFF[role], "password": "demo-password"})["access_token"]
    started = _post(f"{base}/api/auth/policy/start", {"insured_number": insured[0], "birth_date": insured[1]})
    line = (data_dir / "outbox.jsonl").read_text().splitlines()[-1]
    code = re.search(r"\b(\d{6})\b", json.loads(line)["text"])
    assert code is not None
    return _post(f"{base}/api/auth/policy/verify", {"challenge_id": started["challenge_id"], "code": code.group(1)})[
        "access_token"
    ]


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    base_url, _, _ = args.database_url.rpartition("/")
    database_url = f"{base_url}/{name}"
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    work = Path(tempfile.mkdtemp(prefix="telemed-fuzz-"))
    data_dir = work / "data"
    port = _free_port()
    env = {
        **os.environ,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": str(data_dir),
        "TELEMED_DATABASE_URL": database_url,
        "TELEMED_REDIS_URL": args.redis_url,
        "TELEMED_REDIS_PREFIX": name,
        "TELEMED_LOG_LEVEL": "WARNING",
        # The fuzzer is one address hammering the logins: lift the per-address limits for it.
        "TELEMED_LOGIN_STARTS_PER_ADDRESS_PER_HOUR": "1000000",
        "TELEMED_FAILED_LOGINS_PER_ADDRESS_PER_HOUR": "1000000",
    }
    seeded = subprocess.run(
        [sys.executable, "-m", "server.cli", "seed", "--insured", "30"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(
        r"insured number (\d{4} \d{4} \d{4}) \(on the card\), birth date (\d{4}-\d{2}-\d{2})", seeded.stdout
    )
    assert found, seeded.stdout
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--skip-migrations"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    failed = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        rows = []
        for role in ROLES:
            token = _token(base, role, data_dir, (found.group(1).replace(" ", ""), found.group(2)))
            har = work / f"{role}.har"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"{base}/api/openapi.json",
                    "--checks",
                    "all",
                    "--max-time",
                    str(args.seconds),
                    "--workers",
                    "2",
                    "-H",
                    f"Authorization: Bearer {token}",
                    "--exclude-path",
                    "/api/auth/logout",
                    "--exclude-path",
                    "/api/ws",
                    "--report",
                    "har",
                    "--report-har-path",
                    str(har),
                    "--request-timeout",
                    "20",
                ],
                cwd=work,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
            statuses = [int(e["response"]["status"]) for e in entries]
            errors = [
                (e["request"]["method"], e["request"]["url"][:120])
                for e in entries
                if int(e["response"]["status"]) >= 500
            ]
            rows.append((role, len(statuses), len(errors)))
            for method, url in errors[:10]:
                print(f"  5xx as {role}: {method} {url}")
            failed = failed or bool(errors) or not statuses
        print(f"{'role':<12}{'requests':>10}{'5xx':>6}")
        for role, count, errors_count in rows:
            print(f"{role:<12}{count:>10}{errors_count:>6}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if failed:
        print(f"server log: {work / 'server.log'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
