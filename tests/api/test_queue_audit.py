"""Queue reads show names and complaints: each read is audited, one row per patient shown (D1, issue 10)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.db.models import AuditEvent, DispatchRequest
from tests.factories import Factories, bearer


async def _audited(factories: Factories, action: str) -> list[tuple[str, int | None]]:
    async with factories.session_factory() as session:
        rows = (
            await session.execute(select(AuditEvent.actor, AuditEvent.patient_id).where(AuditEvent.action == action))
        ).all()
    return [(actor, patient) for actor, patient in rows]


async def test_reading_the_doctors_queue_is_audited_per_patient_shown_r11_8(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    doctor = await factories.staff("doctor")
    await factories.shift(doctor)
    patients = [await factories.insured(), await factories.insured()]
    for patient in patients:
        await factories.consultation(patient, doctor, status="active")
    tokens = await factories.login_staff(client, doctor)
    response = await client.get("/api/doctor/queue", headers=bearer(tokens))
    assert response.status == 200, await response.text()
    assert len((await response.json())["active"]) == 2
    rows = await _audited(factories, "doctor.queue.read")
    assert sorted(rows) == sorted((f"staff:{doctor.id}", p.id) for p in patients)


async def test_reading_the_dispatch_queue_is_audited_per_patient_shown_d1(
    client: TestClient[Any, Any], factories: Factories, clock: Any
) -> None:
    person = await factories.insured()
    await factories.add(
        DispatchRequest(
            insured_person_id=person.id,
            source="insured",
            complaints="knee pain after a fall",
            requested_services=[],
            status="open",
            created_at=clock.now(),
        )
    )
    dispatcher = await factories.staff("dispatcher")
    tokens = await factories.login_staff(client, dispatcher)
    response = await client.get("/api/dispatch/requests", headers=bearer(tokens))
    assert response.status == 200, await response.text()
    assert [item["insured_person_id"] for item in await response.json()] == [person.id]
    assert await _audited(factories, "dispatch.queue.read") == [(f"staff:{dispatcher.id}", person.id)]
