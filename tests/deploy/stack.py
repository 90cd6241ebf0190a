"""The deployed shape without Docker: real ``telemed`` processes, Debian's nginx, a fake SMS gateway.

Everything listens on 127.0.0.1 on ports chosen at run time. The nginx configurations are the
repository's own files with only addresses, ports and the certificate folder substituted
(``render_nginx``), wrapped in a test-made main configuration with its own prefix, pid, logs
and temporary folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render_nginx(source: Path, substitutions: dict[str, str]) -> str:
    """The repository's nginx file with exact substitutions; each must occur (the file is not drifting)."""
    text = source.read_text()
    for old, new in substitutions.items():
        assert old in text, f"{old!r} not in {source.name}: the test and the shipped file disagree"
        text = text.replace(old, new)
    return text


class Nginx:
    """Debian's nginx running one site file under its own prefix in ``workdir``."""

    def __init__(self, workdir: Path, site: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "site.conf").write_text(site)
        temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (workdir / "nginx.conf").write_text(
            f"""{user}worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {workdir}/site.conf;
}}
"""
        )
        check = subprocess.run(
            [NGINX, "-t", "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        with (workdir / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [NGINX, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def stop(self) -> None:
        """Quit nginx (TERM, then KILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


async def wait_for_port(port: int, timeout: float = 20) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)


class TelemedProcess:
    """``telemed serve --skip-migrations`` (as in compose) with a given environment."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.env = {**env, "TELEMED_PORT": str(self.port), "TELEMED_METRICS_PORT": str(self.metrics_port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--skip-migrations"],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        """The app port itself (what the balancer talks to)."""
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 120) -> None:
        """Poll the operations listener's detailed readiness until database and bus answer."""
        async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited early:\n{self.log_path.read_text()[-4000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
                if isinstance(value, dict):
                    lines.append(value)
        return lines

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, sockets dropped mid-stream."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate with a bounded wait, then kill."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def run_telemed(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a one-shot ``telemed`` command (``migrate``) as the compose job does."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class FakeSmsGateway:
    """The documented SMS gateway contract, served in the test's own event loop."""

    token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "try again"}, status=503)
        self.messages.append(await request.json())
        return web.json_response({"accepted": True})

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Close the listener."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """Where the app posts messages."""
        return f"http://127.0.0.1:{self.port}/send"

    async def wait_code(self, phone: str, timeout: float = 10.0) -> str:
        """The newest code sent to ``phone``, waiting for it: the app answers first, then sends (A9)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                return self.last_code(phone)
            except AssertionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    def last_code(self, phone: str) -> str:
        """The newest six-digit code sent to ``phone``."""
        for message in reversed(self.messages):
            if message["to"] == phone:
                found = re.search(r"\b(\d{6})\b", message["text"])
                if found:
                    return found.group(1)
        raise AssertionError(f"no code reached the gateway for {phone}: {self.messages}")
