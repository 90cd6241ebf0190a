"""Nobody waits unseen, nobody is dropped, the record is append-only: through the HTTP API with the clock moved.

Issue 10 items 1, 2, 6, 7, 8, 10, 11, 14, 15 (R11.2, R11.6-R11.9, checklist E1).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AuditEvent, Consultation, DutyAlert, StaffAccount
from server.domain.red_flags import CODES
from server.services.context import ServiceContext
from tests.factories import Factories, bearer

NO = dict.fromkeys(CODES, False)


def _request(specialty: str = "general_practice", complaints: str = "mild cough", **extra: Any) -> dict[str, Any]:
    return {"channel": "text", "specialty": specialty, "complaints": complaints, "red_flags": NO, **extra}


async def _doctor(factories: Factories, specialty: str = "general_practice", *, online: bool = True) -> StaffAccount:
    doctor = await factories.staff("doctor", specialties=[specialty])
    await factories.shift(doctor, specialty=specialty, hours=12)
    if online:
        await factories.online(doctor)
    return doctor


async def _patient(client: TestClient[Any, Any], factories: Factories, **fields: Any) -> dict[str, str]:
    return bearer(await factories.login_insured(client, await factories.insured(**fields)))


async def _row(session_factory: async_sessionmaker[AsyncSession], consultation_id: int) -> Consultation:
    async with session_factory() as session:
        row = await session.get(Consultation, consultation_id)
        assert row is not None
        return row


async def _alerts(session_factory: async_sessionmaker[AsyncSession]) -> list[DutyAlert]:
    async with session_factory() as session:
        return list((await session.execute(select(DutyAlert).order_by(DutyAlert.id))).scalars())


async def _cycle(ctx: ServiceContext) -> None:
    from server.services import consultations

    await consultations.run_assignment_cycle(ctx)


async def test_r11_7_a_decline_sticks_the_only_dermatologist_is_not_offered_it_again_at_once(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext, clock: FixedClock, session_factory: Any
) -> None:
    """Item 1: the decline holds for the round; the patient is told and the duty team alerted."""
    dermatologist = await _doctor(factories, "dermatology")
    patient = await _patient(client, factories)
    staff = bearer(await factories.login_staff(client, dermatologist))
    created = await (
        await client.post("/api/consultations", json=_request("dermatology", "rash"), headers=patient)
    ).json()
    assert created["status"] == "offered"
    for _ in range(3):
        declined = await client.post(f"/api/consultations/{created['id']}/decline", headers=staff)
        assert declined.status in (200, 409)
        await _cycle(ctx)
        row = await _row(session_factory, created["id"])
        assert (row.status, row.offered_to_id) == ("queued", None)
    seen = await (await client.get(f"/api/consultations/{created['id']}", headers=patient)).json()
    assert seen["escalated"] is True and "duty team has been alerted" in seen["notice"]
    assert [(a.kind, a.reason) for a in await _alerts(session_factory)] == [("escalation", "round_exhausted")]


async def test_r11_7_lapsing_offers_escalate_after_a_bound_and_are_not_endless(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext, clock: FixedClock, session_factory: Any
) -> None:
    """Item 2: two silent cardiologists; offers stop alternating, the request escalates, offline doctors get none."""
    first, second = await _doctor(factories, "cardiology"), await _doctor(factories, "cardiology")
    offline = await _doctor(factories, "cardiology", online=False)
    patient = await _patient(client, factories)
    created = await (
        await client.post("/api/consultations", json=_request("cardiology", "palpitations"), headers=patient)
    ).json()
    offered_to: list[int] = []
    for _ in range(6 * 60 // ctx.settings.offer_timeout_seconds):  # six minutes of timeouts
        row = await _row(session_factory, created["id"])
        if row.offered_to_id is not None:
            offered_to.append(row.offered_to_id)
        clock.advance(timedelta(seconds=ctx.settings.offer_timeout_seconds))
        await _cycle(ctx)
    assert offline.id not in offered_to
    assert len(offered_to) <= 4  # two rounds at most in six minutes, not one offer per timeout forever
    assert set(offered_to) == {first.id, second.id}
    row = await _row(session_factory, created["id"])
    assert row.escalated_at is not None and row.lapses >= 2
    assert [a.kind for a in await _alerts(session_factory)] == ["escalation"]
    async with session_factory() as session:
        actions = set((await session.execute(select(AuditEvent.action))).scalars())
    assert {"consultation.offer", "consultation.offer_lapsed"} <= actions  # item 12: offers and lapses audited


async def test_r11_6_red_flags_go_first_with_the_103_instruction_and_a_live_alert(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext, session_factory: Any
) -> None:
    """Item 7: "crushing chest pain" is not third behind "mild cough"."""
    first_gp = await factories.staff("doctor")
    await factories.shift(first_gp, hours=12)
    await factories.online(first_gp)
    await factories.consultation(await factories.insured(), first_gp)
    await factories.consultation(await factories.insured(), first_gp)
    await factories.consultation(await factories.insured(), first_gp)  # the only GP is full
    coughs = [
        await (
            await client.post("/api/consultations", json=_request(), headers=await _patient(client, factories))
        ).json()
        for _ in range(2)
    ]
    assert [c["queue_position"] for c in coughs] == [1, 2]
    urgent_patient = await _patient(client, factories)
    flags = {**NO, "chest_pain": True}
    told = await client.post(
        "/api/consultations",
        json=_request(complaints="crushing chest pain, sweating", red_flags=flags),
        headers=urgent_patient,
    )
    assert told.status == 422
    error = (await told.json())["error"]
    assert error["code"] == "red_flags_call_emergency" and error["rules"] == ["R11.6"]
    assert error["details"]["phones"] == ["103", "112"]
    made = await client.post(
        "/api/consultations",
        json=_request(complaints="crushing chest pain, sweating", red_flags=flags, confirm_urgent=True),
        headers=urgent_patient,
    )
    assert made.status == 201, await made.text()
    body = await made.json()
    assert body["urgent"] is True and body["queue_position"] == 1
    [alert] = [a for a in await _alerts(session_factory) if a.kind == "red_flag"]
    assert alert.consultation_id == body["id"]
    assert alert.details["red_flags"] == ["chest_pain"]
    # Any on-duty doctor may take it at once, even one it was not offered to.
    taker = bearer(await factories.login_staff(client, first_gp))
    taken = await client.post(f"/api/consultations/{body['id']}/accept", headers=taker)
    assert taken.status == 200, await taken.text()
    assert (await taken.json())["status"] == "active"


async def test_r11_6_the_checklist_is_required(client: TestClient[Any, Any], factories: Factories) -> None:
    patient = await _patient(client, factories)
    missing = await client.post(
        "/api/consultations",
        json={"channel": "text", "specialty": "general_practice", "complaints": "cough"},
        headers=patient,
    )
    assert missing.status == 400 and (await missing.json())["error"]["code"] == "red_flags_required"
    checklist = await (await client.get("/api/consultations/red-flags", headers=patient)).json()
    assert [q["code"] for q in checklist["questions"]] == list(CODES)


async def test_an_emergency_outcome_alerts_the_dispatchers_at_once_with_phone_city_and_note(
    client: TestClient[Any, Any], factories: Factories, session_factory: Any
) -> None:
    """Item 8 (R11.7): completing with outcome emergency creates an urgent item, listed and pushed live."""
    doctor = await _doctor(factories)
    person = await factories.insured(city="Kazan")
    patient = bearer(await factories.login_insured(client, person))
    staff = bearer(await factories.login_staff(client, doctor))
    created = await (
        await client.post("/api/consultations", json=_request(complaints="chest pain"), headers=patient)
    ).json()
    assert (await client.post(f"/api/consultations/{created['id']}/accept", headers=staff)).status == 200
    done = await client.post(
        f"/api/consultations/{created['id']}/complete",
        json={"notes": "ST elevation suspected, ambulance called", "icd10_code": "I21.9", "outcome": "emergency"},
        headers=staff,
    )
    assert done.status == 200, await done.text()
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    listed = await (await client.get("/api/dispatch/alerts", headers=dispatcher)).json()
    [alert] = listed
    assert alert["kind"] == "emergency" and alert["consultation_id"] == created["id"]
    assert alert["details"]["phone"] == person.phone and alert["details"]["city"] == "Kazan"
    assert alert["details"]["doctor_note"] == "ST elevation suspected, ambulance called"


async def test_r11_2_nobody_on_duty_alerts_live_and_offers_general_practice(
    client: TestClient[Any, Any], factories: Factories, session_factory: Any
) -> None:
    """Item 6: the notice says "alerted" only because an alert row exists; GP or a call-back are offered."""
    patient = await _patient(client, factories)
    body = await (
        await client.post("/api/consultations", json=_request("neurology", "numb fingers"), headers=patient)
    ).json()
    assert body["estimated_wait_minutes"] is None and body["wait_basis"] == "unknown"
    assert "general practitioner" in body["notice"] and "alerted" in body["notice"]
    [alert] = await _alerts(session_factory)
    assert (alert.kind, alert.reason) == ("escalation", "nobody_on_duty")
    assert alert.details["options"] == ["general_practice", "call_back"]


async def test_r11_7_the_next_patient_of_a_full_dermatologist_is_not_told_zero(
    client: TestClient[Any, Any], factories: Factories, clock: FixedClock
) -> None:
    """Item 5: 3 of 3 busy: an honest wait, not position 1 / wait 0."""
    dermatologist = await _doctor(factories, "dermatology")
    for minutes in (2, 4, 6):
        await factories.consultation(
            await factories.insured(),
            dermatologist,
            specialty="dermatology",
            accepted_at=clock.now() - timedelta(minutes=minutes),
        )
    patient = await _patient(client, factories)
    body = await (
        await client.post("/api/consultations", json=_request("dermatology", "itchy rash"), headers=patient)
    ).json()
    assert body["status"] == "queued" and body["queue_position"] == 1
    assert body["estimated_wait_minutes"] == 9 and body["wait_basis"] == "estimated"


async def test_r11_9_categories_are_refused_with_their_sub_codes_and_addenda_keep_the_original(
    client: TestClient[Any, Any], factories: Factories, clock: FixedClock
) -> None:
    """Items 10 and 11, and item 14's notes of "."."""
    doctor = await _doctor(factories)
    person = await factories.insured()
    patient = bearer(await factories.login_insured(client, person))
    staff = bearer(await factories.login_staff(client, doctor))
    created = await (await client.post("/api/consultations", json=_request(), headers=patient)).json()
    await client.post(f"/api/consultations/{created['id']}/accept", headers=staff)
    url = f"/api/consultations/{created['id']}/complete"
    category = await client.post(url, json={"notes": "URTI", "icd10_code": "J06", "outcome": "advice"}, headers=staff)
    assert category.status == 422
    error = (await category.json())["error"]
    assert error["code"] == "icd10_not_specific" and error["rules"] == ["R11.9"]
    assert [s["code"] for s in error["details"]["suggestions"]] == ["J06.0", "J06.8", "J06.9"]
    dot = await client.post(url, json={"notes": ".", "icd10_code": "J06.9", "outcome": "advice"}, headers=staff)
    assert dot.status == 400 and (await dot.json())["error"]["code"] == "notes_not_meaningful"
    done = await client.post(
        url, json={"notes": "Rest and fluids.", "icd10_code": "J06.9", "outcome": "advice"}, headers=staff
    )
    assert done.status == 200
    clock.advance(timedelta(hours=20))
    staff = bearer(await factories.login_staff(client, doctor))
    patient = bearer(await factories.login_insured(client, person))
    added = await client.post(
        f"/api/consultations/{created['id']}/addenda", json={"text": "Swab: negative for strep."}, headers=staff
    )
    assert added.status == 201
    seen = await (await client.get(f"/api/consultations/{created['id']}", headers=patient)).json()
    assert seen["summary"]["notes"] == "Rest and fluids."
    assert [a["text"] for a in seen["addenda"]] == ["Swab: negative for strep."]


async def test_accepting_after_the_patient_cancelled_is_409_invalid_transition(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """Item 14: as documented, not 404."""
    doctor = await _doctor(factories)
    patient = await _patient(client, factories)
    created = await (await client.post("/api/consultations", json=_request(), headers=patient)).json()
    assert created["status"] == "offered"
    assert (await client.post(f"/api/consultations/{created['id']}/cancel", json={}, headers=patient)).status == 200
    late = await client.post(
        f"/api/consultations/{created['id']}/accept", headers=bearer(await factories.login_staff(client, doctor))
    )
    assert late.status == 409 and (await late.json())["error"]["code"] == "invalid_transition"


async def test_a_request_without_consent_is_refused_with_a_clear_code(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """Item 15 (checklist E1): 428 consent_required with the texts to show."""
    patient = await _patient(client, factories, consented=False)
    refused = await client.post("/api/consultations", json=_request(), headers=patient)
    assert refused.status == 428
    error = (await refused.json())["error"]
    assert error["code"] == "consent_required" and error["details"]["missing"] == ["telemedicine", "health_data"]


async def test_a_waiting_patient_whose_place_changes_is_told_without_asking(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    """Item 9 (R11.7): position 2 -> 1 is pushed as ``queue.position`` to the patient's channel."""
    import asyncio

    doctor = await _doctor(factories)
    for _ in range(3):
        await factories.consultation(await factories.insured(), doctor)  # the only GP is full
    first_tokens = await _patient(client, factories)
    first = await (await client.post("/api/consultations", json=_request(), headers=first_tokens)).json()
    person = await factories.insured()
    second_tokens = bearer(await factories.login_insured(client, person))
    second = await (await client.post("/api/consultations", json=_request(), headers=second_tokens)).json()
    assert second["queue_position"] == 2
    subscription = ctx.bus.subscribe([f"user:insured:{person.id}"])
    try:
        await asyncio.sleep(0.05)
        assert (
            await client.post(f"/api/consultations/{first['id']}/cancel", json={}, headers=first_tokens)
        ).status == 200
        await _cycle(ctx)  # the background loop, nudged by the change (its interval is 0 in tests)
        while True:
            _, message = await asyncio.wait_for(subscription.get(), 5)
            if message.get("type") == "queue.position" and message["position"] == 1:
                break
        assert message["consultation_id"] == second["id"] and message["wait_basis"] == "estimated"
    finally:
        subscription.close()
