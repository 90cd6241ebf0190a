"""A real coturn (Debian's ``turnserver``) per test, on free loopback ports, with a test configuration.

The test configuration takes the production file's peer rules and adds ``allowed-peer-ip=127.0.0.1``
only when a test relays between two loopback peers (production refuses loopback).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_CONF = REPO / "deploy" / "turnserver.conf"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for TCP and UDP right now."""
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", port))
            return port


def production_peer_rules() -> list[str]:
    """The ``denied-peer-ip`` and relay lines of the production configuration."""
    keep = ("denied-peer-ip=", "no-tcp-relay", "no-multicast-peers")
    return [line for line in PRODUCTION_CONF.read_text().splitlines() if line.startswith(keep)]


@dataclass
class Coturn:
    """A running coturn."""

    port: int
    tls_port: int
    secret: str
    cert: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Terminate, then kill."""
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_coturn(directory: Path, *, allow_loopback: bool) -> Coturn:
    """Start coturn on free ports; skipped if ``turnserver`` is missing (CI installs it: .ci/run)."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("turnserver (coturn) is not installed: .ci/run installs it")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port, tls_port = free_port(), free_port()
    base = random.randint(20_000, 60_000)
    secret = "turn-test-secret-" + str(random.getrandbits(64))
    log = directory / "turn.log"
    lines = [
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        f"listening-port={port}",
        f"tls-listening-port={tls_port}",
        f"min-port={base}",
        f"max-port={base + 200}",
        "fingerprint",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        "realm=telemed.test",
        "no-cli",
        "no-dtls",
        f"cert={cert}",
        f"pkey={key}",
        f"pidfile={directory / 'turn.pid'}",
        f"userdb={directory / 'turndb'}",
        f"log-file={log}",
        "simple-log",
        "verbose",
        *production_peer_rules(),
    ]
    if allow_loopback:
        lines += ["allow-loopback-peers", "allowed-peer-ip=127.0.0.1"]
    conf = directory / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Coturn(port, tls_port, secret, cert, process, log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"coturn exited: {log.read_text() if log.exists() else ''}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", tls_port), timeout=0.2),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return server
        time.sleep(0.05)
    server.stop()
    raise AssertionError("coturn did not start listening")
