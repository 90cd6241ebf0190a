"""The routes the browser app needs: my access log, ICD-10 search, the doctor's patient card."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.factories import Factories, bearer


async def test_patient_sees_every_access_to_their_data_by_others_D1(client: TestClient, factories: Factories) -> None:
    """The doctor's read of the consultation is listed with the doctor's name; my own reads are not."""
    patient = await factories.insured()
    doctor = await factories.staff("doctor", full_name="Dr. Anna Terapevt")
    consultation = await factories.consultation(patient, doctor)
    doctor_tokens = await factories.login_staff(client, doctor)
    assert (await client.get(f"/api/consultations/{consultation.id}", headers=bearer(doctor_tokens))).status == 200
    patient_tokens = await factories.login_insured(client, patient)
    assert (await client.get(f"/api/consultations/{consultation.id}", headers=bearer(patient_tokens))).status == 200
    response = await client.get("/api/me/access-log", headers=bearer(patient_tokens))
    assert response.status == 200
    events = (await response.json())["events"]
    assert events and all(e["actor_role"] != "insured" for e in events)
    read = next(e for e in events if e["action"] == "consultation.read")
    assert read["actor_name"] == "Dr. Anna Terapevt" and read["actor_role"] == "doctor"
    assert read["resource_id"] == str(consultation.id) and read["result"] == "allowed"


async def test_access_log_is_only_for_insured_persons(client: TestClient, factories: Factories) -> None:
    doctor = await factories.staff("doctor")
    tokens = await factories.login_staff(client, doctor)
    assert (await client.get("/api/me/access-log", headers=bearer(tokens))).status == 403


async def test_icd10_search_by_code_and_by_name(client: TestClient, factories: Factories) -> None:
    tokens = await factories.login_staff(client, await factories.staff("doctor"))
    by_code = await (await client.get("/api/icd10", params={"q": "j069"}, headers=bearer(tokens))).json()
    assert by_code["results"] == [{"code": "J06.9", "description": "Acute upper respiratory infection, unspecified"}]
    by_name = await (await client.get("/api/icd10", params={"q": "upper respiratory"}, headers=bearer(tokens))).json()
    assert "J06.9" in [r["code"] for r in by_name["results"]]
    empty = await client.get("/api/icd10", params={"q": ""}, headers=bearer(tokens))
    assert empty.status == 422


async def test_patient_card_only_for_the_consultations_doctor_and_audited(
    client: TestClient, factories: Factories
) -> None:
    patient = await factories.insured(full_name="Petrova Maria")
    doctor = await factories.staff("doctor")
    other = await factories.staff("doctor")
    consultation = await factories.consultation(patient, doctor)
    tokens = await factories.login_staff(client, doctor)
    response = await client.get(f"/api/consultations/{consultation.id}/patient-card", headers=bearer(tokens))
    assert response.status == 200
    card = await response.json()
    assert card["full_name"] == "Petrova Maria" and card["age"] > 0 and "telemedicine_left" in card
    assert not {"letters", "open_events", "visits", "decisions"} & set(card)  # no more than the consultation needs
    other_tokens = await factories.login_staff(client, other)
    refused = await client.get(f"/api/consultations/{consultation.id}/patient-card", headers=bearer(other_tokens))
    assert refused.status == 404
    patient_tokens = await factories.login_insured(client, patient)
    log = await (await client.get("/api/me/access-log", headers=bearer(patient_tokens))).json()
    assert any(e["action"] == "consultation.patient_card" for e in log["events"])
