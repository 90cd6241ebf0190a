"""A two-process chat scene shared by the restart and kill cases: patient on A, doctor on B."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from server.db.models import Consultation, ConsultationMessage
from tests.factories import STAFF_PASSWORD
from tests.faults.conftest import Scene
from tests.faults.harness import Client, Ledger, ServerProcess, open_client, patient_token, staff_token


@dataclass
class Chat:
    """Two people on two processes and what each sent."""

    http: aiohttp.ClientSession
    scene: Scene
    a: ServerProcess
    b: ServerProcess
    patient: Client
    doctor: Client
    patient_token: str
    doctor_token: str
    p: Ledger = field(default_factory=lambda: Ledger("patient"))
    d: Ledger = field(default_factory=lambda: Ledger("doctor"))

    @property
    def cid(self) -> int:
        """The consultation."""
        return self.scene.consultation_id

    async def exchange(self, label: str, count: int = 2) -> None:
        """Each side sends ``count`` messages (resending while unavailable)."""
        for n in range(count):
            await self.p.send_until_stored(self.patient, self.cid, f"{label}-p{n}", f"patient {label} {n}")
            await self.d.send_until_stored(self.doctor, self.cid, f"{label}-d{n}", f"doctor {label} {n}")

    async def close(self) -> None:
        """Close both sockets."""
        for client in (self.patient, self.doctor):
            if not client.closed:
                await client.close()


async def open_chat(http: aiohttp.ClientSession, scene: Scene, a: ServerProcess, b: ServerProcess) -> Chat:
    """Both servers ready, the patient logged in on A and the doctor on B, both subscribed."""
    await asyncio.gather(a.wait_ready(http), b.wait_ready(http))
    p_token = await patient_token(http, a, scene.data_dir, scene.policy_number, scene.birth_date)
    d_token = await staff_token(http, b, scene.doctor_username, STAFF_PASSWORD)
    patient = await open_client(http, a, p_token, "patient")
    doctor = await open_client(http, b, d_token, "doctor")
    await patient.ok("consultation.subscribe", consultation_id=scene.consultation_id, after_seq=0)
    await doctor.ok("consultation.subscribe", consultation_id=scene.consultation_id, after_seq=0)
    return Chat(http, scene, a, b, patient, doctor, p_token, d_token)


async def stored_counts(scene: Scene) -> tuple[dict[str, int], int, str]:
    """client_message_id -> rows stored, the consultation's last_seq and status."""
    async with scene.factories.session_factory() as session:
        rows = (
            await session.execute(
                select(ConsultationMessage.client_message_id, func.count())
                .where(ConsultationMessage.consultation_id == scene.consultation_id)
                .group_by(ConsultationMessage.client_message_id)
            )
        ).all()
        consultation = (
            await session.execute(
                select(Consultation.last_seq, Consultation.status).where(Consultation.id == scene.consultation_id)
            )
        ).one()
    return {cmid: count for cmid, count in rows}, int(consultation.last_seq), str(consultation.status)


def delivered_once(received: list[dict[str, object]], expected_seqs: set[int]) -> tuple[int, int]:
    """(distinct expected seqs received, duplicates) of one side's events."""
    seqs = [int(str(m["seq"])) for m in received]
    return len(set(seqs) & expected_seqs), len(seqs) - len(set(seqs))


def log_dir(scene: Scene) -> Path:
    """Where the server logs go."""
    return scene.data_dir.parent
