"""Consultations through the public HTTP API: request, offer, accept, complete and write-back (R10.2, R11, R6.2)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bus import RESYNC
from server.channels import (
    EVENT_CONSULTATION_OFFERED,
    EVENT_CONSULTATION_UPDATED,
    EVENT_DISPATCH_QUEUE_CHANGED,
    EVENT_QUEUE_CHANGED,
    consultation_channel,
    dispatch_queue_channel,
    doctors_queue_channel,
    user_channel,
)
from server.clock import FixedClock
from server.db.models import (
    AttachmentLetter,
    Consultation,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    InsuredPerson,
    Payment,
    Policy,
    ServiceUsed,
    StaffAccount,
)
from server.services.context import ServiceContext
from tests.factories import Factories, bearer

NO_RED_FLAGS = {
    "chest_pain": False,
    "breathing": False,
    "stroke_signs": False,
    "heavy_bleeding": False,
    "loss_of_consciousness": False,
    "self_harm": False,
}
REQUEST = {
    "channel": "text",
    "specialty": "general_practice",
    "complaints": "sore throat and fever since yesterday",
    "red_flags": NO_RED_FLAGS,
}
REFERRAL = {
    "notes": "Viral pharyngitis likely; rule out strep.",
    "icd10_code": "J02.9",
    "outcome": "referral",
    "referral_specialty": "otolaryngology",
    "referral_services": ["ENT examination", "throat swab culture"],
}


async def _doctor_on_duty(factories: Factories, **fields: Any) -> StaffAccount:
    doctor = await factories.staff("doctor", **fields)
    await factories.online(doctor)
    specialties = fields.get("specialties", ["general_practice"])
    for specialty in specialties:
        await factories.shift(doctor, specialty=specialty, hours=12)
    return doctor


async def _count(session_factory: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def _request(client: TestClient, tokens: dict[str, Any], **overrides: Any) -> Any:
    return await client.post("/api/consultations", json={**REQUEST, **overrides}, headers=bearer(tokens))


async def _active_consultation(
    client: TestClient, factories: Factories, person: InsuredPerson | None = None
) -> tuple[int, dict[str, Any], dict[str, Any], StaffAccount, InsuredPerson]:
    person = person or await factories.insured()
    doctor = await _doctor_on_duty(factories)
    patient = await factories.login_insured(client, person)
    staff = await factories.login_staff(client, doctor)
    created = await _request(client, patient)
    assert created.status == 201, await created.text()
    consultation_id = (await created.json())["id"]
    accepted = await client.post(f"/api/consultations/{consultation_id}/accept", headers=bearer(staff))
    assert accepted.status == 200, await accepted.text()
    return consultation_id, patient, staff, doctor, person


async def test_request_offer_accept_complete_with_referral_writes_back_r11_3(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R11.3: the consultation joins an insured event, counts as a service used and opens a dispatcher request."""
    person = await factories.insured()
    doctor = await _doctor_on_duty(factories, full_name="Dr. Anna Smirnova")
    patient = await factories.login_insured(client, person)
    staff = await factories.login_staff(client, doctor)

    before = await (await client.get("/api/consultations/allowance", headers=bearer(patient))).json()
    assert before["left"] == 12 and before["used"] == 0

    created = await _request(client, patient)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["status"] == "offered"  # offered at once: a doctor is on duty
    assert body["queue_position"] == 1
    assert body["estimated_wait_minutes"] == 0
    assert body["doctor_on_duty"] is True
    assert body["offer_expires_at"] is None  # the patient does not see the doctor's deadline
    consultation_id = body["id"]

    queue = await (await client.get("/api/doctor/queue", headers=bearer(staff))).json()
    assert [offer["id"] for offer in queue["offers"]] == [consultation_id]
    assert queue["offers"][0]["offer_expires_at"] is not None
    assert queue["offers"][0]["patient_name"] == person.full_name
    assert queue["on_duty_specialties"] == ["general_practice"]

    accepted = await client.post(f"/api/consultations/{consultation_id}/accept", headers=bearer(staff))
    assert accepted.status == 200
    assert (await accepted.json())["status"] == "active"
    seen = await (await client.get(f"/api/consultations/{consultation_id}", headers=bearer(patient))).json()
    assert seen["doctor_name"] == "Dr. Anna Smirnova"
    assert seen["queue_position"] is None

    completed = await client.post(
        f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff)
    )
    assert completed.status == 200, await completed.text()
    summary = (await completed.json())["summary"]
    assert summary["referral_route"] == "dispatcher_request"
    assert summary["dispatch_request_id"] is not None

    async with session_factory() as session:
        consultation = await session.get(Consultation, consultation_id)
        assert consultation is not None and consultation.status == "completed"
        event = await session.get(InsuredEvent, consultation.insured_event_id)
        assert event is not None
        assert (event.component, event.source, event.status, event.covered) == (
            "telemedicine",
            "consultation",
            "open",
            True,
        )
        used = (
            await session.execute(select(ServiceUsed).where(ServiceUsed.consultation_id == consultation_id))
        ).scalar_one()
        assert (used.component, used.service, used.insured_event_id) == (
            "telemedicine",
            "telemedicine_consultation",
            event.id,
        )
        request = await session.get(DispatchRequest, summary["dispatch_request_id"])
        assert request is not None
        assert request.source == "consultation_referral"
        assert request.consultation_id == consultation_id
        assert request.insured_event_id == event.id
        assert request.requested_specialty == "otolaryngology"
        assert request.requested_services == ["ENT examination", "throat swab culture"]
        decision = (
            await session.execute(
                select(CoverageDecisionRecord).where(CoverageDecisionRecord.kind == "telemedicine_consultation")
            )
        ).scalar_one()
        assert decision.allowed and decision.actor_id == doctor.id
        assert {"R2.2", "R3.1", "R11.3", "R3.2"} <= {r["rule"] for r in decision.reasons}

    after = await (await client.get("/api/consultations/allowance", headers=bearer(patient))).json()
    assert (after["used"], after["left"]) == (1, 11)

    final = await (await client.get(f"/api/consultations/{consultation_id}", headers=bearer(patient))).json()
    assert final["summary"]["icd10_code"] == "J02.9"
    assert "pharyngitis" in final["summary"]["icd10_description"].lower()
    assert final["summary"]["notes"] == REFERRAL["notes"]
    assert "dispatch console" in final["summary"]["instructions"]


async def test_referral_of_a_registry_person_points_to_the_attached_clinic_r6_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R6.2: with the attachment letter in force, a registry person books with the clinic; no dispatcher request."""
    program = await factories.program()
    clinic = await factories.clinic(
        programs=[program], name="Moscow Clinic B1", address="11 Pushkin St", phone="+7 495 1"
    )
    policy = await factories.policy(program=program)
    person = await factories.insured(policy=policy, service_type="registry", attached_clinic_id=clinic.id)
    today = clock.now().date()
    payment = Payment(
        policy_id=policy.id, amount=policy.premium, bundled_on=date(today.year, 1, 1), created_at=clock.now()
    )
    await factories.add(payment)
    await factories.add(
        AttachmentLetter(
            number="AL-2026-000001",
            insured_person_id=person.id,
            clinic_id=clinic.id,
            payment_id=payment.id,
            generated_on=date(today.year, 1, 1),
            send_on=date(today.year, 1, 2),
            valid_from=date(today.year, 1, 2),
            valid_until=date(today.year, 12, 31),
        )
    )
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories, person)

    completed = await client.post(
        f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff)
    )
    assert completed.status == 200, await completed.text()
    summary = (await completed.json())["summary"]
    assert summary["referral_route"] == "attached_clinic"
    assert summary["dispatch_request_id"] is None
    assert summary["clinic"] == {
        "id": clinic.id,
        "name": "Moscow Clinic B1",
        "address": "11 Pushkin St",
        "phone": "+7 495 1",
    }
    assert "R6.2" in summary["instructions"]
    assert await _count(session_factory, DispatchRequest) == 0
    assert await _count(session_factory, ServiceUsed, ServiceUsed.consultation_id == consultation_id) == 1


@pytest.mark.parametrize(
    ("letter", "rule", "words"),
    [
        (None, "R6.1", "no attachment letter"),
        ("on_its_way", "R7.2", "reaches the clinic on"),
        ("lapsed", "R7.4", "no later payment"),
        ("clinic_left", "R5.4", "left the program"),
    ],
)
async def test_a_registry_referral_without_attachment_in_force_says_why_r7_2_r6_1_r7_4(
    client: TestClient,
    factories: Factories,
    session_factory: async_sessionmaker[AsyncSession],
    clock: FixedClock,
    letter: str | None,
    rule: str,
    words: str,
) -> None:
    """R11.3 with R7.2/R6.1/R7.4/R5.4 (issue 9 item 15): the referral goes to the console and says which it is:
    the letter is on its way to the clinic, there is no letter, an installment is unpaid, the clinic left."""
    program = await factories.program()
    clinic = await factories.clinic(programs=[] if letter == "clinic_left" else [program])
    policy = await factories.policy(program=program)
    person = await factories.insured(policy=policy, service_type="registry", attached_clinic_id=clinic.id)
    today = clock.now().date()
    if letter is not None:
        payment = Payment(policy_id=policy.id, amount=policy.premium, bundled_on=today, created_at=clock.now())
        await factories.add(payment)
        starts = {"on_its_way": today + timedelta(days=1)}.get(letter, date(today.year, 1, 2))
        ends = {"lapsed": today - timedelta(days=1)}.get(letter, date(today.year, 12, 31))
        await factories.add(
            AttachmentLetter(
                number="AL-2026-000001",
                insured_person_id=person.id,
                clinic_id=clinic.id,
                payment_id=payment.id,
                generated_on=starts - timedelta(days=1),
                send_on=starts,
                valid_from=starts,
                valid_until=ends,
            )
        )
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories, person)
    completed = await client.post(
        f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff)
    )
    assert completed.status == 200, await completed.text()
    assert (await completed.json())["summary"]["referral_route"] == "dispatcher_request"
    assert await _count(session_factory, DispatchRequest, DispatchRequest.consultation_id == consultation_id) == 1
    async with session_factory() as session:
        decision = (await session.execute(select(CoverageDecisionRecord))).scalar_one()
    why = [r for r in decision.reasons if r["rule"] in {"R6.1", "R7.2", "R7.4", "R5.4"}]
    assert [r["rule"] for r in why] == [rule]
    assert words in why[0]["message"] and "dispatcher access" in why[0]["message"]


async def test_the_doctor_links_a_second_consultation_to_the_open_insured_event_r11_5(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R11.5, R11.3: the doctor links the consultation to an open event (however old: no window, R11.3),
    offered with a suggestion of the same ICD-10 category; the event is reused, not duplicated."""
    first_id, patient, staff, _, person = await _active_consultation(client, factories)
    advice = {"notes": "Rest and fluids.", "icd10_code": "J06.9", "outcome": "advice"}
    assert (
        await client.post(f"/api/consultations/{first_id}/complete", json=advice, headers=bearer(staff))
    ).status == 200
    async with session_factory() as session:  # the event is older than the old 30-day window
        event_row = await session.get(InsuredEvent, (await session.get(Consultation, first_id)).insured_event_id)  # type: ignore[union-attr]
        assert event_row is not None
        event_row.opened_at = clock.now() - timedelta(days=45)
        await session.commit()
    second = await _request(client, patient, complaints="a cough now")
    second_id = (await second.json())["id"]
    assert (await client.post(f"/api/consultations/{second_id}/accept", headers=bearer(staff))).status == 200
    choices = await client.get(
        f"/api/consultations/{second_id}/open-events", params={"icd10_code": "J06.0"}, headers=bearer(staff)
    )
    assert choices.status == 200, await choices.text()
    body = await choices.json()
    [event] = body["events"]
    assert event["icd10_codes"] == ["J06.9"] and event["complaints"] == REQUEST["complaints"]
    assert body["suggested_event_id"] == event["id"] and body["default"] == "new_event"
    linked = {**advice, "icd10_code": "J06.0", "insured_event_id": event["id"]}
    completed = await client.post(f"/api/consultations/{second_id}/complete", json=linked, headers=bearer(staff))
    assert completed.status == 200, await completed.text()
    async with session_factory() as session:
        events = {c.insured_event_id for c in (await session.execute(select(Consultation))).scalars()}
        decision = (
            (await session.execute(select(CoverageDecisionRecord).order_by(CoverageDecisionRecord.id.desc())))
            .scalars()
            .first()
        )
    assert events == {event["id"]}
    assert decision is not None
    assert {"rule": "R11.5", "insured_event_id": event["id"]} in [
        {"rule": r["rule"], "insured_event_id": r.get("facts", {}).get("insured_event_id")} for r in decision.reasons
    ]
    assert await _count(session_factory, InsuredEvent, InsuredEvent.insured_person_id == person.id) == 1
    assert await _count(session_factory, ServiceUsed, ServiceUsed.insured_person_id == person.id) == 2


async def test_same_words_without_the_doctors_link_open_a_new_insured_event_r11_5(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R11.5, R3.1: complaints are never matched by words; without a link the completion opens a new event."""
    first_id, patient, staff, _, person = await _active_consultation(client, factories)
    advice = {"notes": "Rest and fluids.", "icd10_code": "J06.9", "outcome": "advice"}
    assert (
        await client.post(f"/api/consultations/{first_id}/complete", json=advice, headers=bearer(staff))
    ).status == 200
    second = await _request(client, patient, complaints=REQUEST["complaints"])  # the very same words
    second_id = (await second.json())["id"]
    assert (await client.post(f"/api/consultations/{second_id}/accept", headers=bearer(staff))).status == 200
    assert (
        await client.post(f"/api/consultations/{second_id}/complete", json=advice, headers=bearer(staff))
    ).status == 200
    async with session_factory() as session:
        events = {c.insured_event_id for c in (await session.execute(select(Consultation))).scalars()}
    assert len(events) == 2
    assert await _count(session_factory, InsuredEvent, InsuredEvent.insured_person_id == person.id) == 2


async def test_linking_to_an_event_that_is_not_the_patients_open_one_is_refused_r11_5(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R11.5: only one of the patient's own open events; another's event is 422 with the rule, nothing written."""
    advice = {"notes": "Rest and fluids.", "icd10_code": "J06.9", "outcome": "advice"}
    other = await factories.insured()
    foreign = InsuredEvent(
        insured_person_id=other.id,
        component="telemedicine",
        complaints="sore throat and fever since yesterday",
        status="open",
        source="consultation",
        covered=True,
        reasons=[],
        opened_at=clock.now(),
    )
    await factories.add(foreign)
    foreign_event = foreign.id
    consultation_id, _, staff, _, person = await _active_consultation(client, factories)
    refused = await client.post(
        f"/api/consultations/{consultation_id}/complete",
        json={**advice, "insured_event_id": foreign_event},
        headers=bearer(staff),
    )
    assert refused.status == 422, await refused.text()
    error = (await refused.json())["error"]
    assert error["code"] == "unknown_insured_event" and error["rules"] == ["R11.5"]
    assert await _count(session_factory, InsuredEvent, InsuredEvent.insured_person_id == person.id) == 0
    other_doctor = await factories.login_staff(client, await factories.staff("doctor"))
    unseen = await client.get(f"/api/consultations/{consultation_id}/open-events", headers=bearer(other_doctor))
    assert unseen.status == 404  # not that doctor's consultation


async def test_emergency_outcome_tells_the_patient_to_call_an_ambulance(
    client: TestClient, factories: Factories
) -> None:
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories)
    body = {"notes": "Chest pain radiating to the left arm.", "icd10_code": "I21.9", "outcome": "emergency"}
    completed = await client.post(f"/api/consultations/{consultation_id}/complete", json=body, headers=bearer(staff))
    assert completed.status == 200, await completed.text()
    summary = (await completed.json())["summary"]
    assert summary["outcome"] == "emergency"
    assert summary["emergency_phones"] == ["103", "112"]
    assert "103" in summary["instructions"]


# ----------------------------------------------------------------------------- bad input


async def test_request_beyond_the_allowance_is_refused_r11_3(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R11.3: services used this year count against the program's yearly allowance; nothing is queued."""
    program = await factories.program(telemedicine_allowance_per_year=1)
    person = await factories.insured(policy=await factories.policy(program=program))
    await _doctor_on_duty(factories)
    await factories.add(
        ServiceUsed(
            insured_person_id=person.id,
            component="telemedicine",
            service="telemedicine_consultation",
            used_on=clock.now().date() - timedelta(days=30),
            quantity=1,
            created_at=clock.now(),
        )
    )
    patient = await factories.login_insured(client, person)
    refused = await _request(client, patient)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "rule_violation"
    assert "R11.3" in error["rules"]
    assert error["details"]["refusal"] == "allowance_used_up"
    assert await _count(session_factory, Consultation) == 0
    allowance = await (await client.get("/api/consultations/allowance", headers=bearer(patient))).json()
    assert allowance["left"] == 0


async def test_last_years_services_do_not_count_against_this_years_allowance_r11_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    program = await factories.program(telemedicine_allowance_per_year=1)
    person = await factories.insured(policy=await factories.policy(program=program))
    await _doctor_on_duty(factories)
    await factories.add(
        ServiceUsed(
            insured_person_id=person.id,
            component="telemedicine",
            service="telemedicine_consultation",
            used_on=date(clock.now().year - 1, 12, 31),
            quantity=1,
            created_at=clock.now(),
        )
    )
    patient = await factories.login_insured(client, person)
    assert (await _request(client, patient)).status == 201


async def test_request_without_telemedicine_in_the_program_is_refused_r10_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R10.2: the component must be in the program; the refusal cites the rules."""
    program = await factories.program(components=["outpatient", "ambulance"])
    person = await factories.insured(policy=await factories.policy(program=program))
    patient = await factories.login_insured(client, person)
    refused = await _request(client, patient)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "rule_violation"
    assert {"R2.2", "R10.1"} <= set(error["rules"])
    assert "telemedicine" in error["message"]
    assert await _count(session_factory, Consultation) == 0


async def test_request_on_a_policy_not_valid_today_is_refused_r10_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], clock: FixedClock
) -> None:
    """R10.2: the policy must be valid on the day (here it ended yesterday, after the person logged in)."""
    today = clock.now().date()
    policy = await factories.policy(starts_on=today - timedelta(days=300))
    person = await factories.insured(policy=policy)
    patient = await factories.login_insured(client, person)
    async with session_factory() as session:
        stored = await session.get(Policy, policy.id)
        assert stored is not None
        stored.ends_on = today - timedelta(days=1)
        await session.commit()
    refused = await _request(client, patient)
    assert refused.status == 422
    assert "R10.2" in (await refused.json())["error"]["rules"]
    assert await _count(session_factory, Consultation) == 0


async def test_a_second_open_consultation_is_a_conflict(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    person = await factories.insured()
    patient = await factories.login_insured(client, person)
    first = await _request(client, patient)
    assert first.status == 201
    second = await _request(client, patient, complaints="something else")
    assert second.status == 409
    error = (await second.json())["error"]
    assert error["code"] == "consultation_open"
    assert error["details"]["consultation_id"] == (await first.json())["id"]
    assert await _count(session_factory, Consultation) == 1


async def test_unknown_specialty_channel_or_empty_complaints_are_422(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    patient = await factories.login_insured(client, await factories.insured())
    for overrides in ({"specialty": "astrology"}, {"channel": "fax"}, {"complaints": ""}, {"complaints": "x" * 2001}):
        response = await _request(client, patient, **overrides)
        assert response.status == 422, overrides
        assert (await response.json())["error"]["code"] == "validation_error"
    assert await _count(session_factory, Consultation) == 0


async def test_only_insured_persons_request_consultations(client: TestClient, factories: Factories) -> None:
    staff = await factories.login_staff(client, await factories.staff("doctor"))
    response = await client.post("/api/consultations", json=REQUEST, headers=bearer(staff))
    assert response.status == 403


async def test_completing_a_consultation_that_is_not_yours_is_404_and_changes_nothing(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation_id, _, _, _, _ = await _active_consultation(client, factories)
    other = await factories.login_staff(client, await _doctor_on_duty(factories))
    response = await client.post(f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(other))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    async with session_factory() as session:
        consultation = await session.get(Consultation, consultation_id)
        assert consultation is not None and consultation.status == "active"
    assert await _count(session_factory, ServiceUsed) == 0
    assert await _count(session_factory, DispatchRequest) == 0
    assert await _count(session_factory, InsuredEvent) == 0


async def test_invalid_icd10_code_is_422_and_nothing_is_written(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories)
    for code in ("J99.99", "ZZZ", "J00-J06"):
        response = await client.post(
            f"/api/consultations/{consultation_id}/complete",
            json={**REFERRAL, "icd10_code": code},
            headers=bearer(staff),
        )
        assert response.status == 422, code
        assert (await response.json())["error"]["code"] == "invalid_icd10"
    async with session_factory() as session:
        consultation = await session.get(Consultation, consultation_id)
        assert consultation is not None and consultation.status == "active" and consultation.icd10_code is None
    assert await _count(session_factory, ServiceUsed) == 0
    assert await _count(session_factory, InsuredEvent) == 0
    assert await _count(session_factory, DispatchRequest) == 0


async def test_completing_twice_is_409_and_counts_once(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories)
    url = f"/api/consultations/{consultation_id}/complete"
    assert (await client.post(url, json=REFERRAL, headers=bearer(staff))).status == 200
    again = await client.post(url, json=REFERRAL, headers=bearer(staff))
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_completed"
    assert await _count(session_factory, ServiceUsed) == 1
    assert await _count(session_factory, DispatchRequest) == 1
    assert await _count(session_factory, CoverageDecisionRecord) == 1


async def test_concurrent_completions_count_once(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories)
    url = f"/api/consultations/{consultation_id}/complete"
    responses = await asyncio.gather(*(client.post(url, json=REFERRAL, headers=bearer(staff)) for _ in range(3)))
    assert sorted(r.status for r in responses) == [200, 409, 409]
    assert await _count(session_factory, ServiceUsed) == 1
    assert await _count(session_factory, DispatchRequest) == 1


async def test_referral_fields_are_checked(client: TestClient, factories: Factories) -> None:
    consultation_id, _, staff, _, _ = await _active_consultation(client, factories)
    url = f"/api/consultations/{consultation_id}/complete"
    no_specialty = {**REFERRAL, "referral_specialty": None}
    response = await client.post(url, json=no_specialty, headers=bearer(staff))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "referral_specialty_required"
    advice_with_referral = {**REFERRAL, "outcome": "advice"}
    response = await client.post(url, json=advice_with_referral, headers=bearer(staff))
    assert (await response.json())["error"]["code"] == "referral_fields_not_allowed"


async def test_completing_a_consultation_that_is_only_offered_is_409(client: TestClient, factories: Factories) -> None:
    doctor = await _doctor_on_duty(factories)
    patient = await factories.login_insured(client, await factories.insured())
    staff = await factories.login_staff(client, doctor)
    consultation_id = (await (await _request(client, patient)).json())["id"]
    response = await client.post(f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff))
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "invalid_transition"


# ----------------------------------------------------------------------------- access and lifecycle


async def test_only_the_patient_the_doctor_and_admins_see_a_consultation(
    client: TestClient, factories: Factories
) -> None:
    """Checklist C1: other patients and other doctors get 404; other roles 403."""
    consultation_id, patient, staff, _, _ = await _active_consultation(client, factories)
    url = f"/api/consultations/{consultation_id}"
    other_patient = await factories.login_insured(client, await factories.insured())
    other_doctor = await factories.login_staff(client, await factories.staff("doctor"))
    admin = await factories.login_staff(client, await factories.staff("admin"))
    dispatcher = await factories.login_staff(client, await factories.staff("dispatcher"))
    assert (await client.get(url, headers=bearer(patient))).status == 200
    assert (await client.get(url, headers=bearer(staff))).status == 200
    assert (await client.get(url, headers=bearer(admin))).status == 200
    for tokens in (other_patient, other_doctor):
        response = await client.get(url, headers=bearer(tokens))
        assert response.status == 404
        assert "complaints" not in await response.text()
    assert (await client.get(url, headers=bearer(dispatcher))).status == 403
    assert (await client.get("/api/consultations/999999", headers=bearer(admin))).status == 404
    other_list = await (await client.get("/api/consultations", headers=bearer(other_patient))).json()
    assert other_list == []


async def test_patient_cancels_and_may_then_request_again(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation_id, patient, staff, _, _ = await _active_consultation(client, factories)
    other = await factories.login_insured(client, await factories.insured())
    assert (await client.post(f"/api/consultations/{consultation_id}/cancel", headers=bearer(other))).status == 404
    cancelled = await client.post(
        f"/api/consultations/{consultation_id}/cancel", json={"reason": "feeling better"}, headers=bearer(patient)
    )
    assert cancelled.status == 200
    body = await cancelled.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "feeling better")
    again = await client.post(f"/api/consultations/{consultation_id}/cancel", headers=bearer(patient))
    assert again.status == 409
    complete = await client.post(f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff))
    assert complete.status == 409
    assert await _count(session_factory, ServiceUsed) == 0
    assert (await _request(client, patient)).status == 201


async def test_doctor_lists_offers_active_and_recent(client: TestClient, factories: Factories) -> None:
    consultation_id, patient, staff, _, _ = await _active_consultation(client, factories)
    listed = await (await client.get("/api/consultations", headers=bearer(staff))).json()
    assert [c["id"] for c in listed] == [consultation_id]
    assert listed[0]["patient_name"]
    mine = await (await client.get("/api/consultations", headers=bearer(patient))).json()
    assert [c["id"] for c in mine] == [consultation_id]
    assert mine[0]["patient_name"] is None


async def test_no_doctor_on_duty_still_queues_but_says_so_and_raises_the_alarm_r11_2(
    client: TestClient, factories: Factories, ctx: ServiceContext
) -> None:
    """R11.2: a request with nobody on duty is queued, never silently: the answer and the admin alerts say so."""
    patient = await factories.login_insured(client, await factories.insured())
    created = await _request(client, patient)
    assert created.status == 201
    body = await created.json()
    assert (body["status"], body["doctor_on_duty"], body["estimated_wait_minutes"]) == ("queued", False, None)
    assert "No general practitioner is on duty" in body["notice"]
    assert "R11.2" in body["notice"]
    admin = await factories.login_staff(client, await factories.staff("admin"))
    alerts = await (await client.get("/api/admin/roster-alerts", headers=bearer(admin))).json()
    assert alerts and alerts[0]["specialty"] == "general_practice" and alerts[0]["rule"] == "R11.2"
    assert ctx.metrics.roster_gap_hours.labels(specialty="general_practice")._value.get() > 0


async def test_queue_position_and_wait_for_patients_behind_others(client: TestClient, factories: Factories) -> None:
    doctor = await _doctor_on_duty(factories, max_active_consultations=1)
    tokens = [await factories.login_insured(client, await factories.insured()) for _ in range(3)]
    bodies = [await (await _request(client, t)).json() for t in tokens]
    assert [b["status"] for b in bodies] == ["offered", "queued", "queued"]
    assert [b["queue_position"] for b in bodies] == [1, 2, 3]
    assert bodies[2]["estimated_wait_minutes"] == 30  # two ahead, one doctor, 15 minutes each
    assert doctor.id


async def test_events_are_published_after_each_change(
    client: TestClient, factories: Factories, ctx: ServiceContext
) -> None:
    """Offers reach the doctor, updates reach the room and the patient, referrals reach the dispatchers."""
    person = await factories.insured()
    doctor = await _doctor_on_duty(factories)
    patient = await factories.login_insured(client, person)
    staff = await factories.login_staff(client, doctor)
    subscription = ctx.bus.subscribe(
        [
            user_channel(f"staff:{doctor.id}"),
            user_channel(f"insured:{person.id}"),
            doctors_queue_channel(),
            dispatch_queue_channel(),
        ]
    )
    try:
        await asyncio.sleep(0.05)  # let a Redis subscription settle
        consultation_id = (await (await _request(client, patient)).json())["id"]
        subscription.add(consultation_channel(consultation_id))
        await asyncio.sleep(0.05)
        await client.post(f"/api/consultations/{consultation_id}/accept", headers=bearer(staff))
        await client.post(f"/api/consultations/{consultation_id}/complete", json=REFERRAL, headers=bearer(staff))
        seen: list[tuple[str, dict[str, Any]]] = []

        def has(channel: str, type_: str, **fields: Any) -> bool:
            return any(
                ch == channel and msg.get("type") == type_ and all(msg.get(k) == v for k, v in fields.items())
                for ch, msg in seen
            )

        wanted = [
            (user_channel(f"staff:{doctor.id}"), EVENT_CONSULTATION_OFFERED, {"consultation_id": consultation_id}),
            (user_channel(f"insured:{person.id}"), EVENT_CONSULTATION_UPDATED, {"status": "queued"}),
            (user_channel(f"insured:{person.id}"), EVENT_CONSULTATION_UPDATED, {"status": "completed"}),
            (consultation_channel(consultation_id), EVENT_CONSULTATION_UPDATED, {"status": "active"}),
            (consultation_channel(consultation_id), EVENT_CONSULTATION_UPDATED, {"status": "completed"}),
            (doctors_queue_channel(), EVENT_QUEUE_CHANGED, {"specialty": "general_practice"}),
            (dispatch_queue_channel(), EVENT_DISPATCH_QUEUE_CHANGED, {"source": "consultation_referral"}),
        ]
        async with asyncio.timeout(10):
            while not all(has(ch, t, **f) for ch, t, f in wanted):
                channel, message = await subscription.get()
                if channel != RESYNC:
                    seen.append((channel, message))
    finally:
        subscription.close()
