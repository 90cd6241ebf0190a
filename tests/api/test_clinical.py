"""Clinical-safety routes: consents (E1), duty alerts (R11.7), hand-over (R11.8), addenda (R11.9), audit check (D2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AuditEvent, Consultation
from server.domain.consent import CURRENT_TEXTS
from server.services import alerts
from server.services import consultation_safety as safety
from server.services.context import ServiceContext
from tests.factories import Factories, bearer


async def _actions(session_factory: async_sessionmaker[AsyncSession]) -> list[str]:
    async with session_factory() as session:
        return list((await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars())


async def test_consents_are_given_from_the_texts_shown_and_withdrawn_with_an_audit_row(
    client: TestClient[Any, Any], factories: Factories, clock: FixedClock, session_factory: Any
) -> None:
    """Checklist E1: versioned ru/en texts; who, when, which version, from where; withdrawal audited."""
    patient = bearer(await factories.login_insured(client, await factories.insured(consented=False)))
    screen = await (await client.get("/api/me/consents", headers=patient)).json()
    assert screen["missing"] == ["telemedicine", "health_data"]
    assert all(t["ru"] and t["en"] and t["version"] for t in screen["texts"])
    outdated = await client.post(
        "/api/me/consents", json={"kind": "telemedicine", "version": "1999-01-01", "language": "en"}, headers=patient
    )
    assert outdated.status == 400 and (await outdated.json())["error"]["code"] == "consent_version_outdated"
    for kind, text in CURRENT_TEXTS.items():
        given = await client.post(
            "/api/me/consents",
            json={"kind": kind.value, "version": text.version, "language": "ru"},
            headers={**patient, "User-Agent": "test-browser"},
        )
        assert given.status == 201, await given.text()
        body = await given.json()
        assert body["given_from"] == "127.0.0.1" and body["version"] == text.version
    assert (await (await client.get("/api/me/consents", headers=patient)).json())["missing"] == []
    withdrawn = await client.post("/api/me/consents/withdraw", json={"kind": "health_data"}, headers=patient)
    assert withdrawn.status == 200 and len((await withdrawn.json())["withdrawn"]) == 1
    assert (await (await client.get("/api/me/consents", headers=patient)).json())["missing"] == ["health_data"]
    actions = await _actions(session_factory)
    assert "consent.give.telemedicine" in actions and "consent.withdraw.health_data" in actions
    hr = bearer(await factories.login_staff(client, await factories.staff("hr")))
    assert (await client.get("/api/me/consents", headers=hr)).status == 403  # HR never sees consents


async def test_r11_7_duty_alerts_are_listed_for_dispatchers_and_admins_and_taken_once(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    person = await factories.insured()
    consultation = await factories.consultation(person, status="queued", specialty="dermatology")
    async with ctx.uow() as uow:
        row = await uow.session.get(Consultation, consultation.id)
        assert row is not None
        await alerts.raise_alert_txn(
            ctx, uow, kind="escalation", reason="nobody_on_duty", consultation=row, person=person
        )
        await uow.commit()
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))
    listed = await (await client.get("/api/dispatch/alerts", headers=dispatcher)).json()
    assert [(a["kind"], a["consultation_id"]) for a in listed] == [("escalation", consultation.id)]
    assert listed[0]["details"]["phone"] == person.phone and listed[0]["details"]["city"] == person.city
    taken = await client.post(f"/api/dispatch/alerts/{listed[0]['id']}/acknowledge", headers=admin)
    assert taken.status == 200
    again = await client.post(f"/api/dispatch/alerts/{listed[0]['id']}/acknowledge", headers=dispatcher)
    assert again.status == 409
    assert await (await client.get("/api/dispatch/alerts", headers=dispatcher)).json() == []
    doctor = bearer(await factories.login_staff(client, await factories.staff("doctor")))
    assert (await client.get("/api/dispatch/alerts", headers=doctor)).status == 403


async def test_r11_8_hand_over_to_a_connected_colleague_on_duty_with_a_note(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext, session_factory: Any
) -> None:
    doctor, colleague, offline = [await factories.staff("doctor") for _ in range(3)]
    for account in (doctor, colleague, offline):
        await factories.shift(account, hours=12)
    consultation = await factories.consultation(await factories.insured(), doctor)
    await safety.doctor_connected(ctx, "s1", colleague.id)
    staff = bearer(await factories.login_staff(client, doctor))
    url = f"/api/consultations/{consultation.id}/handover"
    meaningless = await client.post(url, json={"to_doctor_id": colleague.id, "note": "."}, headers=staff)
    assert meaningless.status == 400
    not_connected = await client.post(url, json={"to_doctor_id": offline.id, "note": "BP stable"}, headers=staff)
    assert not_connected.status == 409
    assert (await not_connected.json())["error"]["code"] == "handover_target_unavailable"
    done = await client.post(
        url, json={"to_doctor_id": colleague.id, "note": "BP 150/95, ECG photo pending"}, headers=staff
    )
    assert done.status == 200, await done.text()
    assert (await done.json())["to_doctor_id"] == colleague.id
    async with session_factory() as session:
        row = await session.get(Consultation, consultation.id)
        assert row is not None and row.status == "active" and row.doctor_id == colleague.id
    assert "consultation.handover" in await _actions(session_factory)


async def test_r11_9_addendum_route_for_the_treating_doctor(
    client: TestClient[Any, Any], factories: Factories, clock: FixedClock
) -> None:
    doctor, other = await factories.staff("doctor"), await factories.staff("doctor")
    done = await factories.consultation(await factories.insured(), doctor, status="completed", notes="Rest.")
    clock.advance(timedelta(days=1))
    url = f"/api/consultations/{done.id}/addenda"
    created = await client.post(
        url, json={"text": "Lab: CRP 3 mg/l."}, headers=bearer(await factories.login_staff(client, doctor))
    )
    assert created.status == 201 and (await created.json())["created_at"].startswith(clock.now().date().isoformat())
    foreign = await client.post(
        url, json={"text": "Not mine."}, headers=bearer(await factories.login_staff(client, other))
    )
    assert foreign.status == 404


async def test_admin_runs_the_audit_check_over_http(client: TestClient[Any, Any], factories: Factories) -> None:
    """Checklist D2: the admin route reports the chain and pins its head."""
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))
    await client.get(
        "/api/dispatch/alerts", headers=bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    )
    await client.get("/api/me/consents", headers=admin)  # a refused role is audited too
    pinned = await (await client.post("/api/admin/audit/checkpoint", headers=admin)).json()
    assert pinned["ok"] is True and pinned["checkpoints"] == 1 and pinned["events"] >= 1
    report = await (await client.get("/api/admin/audit/verify", headers=admin)).json()
    assert report["ok"] is True and report["problem"] is None
