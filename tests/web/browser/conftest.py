"""Browser tests: Debian's Chromium driven by Playwright against a real `telemed demo` server.

They run only inside a loopback-only network namespace (``unshare -n``), started by
``tests/web/test_browser_suite.py`` with ``TELEMED_BROWSER_NETNS=1``, so that Chromium and the
server can reach nothing but 127.0.0.1. Collected directly without that variable, this folder
is ignored (the default run still executes it through the suite test, never skips it).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import outbox_code

if os.environ.get("TELEMED_BROWSER_NETNS") != "1":
    collect_ignore_glob = ["test_*.py"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"


@dataclass
class DemoServer:
    """A `telemed demo` process on a free loopback port, with the logins it printed."""

    base: str
    data_dir: Path
    doctors: list[str]
    insured_number: str
    insured_birth_date: str
    output: list[str] = field(default_factory=list)

    def outbox_lines(self) -> int:
        """How many messages the demo outbox holds now (count before asking for a new code)."""
        path = self.data_dir / "outbox.jsonl"
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    def latest_code(self, after_lines: int = 0, timeout: float = 10.0) -> str:
        """The newest one-time code in the demo outbox (what `telemed outbox --last 1` shows).

        The server answers ``policy/start`` first and its background queue writes the code a
        moment later, so this waits (bounded) for a line beyond ``after_lines``, reusing the
        async helper of the other tests. It runs on its own thread: Playwright's sync API owns
        this thread's event loop.
        """
        path = self.data_dir / "outbox.jsonl"
        with ThreadPoolExecutor(max_workers=1) as pool:
            wait = outbox_code(path, after_lines=after_lines, timeout=timeout)
            return pool.submit(asyncio.run, wait).result()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The one-command demo exactly as a new user runs it (dev mode, SQLite, in-process bus)."""
    yield from _run_demo(tmp_path_factory.mktemp("demo-data"), {})


@pytest.fixture(scope="module")
def idle_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """A second demo whose sockets close as idle after 3 s (A10), for the session-end notice."""
    yield from _run_demo(tmp_path_factory.mktemp("idle-demo-data"), {"TELEMED_WS_IDLE_SECONDS": "3"})


def _run_demo(data: Path, extra_env: dict[str, str], insured: int = 30) -> Iterator[DemoServer]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
    env.update(extra_env)
    env["TELEMED_DATA_DIR"] = str(data)
    env["TELEMED_ALLOWED_ORIGINS"] = f"http://127.0.0.1:{port}"
    env["TELEMED_RTC_HOST_ADDRESSES"] = "127.0.0.1"  # the echo peer's ICE candidates stay on loopback
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "demo", "--port", str(port), "--insured", str(insured)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith("serving on"):
            break
    doctors = re.findall(r"^\s*doctor\s+(dr\.\S+)\s.*on duty now", "".join(output), re.MULTILINE)
    printed = re.search(
        r"insured number ([0-9 ]{12,16}) \(on the card\), birth date (\d{4}-\d\d-\d\d)", "".join(output)
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    server = DemoServer(
        base=base,
        data_dir=data,
        doctors=doctors,
        insured_number=printed.group(1).strip() if printed else "",
        insured_birth_date=printed.group(2) if printed else "",
        output=output,
    )
    # Keep draining the log so the server never blocks on a full pipe.
    import threading

    drain = threading.Thread(target=lambda: [output.append(x) for x in process.stdout or []], daemon=True)
    drain.start()
    try:
        assert doctors and printed, "".join(output)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(timeout=5)
        process.stdout.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def browser_asking(playwright: Any) -> Iterator[Any]:
    """Chromium that asks for camera/microphone like a real one (no --use-fake-ui-for-media-stream):
    a context then gets only the permissions the test grants, the others are refused."""
    args = [a for a in CHROMIUM_ARGS if a != "--use-fake-ui-for-media-stream"]
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
