"""The production stack as compose runs it, without Docker: TLS front -> nginx balancer -> two apps.

Real ``telemed migrate`` and two ``telemed serve`` processes with production settings and the
compose environment (database from parts, secrets from files, HTTP SMS sender to a fake gateway,
trusted proxy network, metrics on their own listener), Debian's nginx running
``deploy/nginx.conf`` and ``deploy/tls-front.conf`` with only addresses, ports and the
certificate folder substituted, and a certificate the test makes (``deploy/make_certs.py``).

"Outside" clients connect from 127.0.0.3 and 127.0.0.4; the proxies reach the apps from
127.0.0.1, the only trusted proxy address (``TELEMED_TRUSTED_PROXIES=127.0.0.1/32``). So the
app sees the outside address only if it was passed along the proxy chain correctly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from tests.backends import POSTGRES_URL, REDIS_URL, DatabaseFactory, delete_redis_prefix, require_real_services
from tests.deploy.make_certs_import import make_certs
from tests.deploy.stack import (
    DEPLOY,
    FakeSmsGateway,
    Nginx,
    TelemedProcess,
    free_port,
    render_nginx,
    run_telemed,
    wait_for_port,
)
from tests.factories import STAFF_PASSWORD, Factories
from tests.fakes import RecordingSender

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

CLIENT_A = "127.0.0.3"
CLIENT_B = "127.0.0.4"


@dataclass
class Stack:
    """Handles on every running part."""

    public_url: str
    http_redirect_port: int
    balancer_port: int
    apps: list[TelemedProcess]
    gateway: FakeSmsGateway
    ca_file: Path
    balancer: Nginx
    front: Nginx
    database_url: str

    def client(self, source: str = CLIENT_A) -> aiohttp.ClientSession:
        """An outside browser-like client: its own source address, trusting the test's CA."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=context)
        return aiohttp.ClientSession(connector=connector)


def compose_environment(
    tmp: Path, database_url: str, redis_prefix: str, gateway: FakeSmsGateway, public_url: str
) -> dict[str, str]:
    """The app environment of docker-compose.yml, with this machine's addresses and files."""
    secrets = tmp / "secrets"
    secrets.mkdir()
    for name in ("jwt_secret", "otp_pepper"):
        (secrets / name).write_text(os.urandom(32).hex() + "\n")
    (secrets / "sms_token").write_text(gateway.token + "\n")
    db = make_url(database_url)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELEMED_")}
    env.update(
        {
            "TELEMED_ENVIRONMENT": "production",
            "TELEMED_PUBLIC_URL": public_url,
            "TELEMED_DATABASE_HOST": db.host or "127.0.0.1",
            "TELEMED_DATABASE_PORT": str(db.port or 5432),
            "TELEMED_DATABASE_NAME": db.database or "",
            "TELEMED_DATABASE_USER": db.username or "postgres",
            "TELEMED_REDIS_URL": REDIS_URL,
            "TELEMED_REDIS_PREFIX": redis_prefix,
            "TELEMED_JWT_SECRET_FILE": str(secrets / "jwt_secret"),
            "TELEMED_OTP_PEPPER_FILE": str(secrets / "otp_pepper"),
            "TELEMED_CODE_SENDER": "http",
            "TELEMED_SMS_URL": gateway.url,
            "TELEMED_SMS_TOKEN_FILE": str(secrets / "sms_token"),
            "TELEMED_TRUSTED_PROXIES": "127.0.0.1/32",
            "TELEMED_HOST": "127.0.0.1",
            "TELEMED_METRICS_HOST": "127.0.0.1",
            "TELEMED_DATA_DIR": str(tmp / "data"),
            "TELEMED_LOG_LEVEL": "INFO",
            "TELEMED_LOG_JSON": "true",
        }
    )
    if db.password:
        (secrets / "postgres_password").write_text(db.password + "\n")
        env["TELEMED_DATABASE_PASSWORD_FILE"] = str(secrets / "postgres_password")
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Migrate (as the compose job), start two apps, the balancer and the TLS front: once per module.

    The tests below share it, in file order; the failover test, which kills a process, is last.
    """
    if not (POSTGRES_URL and REDIS_URL):
        require_real_services("PostgreSQL and Redis")
    tmp_path = tmp_path_factory.mktemp("stack")
    redis_prefix = f"telemed-deploy-{uuid.uuid4().hex[:12]}"
    database_url = await database_factory.new_database(migrated=False)
    gateway = FakeSmsGateway(token=uuid.uuid4().hex)
    await gateway.start()
    tls_port, redirect_port, balancer_port = free_port(), free_port(), free_port()
    public_url = f"https://127.0.0.1:{tls_port}"
    env = compose_environment(tmp_path, database_url, redis_prefix, gateway, public_url)
    migrated = run_telemed(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    apps = [TelemedProcess(env, tmp_path / f"app{n}.log", f"app{n}") for n in (1, 2)]
    certs = tmp_path / "front-certs"
    make_certs(certs, [], ["127.0.0.1"])
    (certs / "fullchain.pem").write_bytes((certs / "server.pem").read_bytes())
    (certs / "privkey.pem").write_bytes((certs / "server.key").read_bytes())
    balancer = front = None
    try:
        await asyncio.gather(*(app.wait_ready() for app in apps))
        balancer = Nginx(
            tmp_path / "balancer",
            render_nginx(
                DEPLOY / "nginx.conf",
                {
                    "server app1:8080": f"server 127.0.0.1:{apps[0].port}",
                    "server app2:8080": f"server 127.0.0.1:{apps[1].port}",
                    "listen 8080;": f"listen 127.0.0.1:{balancer_port};",
                },
            ),
        )
        front = Nginx(
            tmp_path / "front",
            render_nginx(
                DEPLOY / "tls-front.conf",
                {
                    "listen 80;": f"listen 127.0.0.1:{redirect_port};",
                    "listen 443 ssl http2;": f"listen 127.0.0.1:{tls_port} ssl http2;",
                    "server balancer:8080;": f"server 127.0.0.1:{balancer_port};",
                    "/etc/nginx/certs/": f"{certs}/",
                },
            ),
        )
        await asyncio.gather(wait_for_port(balancer_port), wait_for_port(tls_port), wait_for_port(redirect_port))
        yield Stack(
            public_url, redirect_port, balancer_port, apps, gateway, certs / "ca.pem", balancer, front, database_url
        )
    finally:
        for proxy in (front, balancer):
            if proxy is not None:
                proxy.stop()
        for app in apps:
            app.stop()
        await gateway.stop()
        await database_factory.drop(database_url)
        await delete_redis_prefix(redis_prefix)


class Socket:
    """A protocol client over one WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.buffer: list[dict[str, Any]] = []
        self.user = ""

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        msg_id = self.next_id
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type_, **fields}))
        async with asyncio.timeout(20):
            while True:
                frame = json.loads((await self.ws.receive()).data)
                if frame.get("type") == "result" and frame.get("id") == msg_id:
                    assert frame["success"], frame
                    return dict(frame["result"] or {})
                self.buffer.append(frame)

    async def messages(self, count: int) -> list[dict[str, Any]]:
        def is_message(frame: dict[str, Any]) -> bool:
            return frame.get("type") == "event" and frame["event"]["type"] == "chat.message"

        found = [f["event"] for f in self.buffer if is_message(f)]
        self.buffer = [f for f in self.buffer if not is_message(f)]
        async with asyncio.timeout(20):
            while len(found) < count:
                frame = json.loads((await self.ws.receive()).data)
                if is_message(frame):
                    found.append(frame["event"])
        return found


async def open_socket(session: aiohttp.ClientSession, base: str, ws_base: str, token: str, origin: str) -> Socket:
    """Ticket over HTTP(S), then the socket's auth phase."""
    async with session.post(base + "/api/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        ticket = (await response.json())["ticket"]
    ws = await session.ws_connect(ws_base + "/api/ws", headers={"Origin": origin})
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "auth_required"
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    ok = json.loads((await ws.receive(timeout=10)).data)
    assert ok["type"] == "auth_ok", ok
    socket = Socket(ws)
    socket.user = ok["user"]["key"]
    return socket


def remote_seen_for(apps: list[TelemedProcess], path: str) -> list[str]:
    """The client address the apps logged for requests to ``path``."""
    return [
        line["remote"] for app in apps for line in app.log_lines() if line.get("message", "").split(" ")[1:2] == [path]
    ]


async def wait_logged(apps: list[TelemedProcess], path: str) -> list[str]:
    async with asyncio.timeout(20):
        while not (seen := remote_seen_for(apps, path)):
            await asyncio.sleep(0.05)
    return seen


async def seed(database_url: str) -> tuple[Any, Any, Any, str]:
    engine = make_engine(database_url)
    factories = Factories(make_session_factory(engine), FixedClock(datetime.now(UTC)), RecordingSender())
    try:
        patient = await factories.insured()
        doctor = await factories.staff("doctor")
        await factories.shift(doctor)  # on duty, so the assignment loop keeps the consultation with them
        # The doctor accepted from a live socket, as in the product: a doctor never connected would see
        # the consultation go back to the queue at the first disconnect sweep (R11.8), before the test's
        # own sockets open (it did, about one run in four).
        await factories.online(doctor)
        consultation = await factories.consultation(patient, doctor, status="active")
        return patient, doctor, consultation, await factories.policy_number_of(patient)
    finally:
        await engine.dispose()


async def test_the_front_door_serves_tls_only_and_hides_operations_B1_I1(stack: Stack) -> None:
    """HTTP redirects to HTTPS, HSTS, no versions, /metrics unreachable, readiness without backend names."""
    redirect_url = f"http://127.0.0.1:{stack.http_redirect_port}/api/me?x=1"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT_A, 0))) as plain,
        plain.get(redirect_url, allow_redirects=False) as r,
    ):
        assert r.status == 301
        assert r.headers["Location"] == "https://127.0.0.1/api/me?x=1"
    async with stack.client() as client:
        async with client.get(stack.public_url + "/healthz") as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
            assert not any(ch.isdigit() for ch in response.headers.get("Server", ""))
        async with client.get(stack.public_url + "/readyz") as response:
            assert await response.json() == {"status": "ready"}
        for base in (stack.public_url, f"http://127.0.0.1:{stack.balancer_port}", stack.apps[0].url):
            async with client.get(base + "/metrics") as response:
                assert response.status == 404, base
                assert "telemed_http_requests_total" not in await response.text()
        # nginx's own errors are JSON with the request id, like the app's.
        too_big = io.BytesIO(b"x" * (9 * 1024 * 1024))
        async with client.post(stack.public_url + "/api/auth/login", data=too_big) as response:
            assert response.status == 413
            body = await response.json(content_type=None)
            assert body["error"]["code"] == "payload_too_large" and len(body["error"]["request_id"]) == 32
        async with client.post(
            f"http://127.0.0.1:{stack.balancer_port}/api/auth/login", data=io.BytesIO(b"x" * (9 * 1024 * 1024))
        ) as response:
            assert response.status == 413
            body = await response.json(content_type=None)
            assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    # The operations listener is on loopback, where the metrics are.
    async with (
        aiohttp.ClientSession() as local,
        local.get(f"http://127.0.0.1:{stack.apps[0].metrics_port}/metrics") as response,
    ):
        assert response.status == 200
        assert "telemed_http_requests_total" in await response.text()


async def test_client_addresses_pass_through_the_proxy_chain_and_forgeries_do_not(stack: Stack) -> None:
    """Right-most untrusted X-Forwarded-For through TLS front + balancer; ignored straight at an app port."""
    probe_front, probe_forged, probe_direct = (f"/api/probe-{uuid.uuid4().hex[:8]}" for _ in range(3))
    async with stack.client(CLIENT_A) as a, stack.client(CLIENT_B) as b:
        async with a.get(stack.public_url + probe_front) as response:
            assert response.status == 404
        async with b.get(stack.public_url + probe_forged, headers={"X-Forwarded-For": "198.51.100.1"}) as response:
            assert response.status == 404
        async with b.get(stack.apps[0].url + probe_direct, headers={"X-Forwarded-For": "198.51.100.2"}) as response:
            assert response.status == 404
    assert await wait_logged(stack.apps, probe_front) == [CLIENT_A]
    assert await wait_logged(stack.apps, probe_forged) == [CLIENT_B]
    assert await wait_logged(stack.apps, probe_direct) == [CLIENT_B]


async def test_keepalive_to_the_apps_reuses_connections(stack: Stack) -> None:
    """100 requests on one client connection leave a handful of balancer->app connections, not 100."""
    ports = {app.port for app in stack.apps}

    def app_connections() -> int:
        """TCP connections (any state, TIME-WAIT included) whose far end is an app port."""
        out = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, check=True).stdout
        peers = {f"127.0.0.1:{port}" for port in ports}
        return sum(1 for line in out.splitlines() if len(line.split()) >= 5 and line.split()[4] in peers)

    before = app_connections()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, local_addr=(CLIENT_A, 0))) as client:
        for _ in range(100):
            async with client.get(f"http://127.0.0.1:{stack.balancer_port}/healthz") as response:
                assert response.status == 200
    after = app_connections()
    print(f"balancer->app TCP connections (any state) before {before}, after 100 requests {after}")
    # Kept-alive connections stay open (so there is at least one), and there are few of them.
    assert after >= 1 and after - before <= 8


async def test_login_chat_across_processes_and_failover_after_sigkill_G3(stack: Stack) -> None:
    """Policy login (code via the HTTP SMS gateway), WSS with the public origin, chat, SIGKILL, resume."""
    patient, doctor, consultation, policy_number = await seed(stack.database_url)
    public, wss = stack.public_url, "wss" + stack.public_url.removeprefix("https")
    async with stack.client(CLIENT_A) as browser, aiohttp.ClientSession() as internal:
        stack.gateway.fail_next = 1  # the sender retries a 503 from the gateway
        async with browser.post(
            public + "/api/auth/policy/start",
            json={"policy_number": policy_number, "birth_date": patient.birth_date.isoformat()},
        ) as response:
            assert response.status == 200, await response.text()
            challenge = (await response.json())["challenge_id"]
        code = await stack.gateway.wait_code(patient.phone)
        async with browser.post(
            public + "/api/auth/policy/verify", json={"challenge_id": challenge, "code": code}
        ) as response:
            assert response.status == 200, await response.text()
            patient_token = (await response.json())["access_token"]
        async with browser.post(
            public + "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}
        ) as response:
            assert response.status == 200, await response.text()
            doctor_token = (await response.json())["access_token"]
        async with browser.post(
            public + "/api/auth/ws-ticket", headers={"Authorization": f"Bearer {patient_token}"}
        ) as r:
            assert (await r.json())["url"] == wss + "/api/ws"

        # Another origin (even this process's own port, a dev convenience) is refused in production (B2).
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(wss + "/api/ws", headers={"Origin": stack.apps[0].url})
        assert refused.value.status == 403

        # The patient through the front door; the doctor on each app process directly, with the
        # same public origin (the allowlist is identical on every process).
        patient_ws = await open_socket(browser, public, wss, patient_token, public)
        doctor_on = [
            await open_socket(internal, app.url, "ws" + app.url.removeprefix("http"), doctor_token, public)
            for app in stack.apps
        ]
        cid = consultation.id
        assert patient_ws.user == f"insured:{patient.id}"
        assert {ws.user for ws in doctor_on} == {f"staff:{doctor.id}"}
        await patient_ws.request("consultation.subscribe", consultation_id=cid, after_seq=0)
        for ws in doctor_on:
            await ws.request("consultation.subscribe", consultation_id=cid, after_seq=0)
        sent = await patient_ws.request("chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text="hi")
        assert sent["seq"] == 1
        for ws in doctor_on:
            [received] = await ws.messages(1)
            assert (received["seq"], received["text"]) == (1, "hi")
        reply = await doctor_on[1].request(
            "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text="hello, app2 here"
        )
        [theirs] = await patient_ws.messages(1)
        assert theirs["seq"] == reply["seq"] == 2

        # SIGKILL app1: the doctor's socket there dies; the patient's may have been on it.
        stack.apps[0].kill()
        with contextlib.suppress(Exception):
            await doctor_on[0].ws.receive(timeout=5)
        assert doctor_on[0].ws.closed or doctor_on[0].ws.close_code is not None
        for n in range(3):
            await doctor_on[1].request(
                "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text=f"after kill {n}"
            )
        # The patient's browser reconnects through the front door (retrying while nginx notices)
        # and resumes from the last seq it saw: exactly the missed messages, in order.
        await patient_ws.ws.close()
        async with asyncio.timeout(60):
            while True:
                try:
                    resumed = await open_socket(browser, public, wss, patient_token, public)
                    break
                except (AssertionError, aiohttp.ClientError):
                    await asyncio.sleep(0.2)
        result = await resumed.request("consultation.subscribe", consultation_id=cid, after_seq=2)
        assert result["last_seq"] == 5
        missed = await resumed.messages(3)
        assert [(m["seq"], m["text"]) for m in missed] == [(3 + n, f"after kill {n}") for n in range(3)]
        # Logins keep working through the front door with one process gone.
        for _ in range(4):
            async with browser.post(
                public + "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}
            ) as response:
                assert response.status == 200, await response.text()
        await resumed.ws.close()
        await doctor_on[1].ws.close()
