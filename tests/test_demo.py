"""`telemed demo` end to end: a fresh data folder, one command, then a policy login over HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from server.security.otp import OutboxSender
from tests.fakes import outbox_code


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_ready(base: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else "demo exited"
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail("the demo did not become ready")


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_demo_command_serves_seeded_data_and_a_policy_login_opens_me(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
    env["TELEMED_DATA_DIR"] = str(tmp_path / "data")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "demo", "--port", str(port), "--insured", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base, process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/readyz") as response:
                ready = await response.json()
            assert ready["database_backend"] == "sqlite" and ready["bus_backend"] == "in-process"
            async with session.post(
                f"{base}/api/auth/policy/start", json={"policy_number": "VHI-CORP-0001", "birth_date": "1990-05-17"}
            ) as response:
                assert response.status == 200
                challenge = (await response.json())["challenge_id"]
            code = await outbox_code(tmp_path / "data" / "outbox.jsonl")
            async with session.post(
                f"{base}/api/auth/policy/verify", json={"challenge_id": challenge, "code": code}
            ) as response:
                assert response.status == 200
                token = (await response.json())["access_token"]
            async with session.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}) as response:
                me = await response.json()
            assert me["display_name"] == "Ivanova Anna"
            async with session.get(f"{base}/") as response:
                assert response.status == 200
                assert '<div id="app">' in await response.text()
        assert (tmp_path / "data" / "jwt-secret").stat().st_mode & 0o077 == 0  # generated, private
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert "demo logins" in output
    assert re.search(r"doctor\s+dr\.gp\d+\s+password demo-password\s+\(on duty now", output), output


async def test_outbox_sender_keeps_codes_out_of_the_log_unless_demo_D3(tmp_path: Path, caplog) -> None:
    now = datetime(2026, 6, 10, tzinfo=UTC)
    quiet = OutboxSender(tmp_path / "outbox.jsonl")
    with caplog.at_level(logging.INFO):
        await quiet.send("+79001234567", "Telemed login code: 123456.", now=now)
    assert "123456" not in caplog.text and "4567" in caplog.text
    assert quiet.read()[-1]["text"] == "Telemed login code: 123456."
    caplog.clear()
    demo = OutboxSender(tmp_path / "outbox.jsonl", log_codes=True)
    with caplog.at_level(logging.INFO):
        await demo.send("+79001234567", "Telemed login code: 654321.", now=now)
    assert "654321" in caplog.text


@pytest.mark.parametrize("moment", ["09:00", "11:50", "23:55"])
async def test_demo_prints_a_doctor_on_duty_at_that_moment_R11_2(database_url: str, moment: str) -> None:
    """Whatever the start time, the printed doctor is on duty for at least 30 more minutes, so a
    patient's request made right after `telemed demo` is offered to that login (R11.2 roster)."""
    from sqlalchemy import select

    from server.db.engine import make_engine, make_session_factory
    from server.db.models import DutyShift, StaffAccount
    from server.demo import seed_demo

    hour, minute = map(int, moment.split(":"))
    now = datetime(2026, 6, 10, hour, minute, tzinfo=UTC)
    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        report = await seed_demo(factory, now=now, corporate_insured=20)
        doctors = [login["login"] for login in report.logins if login["role"] == "doctor"]
        assert doctors and all("on duty now" in login["secret"] for login in report.logins if login["role"] == "doctor")
        async with factory() as session:
            for username in doctors:
                shifts = (
                    await session.execute(
                        select(DutyShift)
                        .join(StaffAccount, StaffAccount.id == DutyShift.doctor_id)
                        .where(StaffAccount.username == username, DutyShift.specialty == "general_practice")
                    )
                ).scalars()
                assert any(s.starts_at <= now and s.ends_at.timestamp() - now.timestamp() >= 1800 for s in shifts)
    finally:
        await engine.dispose()


def test_demo_corporate_premium_prices_registry_persons_at_the_registry_tariff_R1_4_R8_1() -> None:
    """Item 4 of issue 9: the 43 registry employees of 300 were priced at the dispatcher tariff (580,500 short)."""
    from decimal import Decimal

    from server.db.models import Program
    from server.demo import corporate_premium, is_demo_registry

    standard = Program(tariff_dispatcher=Decimal("42000.00"), tariff_registry=Decimal("55500.00"))
    assert sum(1 for index in range(300) if is_demo_registry(index)) == 43
    assert corporate_premium(standard, 300) == Decimal("42000.00") * 300 + Decimal("580500.00")
    assert corporate_premium(standard, 300) % 4 == 0  # four equal quarterly installments, to the kopeck
