"""The fault suite's own services: a throwaway PostgreSQL cluster, a Redis server, a silent proxy, servers.

Nothing here touches the shared PostgreSQL (5432) or Redis (6379): every service runs on a free
port of 127.0.0.1 under a temporary directory, and is stopped, restarted or killed by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.backends import REQUIRE_REAL

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "http://127.0.0.1:8080"
SECRET = "faults-test-secret-" + "z" * 40
ENABLED = REQUIRE_REAL or os.environ.get("TELEMED_TEST_FAULTS", "") == "1"


def require_fault_suite() -> None:
    """Skip visibly in the embedded pass; in the real pass (or TELEMED_TEST_FAULTS=1) the suite must run."""
    if not ENABLED:
        pytest.skip(
            "fault-injection suite: starts its own PostgreSQL and Redis; runs in CI's real pass "
            "(TELEMED_TEST_REQUIRE_REAL=1) or with TELEMED_TEST_FAULTS=1"
        )


def _missing(what: str) -> None:
    message = f"fault-injection suite needs {what}"
    if ENABLED:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    """Block until something accepts on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        path = shutil.which("initdb")
        if path is None:
            _missing("PostgreSQL's initdb and pg_ctl (/usr/lib/postgresql/*/bin)")
        return Path(str(path)).parent
    return found[-1]


class PgCluster:
    """``initdb`` + ``pg_ctl`` under a temporary directory, on a private port, trust auth for 127.0.0.1.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
    (``runuser -u postgres``) and lives in a directory that user owns.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="telemed-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                _missing("a non-root 'postgres' user to run initdb as (running as root)")
            self._user = "postgres"
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o700)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {result.stdout}\n{result.stderr}\n{self.tail()}")

    def tail(self) -> str:
        """The end of the server log (for failure messages)."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    def init(self) -> None:
        """Create the cluster (fsync off: a test cluster, durability is not what is tested here)."""
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8", "--locale=C.UTF-8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop (``fast`` closes every session; ``immediate`` is a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of one of its databases."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def cleanup(self) -> None:
        """Stop if running, then remove everything."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


async def new_database(cluster: PgCluster) -> str:
    """A fresh database in the cluster, migrated to head."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.db.migrate import upgrade

    name = f"faults_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    url = cluster.url(name)
    await asyncio.to_thread(upgrade, url)
    return url


# ---------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    """``redis-server --port N --save ''`` (no persistence: a restart loses everything, as a crash would)."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server")
        self.binary = str(binary)
        self.port = free_port()
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the same port as before and wait until it accepts."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        """Kill it (SIGKILL: connections are cut, nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class SilentProxy:
    """A TCP proxy in front of Redis that can go silent: connections stay open, nothing is forwarded.

    That is what a dropped network path looks like from both ends (no FIN, no RST), unlike a
    restart, which closes the connections and is noticed at once.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.silent = False
        self.dropped_bytes = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """Redis through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )
        for writer in (client_writer, upstream_writer):
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            if self.silent:
                self.dropped_bytes += len(data)  # dropped on the floor, the connection left open
                continue
            writer.write(data)
            await writer.drain()


# ---------------------------------------------------------------------------------------------
# Server processes and clients


def server_env(database_url: str, redis_url: str, prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of ``telemed serve`` for a fault test (background loops off unless asked)."""
    return {
        **os.environ,
        "TELEMED_DATABASE_URL": database_url,
        "TELEMED_REDIS_URL": redis_url,
        "TELEMED_REDIS_PREFIX": prefix,
        "TELEMED_JWT_SECRET": SECRET,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": str(data_dir),
        "TELEMED_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        "TELEMED_LOG_JSON": "false",
        "TELEMED_LOG_LEVEL": "WARNING",
        "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
        "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
        "TELEMED_HR_FREEZE_INTERVAL_SECONDS": "0",
        "TELEMED_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "0",
        **extra,
    }


class ServerProcess:
    """``python -m server.cli serve`` on a free port; stopped, or killed with SIGKILL by a test."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--skip-migrations"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        """The end of its log."""
        return self.log_path.read_text(errors="replace")[-4000:]

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 120) -> None:
        """Poll /readyz until it answers 200 (the failure carries the last status and the log's end)."""
        status = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server {self.name} exited early:\n{self.log_tail()}")
            status = await readyz(http, self)
            if status == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"server {self.name} not ready after {timeout}s (/readyz {status}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to Redis or the sockets."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate with a bounded wait, then kill."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


async def readyz(http: aiohttp.ClientSession, server: ServerProcess, timeout: float = 5) -> int:
    """The status of /readyz (0 when it does not answer within ``timeout``)."""
    try:
        async with asyncio.timeout(timeout), http.get(server.url + "/readyz") as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


class Client:
    """One WebSocket client: requests with replies, and every event kept in arrival order."""

    def __init__(self, name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.name = name
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                if data.get("type") == "result":
                    future = self._replies.pop(data.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(data)
                elif data.get("type") == "event":
                    self.events.append(data["event"])
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"{self.name}: socket closed"))

    @property
    def closed(self) -> bool:
        """Whether the socket has ended."""
        return self._reader.done()

    async def request(self, type_: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """Send a command; the whole ``result`` frame (success or error)."""
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "type": type_, **fields}))
        async with asyncio.timeout(timeout):
            return await future

    async def ok(self, type_: str, **fields: Any) -> dict[str, Any]:
        """A command that must succeed; its result."""
        frame = await self.request(type_, **fields)
        assert frame["success"], (self.name, type_, frame)
        return dict(frame["result"] or {})

    def messages(self, consultation_id: int) -> list[dict[str, Any]]:
        """Every ``chat.message`` event received for a consultation, in arrival order."""
        return [e for e in self.events if e.get("type") == "chat.message" and e["consultation_id"] == consultation_id]

    async def wait_messages(self, consultation_id: int, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """Wait until ``count`` distinct messages have arrived (then a moment more, to catch duplicates)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len({m["seq"] for m in self.messages(consultation_id)}) < count:
                    await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        return self.messages(consultation_id)

    async def close(self) -> None:
        """Close the socket."""
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


async def open_client(http: aiohttp.ClientSession, server: ServerProcess, token: str, name: str) -> Client:
    """Ticket over HTTP, then the socket's auth phase."""
    async with http.post(server.url + "/api/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        ticket = (await r.json())["ticket"]
    ws = await http.ws_connect(server.url + "/api/ws", headers={"Origin": ORIGIN})
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "auth_required"
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    reply = json.loads((await ws.receive(timeout=10)).data)
    assert reply["type"] == "auth_ok", reply
    return Client(name, ws)


async def patient_token(
    http: aiohttp.ClientSession, server: ServerProcess, data_dir: Path, policy_number: str, birth_date: str
) -> str:
    """Policy login with the code from the dev outbox."""
    async with http.post(
        server.url + "/api/auth/policy/start", json={"policy_number": policy_number, "birth_date": birth_date}
    ) as response:
        assert response.status == 200, await response.text()
        challenge = (await response.json())["challenge_id"]
    match = await _code_from_outbox(data_dir / "outbox.jsonl")
    async with http.post(
        server.url + "/api/auth/policy/verify", json={"challenge_id": challenge, "code": match.group(1)}
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["access_token"])


async def _code_from_outbox(path: Path, timeout: float = 15) -> re.Match[str]:
    """The newest code in the dev outbox; codes are sent from a queue after the answer, so wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            lines = path.read_text().splitlines()
            if lines:
                match = re.search(r"\b(\d{6})\b", json.loads(lines[-1])["text"])
                if match is not None:
                    return match
        if time.monotonic() > deadline:
            raise AssertionError(f"no code in {path} after {timeout}s")
        await asyncio.sleep(0.1)


async def staff_token(http: aiohttp.ClientSession, server: ServerProcess, username: str, password: str) -> str:
    """Staff login."""
    async with http.post(server.url + "/api/auth/login", json={"username": username, "password": password}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["access_token"])


class Ledger:
    """What one sender sent and what was acknowledged: the counts each fault test states."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.sent = 0  # chat.send frames, resends included
        self.refused: dict[str, int] = {}  # error code -> count
        self.acks: dict[str, int] = {}  # client_message_id -> seq
        self.duplicate_acks = 0

    async def send(self, client: Client, consultation_id: int, cmid: str, text: str) -> dict[str, Any]:
        """One attempt; the reply frame."""
        self.sent += 1
        frame = await client.request("chat.send", consultation_id=consultation_id, client_message_id=cmid, text=text)
        if frame["success"]:
            result = frame["result"]
            if cmid in self.acks:
                assert self.acks[cmid] == result["seq"], ("a resend got a different seq", cmid, result)
            self.acks[cmid] = result["seq"]
            self.duplicate_acks += bool(result["duplicate"])
        else:
            code = frame["error"]["code"]
            self.refused[code] = self.refused.get(code, 0) + 1
        return frame

    async def send_until_stored(
        self, client: Client, consultation_id: int, cmid: str, text: str, timeout: float = 30
    ) -> int:
        """Resend with the same client_message_id while the answer is ``unavailable``; the seq."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.send(client, consultation_id, cmid, text)
                if frame["success"]:
                    return int(frame["result"]["seq"])
                assert frame["error"]["code"] == "unavailable", frame
                await asyncio.sleep(0.2)


def counts_line(case: str, **counts: object) -> str:
    """The one line each fault test prints (and the README quotes)."""
    return f"[faults] {case}: " + ", ".join(f"{key}={value}" for key, value in counts.items())


@contextlib.contextmanager
def servers(*processes: ServerProcess) -> Iterator[tuple[ServerProcess, ...]]:
    """Stop every server at the end, whatever happened."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
