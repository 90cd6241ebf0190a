"""Deactivation, role change and unassignment reach every process's sockets at once (A6, B5, C5).

One mechanism for all of them, the one staff disable uses: the change revokes the subject's
sessions in the database and publishes ``session.revoked`` on each session's bus channel (or
``consultation.updated`` on the consultation's), and every process closes or drops its own
sockets within a second, not at the periodic re-check (60 s). Here the socket lives on one
process and the change is made on another; they share only the database and Redis.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update

from server.app import create_app
from server.channels import EVENT_CONSULTATION_UPDATED, consultation_channel
from server.clock import FixedClock
from server.config import Settings
from server.db.models import Consultation, InsuredPerson
from server.keys import context_key
from server.realtime.messages import CLOSE_AUTH
from server.services.records import coverage_end
from server.services.records.changes import Actor
from tests.backends import REDIS_URL, require_real_services
from tests.factories import Factories, bearer
from tests.fakes import RecordingSender
from tests.realtime.conftest import ChatSetup, WsClient, connect

WITHIN = 1.0  # seconds; the periodic re-check would take up to 60


@pytest.fixture
async def other(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FixedClock, sender: RecordingSender, tmp_path: Path
) -> TestClient:
    """A second server process: the same database and Redis, its own data folder and hub."""
    if not REDIS_URL:
        require_real_services("Redis (a bus shared by two processes)")
    return await aiohttp_client(
        create_app(settings.model_copy(update={"data_dir": tmp_path / "other"}), clock=clock, code_sender=sender)
    )


async def _closed_within(ws: WsClient, seconds: float) -> object:
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                assert time.monotonic() - started <= seconds
                return message.data if message.type is aiohttp.WSMsgType.CLOSE else ws.ws.close_code


async def test_a_role_change_on_one_process_closes_the_socket_on_another_A6_B5(
    client: TestClient, other: TestClient, factories: Factories
) -> None:
    admin = await factories.login_staff(client, await factories.staff("admin"))
    doctor = await factories.staff("doctor")
    socket = await connect(other, await factories.login_staff(other, doctor))
    changed = await client.put(f"/api/admin/staff/{doctor.id}/role", json={"role": "dispatcher"}, headers=bearer(admin))
    assert changed.status == 200, await changed.text()
    assert await _closed_within(socket, WITHIN) == CLOSE_AUTH


async def test_an_insured_persons_removal_closes_their_socket_on_another_process_A6_B5(
    client: TestClient, other: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    socket = await connect(other, chat_setup.patient_tokens)
    ctx = client.app[context_key]
    async with factories.session_factory() as session:
        await session.execute(
            update(InsuredPerson)
            .where(InsuredPerson.id == chat_setup.patient.id)
            .values(removed_on=ctx.clock.now().date())
        )
        await session.commit()
    report = await coverage_end.end_coverage_due(ctx, Actor(key="cli:test"))
    assert chat_setup.patient.id in report.persons
    assert await _closed_within(socket, WITHIN) == CLOSE_AUTH


async def test_an_unassigned_doctor_loses_the_consultation_on_another_process_at_once_C5(
    client: TestClient, other: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    doctor = await connect(other, chat_setup.doctor_tokens)
    subscription, _ = await doctor.subscribe(cid)
    successor = await factories.staff("doctor")
    async with factories.session_factory() as session:
        await session.execute(update(Consultation).where(Consultation.id == cid).values(doctor_id=successor.id))
        await session.commit()
    await client.app[context_key].bus.publish(
        consultation_channel(cid), {"type": EVENT_CONSULTATION_UPDATED, "consultation_id": cid, "status": "active"}
    )
    ended = await doctor.event(subscription, "subscription.ended", timeout=WITHIN)
    assert ended["reason"] == "no_access"
