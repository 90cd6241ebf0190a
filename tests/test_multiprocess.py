"""Two real server processes on one PostgreSQL and one Redis: a patient on A and a doctor on B chat and resume.

This is the proof that delivery never depends on which process a client is connected to: the
bus only says "consultation C reached seq N" and each process reads what it lacks from the
database (checklist G3, G6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from tests.backends import POSTGRES_URL, REDIS_URL, DatabaseFactory, require_real_services
from tests.factories import STAFF_PASSWORD, Factories
from tests.fakes import RecordingSender, outbox_code

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two server processes start on a shared 2-core machine

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1:8080"
SECRET = "multiprocess-test-secret-" + "y" * 40


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``python -m server.cli serve`` on a free port, terminated (and killed if need be) at the end."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
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

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 90) -> None:
        """Poll /readyz until the database and the bus answer."""
        async with asyncio.timeout(timeout):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

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


class Socket:
    """A minimal protocol client over a real connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.buffer: list[dict[str, Any]] = []

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        msg_id = self.next_id
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type_, **fields}))
        async with asyncio.timeout(10):
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
        async with asyncio.timeout(10):
            while len(found) < count:
                frame = json.loads((await self.ws.receive()).data)
                if frame.get("type") == "event" and frame["event"]["type"] == "chat.message":
                    found.append(frame["event"])
        return found

    async def quiet(self, wait: float = 0.5) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while True:
                    frame = json.loads((await self.ws.receive()).data)
                    assert not (frame.get("type") == "event" and frame["event"]["type"] == "chat.message"), frame


async def open_socket(session: aiohttp.ClientSession, server: ServerProcess, access_token: str) -> Socket:
    """Ticket over HTTP, then the socket's auth phase."""
    headers = {"Authorization": f"Bearer {access_token}"}
    async with session.post(server.url + "/api/auth/ws-ticket", headers=headers) as response:
        assert response.status == 200, await response.text()
        ticket = (await response.json())["ticket"]
    ws = await session.ws_connect(server.url + "/api/ws", headers={"Origin": ORIGIN})
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "auth_required"
    await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "auth_ok"
    return Socket(ws)


@pytest.fixture
async def real_database(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A fresh migrated PostgreSQL database (skips visibly without the real services)."""
    if not (POSTGRES_URL and REDIS_URL):
        require_real_services("PostgreSQL and Redis")
    url = await database_factory.new_database()
    yield url
    await database_factory.drop(url)


async def test_patient_on_process_a_and_doctor_on_process_b_chat_then_resume_without_loss_G3_G6(
    real_database: str, redis_prefix: str, tmp_path: Path
) -> None:
    engine = make_engine(real_database)
    factories = Factories(make_session_factory(engine), FixedClock(datetime.now(UTC)), RecordingSender())
    try:
        patient = await factories.insured()
        doctor = await factories.staff("doctor")
        consultation = await factories.consultation(patient, doctor, status="active")
        policy_number = await factories.policy_number_of(patient)
    finally:
        await engine.dispose()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "TELEMED_DATABASE_URL": real_database,
        "TELEMED_REDIS_URL": REDIS_URL,
        "TELEMED_REDIS_PREFIX": redis_prefix,
        "TELEMED_JWT_SECRET": SECRET,
        "TELEMED_ENVIRONMENT": "test",
        "TELEMED_DATA_DIR": str(data_dir),
        "TELEMED_ALLOWED_ORIGINS": json.dumps([ORIGIN]),  # pydantic-settings reads lists as JSON
        "TELEMED_LOG_JSON": "false",
        "TELEMED_LOG_LEVEL": "WARNING",
        "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
        "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
    }
    server_a = ServerProcess(env, tmp_path / "a.log")
    server_b = ServerProcess(env, tmp_path / "b.log")
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(server_a.wait_ready(http), server_b.wait_ready(http))
            async with http.post(
                server_a.url + "/api/auth/policy/start",
                json={"policy_number": policy_number, "birth_date": patient.birth_date.isoformat()},
            ) as response:
                assert response.status == 200, await response.text()
                challenge = (await response.json())["challenge_id"]
            code = await outbox_code(data_dir / "outbox.jsonl")
            async with http.post(
                server_a.url + "/api/auth/policy/verify", json={"challenge_id": challenge, "code": code}
            ) as response:
                assert response.status == 200, await response.text()
                patient_token = (await response.json())["access_token"]
            async with http.post(
                server_b.url + "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}
            ) as response:
                assert response.status == 200, await response.text()
                doctor_token = (await response.json())["access_token"]

            cid = consultation.id
            patient_ws = await open_socket(http, server_a, patient_token)
            doctor_ws = await open_socket(http, server_b, doctor_token)
            await patient_ws.request("consultation.subscribe", consultation_id=cid, after_seq=0)
            await doctor_ws.request("consultation.subscribe", consultation_id=cid, after_seq=0)

            sent = await patient_ws.request(
                "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text="hello from A"
            )
            assert sent["seq"] == 1
            [received] = await doctor_ws.messages(1)
            assert received["text"] == "hello from A" and received["sender"] == f"insured:{patient.id}"
            reply = await doctor_ws.request(
                "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text="hello from B"
            )
            assert reply["seq"] == 2
            [theirs] = await patient_ws.messages(1)
            assert (theirs["seq"], theirs["text"]) == (2, "hello from B")

            # The patient drops; the doctor sends three more; the patient comes back on B and resumes.
            last_seen = theirs["seq"]
            await patient_ws.ws.close()
            for n in range(3):
                await doctor_ws.request(
                    "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text=f"while away {n}"
                )
            async with http.post(
                server_a.url + "/api/auth/ws-ticket", headers={"Authorization": f"Bearer {patient_token}"}
            ) as response:
                assert response.status == 200
            patient_again = await open_socket(http, server_b, patient_token)
            result = await patient_again.request("consultation.subscribe", consultation_id=cid, after_seq=last_seen)
            assert result["last_seq"] == 5
            missed = await patient_again.messages(3)
            assert [m["seq"] for m in missed] == [3, 4, 5]
            assert [m["text"] for m in missed] == [f"while away {n}" for n in range(3)]
            await patient_again.quiet()
            # And live again, across processes the other way round.
            await patient_again.request(
                "chat.send", consultation_id=cid, client_message_id=uuid.uuid4().hex, text="back"
            )
            [back] = await doctor_ws.messages(1)  # the doctor's own messages were acknowledged, not echoed
            assert (back["seq"], back["text"]) == (6, "back")
            await patient_again.ws.close()
            await doctor_ws.ws.close()
    finally:
        server_a.stop()
        server_b.stop()
