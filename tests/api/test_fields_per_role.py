"""Fields per role (checklist C2): snapshots of the JSON keys each role gets, from the written list in
``server/services/field_access.py`` (admin: no clinical content; dispatcher: complaints, no notes and
no ICD-10 code), enforced once for every route by the ``@endpoint`` projection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from server.domain.red_flags import CODES
from server.services import alerts
from server.services.context import ServiceContext
from tests.factories import Factories, bearer, json_keys

NO_FLAGS = dict.fromkeys(CODES, False)
NOTE = "ST elevation suspected, ambulance called"

CONSULTATION_KEYS_OF_PARTICIPANTS = {
    "id", "status", "channel", "specialty", "complaints", "requested_at", "patient_id", "patient_name",
    "doctor_id", "doctor_name", "offered_to_id", "offer_expires_at", "accepted_at", "completed_at",
    "cancelled_at", "cancel_reason", "insured_event_id", "queue_position", "estimated_wait_minutes",
    "doctors_on_duty", "doctor_on_duty", "notice", "summary", "urgent", "wait_basis", "escalated", "addenda",
}  # fmt: skip
CONSULTATION_KEYS_OF_ADMIN = CONSULTATION_KEYS_OF_PARTICIPANTS - {"complaints", "summary", "addenda"}
CONSULTATION_DECISION_SUBJECT_OF_DISPATCHER = {
    "consultation_id", "insured_event_id", "service_used_id", "outcome", "referral_route", "dispatch_request_id",
}  # fmt: skip
EMERGENCY_DETAILS_OF_DISPATCHER = {"patient_name", "phone", "city", "doctor_note", "doctor_name", "instruction"}
EMERGENCY_DETAILS_OF_ADMIN = EMERGENCY_DETAILS_OF_DISPATCHER - {"doctor_note"}


async def _completed_emergency(client: TestClient[Any, Any], factories: Factories) -> tuple[int, int, dict[str, str]]:
    """A consultation completed with outcome emergency (R10.1): notes, an ICD-10 code and an alert."""
    doctor = await factories.staff("doctor", specialties=["general_practice"])
    await factories.shift(doctor, specialty="general_practice", hours=12)
    await factories.online(doctor)
    person = await factories.insured(city="Kazan")
    patient = bearer(await factories.login_insured(client, person))
    staff = bearer(await factories.login_staff(client, doctor))
    body = {"channel": "text", "specialty": "general_practice", "complaints": "chest pain", "red_flags": NO_FLAGS}
    created = await (await client.post("/api/consultations", json=body, headers=patient)).json()
    assert (await client.post(f"/api/consultations/{created['id']}/accept", headers=staff)).status == 200
    done = await client.post(
        f"/api/consultations/{created['id']}/complete",
        json={"notes": NOTE, "icd10_code": "I21.9", "outcome": "emergency"},
        headers=staff,
    )
    assert done.status == 200, await done.text()
    return created["id"], person.id, {"patient": patient["Authorization"], "doctor": staff["Authorization"]}


async def test_c2_each_role_gets_its_own_keys_of_a_consultation(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """The patient and the doctor see the whole consultation; an admin sees no complaints, notes or code."""
    consultation_id, _person_id, tokens = await _completed_emergency(client, factories)
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))
    url = f"/api/consultations/{consultation_id}"
    for who, headers in (
        ("patient", {"Authorization": tokens["patient"]}),
        ("doctor", {"Authorization": tokens["doctor"]}),
    ):
        seen = await (await client.get(url, headers=headers)).json()
        assert set(seen) == CONSULTATION_KEYS_OF_PARTICIPANTS, who
        assert seen["summary"]["icd10_code"] == "I21.9" and seen["summary"]["notes"] == NOTE
    response = await client.get(url, headers=admin)
    assert response.status == 200
    text = await response.text()
    assert set(json.loads(text)) == CONSULTATION_KEYS_OF_ADMIN
    assert "I21.9" not in text and NOTE not in text and "chest pain" not in text


async def test_c2_the_dispatcher_sees_complaints_but_no_icd10_code_in_decision_facts(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """The completed consultation's decision (R11.3) reaches the dispatcher without its ICD-10 code."""
    _consultation_id, person_id, _tokens = await _completed_emergency(client, factories)
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    response = await client.get(f"/api/dispatch/persons/{person_id}/coverage", headers=dispatcher)
    assert response.status == 200
    text = await response.text()
    history = json.loads(text)
    assert set(history) == {"card", "events", "requests", "decisions"}
    [decision] = [d for d in history["decisions"] if d["kind"] == "telemedicine_consultation"]
    assert set(decision["subject"]) == CONSULTATION_DECISION_SUBJECT_OF_DISPATCHER
    assert all(set(reason) <= {"rule", "message", "facts"} for reason in decision["reasons"])
    assert not json_keys(history) & {"icd10_code", "icd10_description", "notes", "diagnosis"}
    assert "I21.9" not in text and NOTE not in text
    assert any(event["complaints"] == "chest pain" for event in history["events"])  # approvals need them


async def test_c2_duty_alerts_carry_the_note_to_dispatchers_and_nothing_clinical_to_admins(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    """The emergency alert (R11.7): the dispatcher gets the doctor's note for the ambulance, never the
    ICD-10 code; an admin neither; the live event carries only what both may see."""
    subscription = ctx.bus.subscribe([alerts.duty_alerts_channel()])
    try:
        await asyncio.sleep(0.05)  # let a Redis subscription settle
        await _completed_emergency(client, factories)
        channel, live = "", {}
        while channel != alerts.duty_alerts_channel():  # a Redis reconnect's RESYNC may come first
            channel, live = await asyncio.wait_for(subscription.get(), 5)
    finally:
        subscription.close()
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))
    [for_dispatcher] = await (await client.get("/api/dispatch/alerts", headers=dispatcher)).json()
    [for_admin] = await (await client.get("/api/dispatch/alerts", headers=admin)).json()
    assert set(for_dispatcher["details"]) == EMERGENCY_DETAILS_OF_DISPATCHER
    assert for_dispatcher["details"]["doctor_note"] == NOTE
    assert set(for_admin["details"]) == EMERGENCY_DETAILS_OF_ADMIN
    assert set(live["alert"]["details"]) == EMERGENCY_DETAILS_OF_ADMIN
    assert set(for_dispatcher) == set(for_admin)


async def test_c2_the_openapi_document_says_which_fields_a_role_may_not_get(client: TestClient[Any, Any]) -> None:
    """Fields hidden from some role are not required in the schema, so every role's answer conforms."""
    document = await (await client.get("/api/openapi.json")).json()
    required = set(document["components"]["schemas"]["ConsultationView"]["required"])
    assert required == CONSULTATION_KEYS_OF_ADMIN
