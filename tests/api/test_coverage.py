"""Insured API: the coverage card (R9 routing, R11.3 allowance), requests to the console (R2.2, R10.2), the
service type change through to registry (R4.1-R4.6, R5, R7.1-R7.3) and the pass photo (R6.4)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import (
    AdditionalAgreement,
    CoverageDecisionRecord,
    DispatchPoint,
    DispatchRequest,
    InsuredPerson,
    PassPhoto,
    PassRequest,
    ProgramChangeApplication,
    ScheduledPayment,
    ServiceUsed,
)
from server.domain.calendar import next_business_day
from server.domain.routing import FEDERAL_NUMBER
from server.services.context import ServiceContext
from tests.api.dispatch_support import World, build_world, count_rows, issue_letter, open_covered_event, rules_of
from tests.factories import Factories, bearer
from tests.images import assert_has_metadata, assert_no_metadata, dominant, phone_jpeg

QUARTERLY = [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]


# ----------------------------------------------------------------------------- the card


async def test_coverage_card_shows_type_program_routing_and_allowance(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R9.1/R9.4 for Moscow (built-in network), R11.3 allowance counts this calendar year only, R10.1 components."""
    world = await build_world(client, factories)
    await factories.add(
        *[
            ServiceUsed(
                insured_person_id=world.person.id,
                component="telemedicine",
                service="telemedicine_consultation",
                used_on=day,
                quantity=1,
                created_at=clock.now(),
            )
            for day in (date(2025, 12, 30), date(2026, 2, 3), date(2026, 5, 5))
        ]
    )
    response = await client.get("/api/me/coverage", headers=world.insured)
    assert response.status == 200
    card = await response.json()
    assert card["service_type"] == "dispatcher" and card["attached_clinic"] is None and card["attachment"] is None
    assert card["program"]["components"] == sorted(["outpatient", "dental", "ambulance", "inpatient", "telemedicine"])
    assert card["program"]["recommended_service_type"] == "dispatcher"  # R8.2
    assert card["policy"]["number"] == world.policy.number and card["policy"]["valid_today"] is True
    assert card["answers_now"]["kind"] == "console" and "R9.1" in rules_of(card["answers_now"])
    assert card["answers_now"]["local_time"].startswith("2026-06-10T12:00:00+03:00")
    assert card["card_phone"]["phone"] == FEDERAL_NUMBER and rules_of(card["card_phone"]) == ["R9.4"]
    assert card["telemedicine"] == {"year": 2026, "allowance_per_year": 12, "used": 2, "left": 10}


async def test_branch_city_is_answered_by_the_curator_in_hours_then_the_federal_line(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R9.2 in business hours, R9.3 at night; the card shows the curator's number (R9.4)."""
    await factories.add(
        DispatchPoint(
            kind="branch_curator",
            city="Kazan",
            name="Kazan curator",
            phone="+7 843 211-11-11",
            timezone="Europe/Moscow",
            hours={str(d): ["09:00", "18:00"] for d in range(5)},
        ),
        DispatchPoint(
            kind="federal_line",
            city="Moscow",
            name="Federal line",
            phone=FEDERAL_NUMBER,
            timezone="Europe/Moscow",
            hours={"always": True},
        ),
    )
    world = await build_world(client, factories, person_overrides={"city": "Kazan"})
    day = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert day["answers_now"]["kind"] == "branch_curator" and "R9.2" in rules_of(day["answers_now"])
    assert day["card_phone"]["phone"] == "+7 843 211-11-11"
    clock.advance(timedelta(hours=12))  # 00:00 Moscow time
    world.insured = bearer(await factories.login_insured(client, world.person))
    night = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert night["answers_now"]["phone"] == FEDERAL_NUMBER and "R9.3" in rules_of(night["answers_now"])


async def test_attachment_clinic_list_offers_only_the_programs_category_r5_3(
    client: TestClient, factories: Factories
) -> None:
    world = await build_world(client, factories)
    visit = await (await client.get("/api/me/clinics?purpose=visit", headers=world.insured)).json()
    attach = await (await client.get("/api/me/clinics?purpose=attachment", headers=world.insured)).json()
    assert {o["clinic"]["id"] for o in visit} == {
        world.clinic.id,
        world.clinic_b.id,
        world.pass_clinic.id,
        world.cat1_clinic.id,
        world.cat3_clinic.id,
    }
    assert {o["clinic"]["id"] for o in attach} == {world.clinic.id, world.clinic_b.id, world.pass_clinic.id}
    assert all("R5.3" in rules_of(o) for o in attach)


# ----------------------------------------------------------------------------- requests to the console


async def test_uncovered_request_is_422_with_reasons_and_recorded_but_not_queued(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R2.2, R10.1: dental care is not in the basic program (R10.2 for an ended policy: tests/services)."""
    world = await build_world(client, factories)
    basic = await factories.insured(policy=await factories.policy(program=world.basic_program))
    headers = bearer(await factories.login_insured(client, basic))
    response = await client.post(
        "/api/me/requests", json={"component": "dental", "complaints": "toothache"}, headers=headers
    )
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "not_covered" and {"R2.2", "R10.1"} <= set(rules_of(body))

    assert await count_rows(session_factory, DispatchRequest) == 0
    async with session_factory() as session:
        refusals = (await session.execute(select(CoverageDecisionRecord))).scalars().all()
    assert [(r.insured_person_id, r.allowed, r.kind) for r in refusals] == [(basic.id, False, "insured_request")]


async def test_request_bad_input_is_4xx_with_a_code(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    unknown = await client.post(
        "/api/me/requests", json={"component": "spa", "complaints": "tired"}, headers=world.insured
    )
    assert unknown.status == 400 and "R10.1" in rules_of(await unknown.json())
    blank = await client.post(
        "/api/me/requests", json={"component": "outpatient", "complaints": "   "}, headers=world.insured
    )
    assert blank.status == 422 and (await blank.json())["error"]["code"] == "validation_error"
    extra = await client.post(
        "/api/me/requests", json={"component": "outpatient", "complaints": "x", "admin": 1}, headers=world.insured
    )
    assert extra.status == 422
    assert await count_rows(session_factory, DispatchRequest) == 0


# ----------------------------------------------------------------------------- service type change (R4, R5, R7)


async def pay_policy_premiums(client: TestClient, world: World, due_by: str) -> None:
    """The policyholder's own premium installments due by ``due_by``, bundled (R7.4 counts both schedules)."""
    due = await (
        await client.get(f"/api/admin/payments/due?policy_id={world.policy.id}&due_by={due_by}", headers=world.admin)
    ).json()
    for row in due:
        if row["purpose"] == "premium":
            response = await client.post(
                "/api/admin/payments",
                json={"policy_id": world.policy.id, "scheduled_payment_id": row["id"], "amount": row["amount"]},
                headers=world.admin,
            )
            assert response.status == 201, await response.text()


async def _change(client: TestClient, world: World, **payload: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/me/service-type-change", json=payload, headers=world.insured)
    return response.status, await response.json()


async def test_service_type_change_takes_effect_when_the_first_additional_premium_is_bundled(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R4.1-R4.6 and R7.1-R7.3 with the Russian production calendar (12 June is Russia Day)."""
    world = await build_world(
        client,
        factories,
        payment_mode="installments",
        installments=QUARTERLY,
        person_overrides={"full_name": "Anna <b>Smirnova</b>"},
    )
    await pay_policy_premiums(client, world, "2026-06-10")
    status, body = await _change(client, world, clinic_id=world.clinic.id)
    assert status == 201, body
    assert body["effective"] is False and body["service_type"] == "dispatcher"
    application = body["application"]
    assert application["status"] == "agreement_issued"
    assert application["additional_premium"] == "12000.00"  # R4.5: 52000 - 40000, not pro-rated
    assert application["agreement_number"] == "AA-2026-000001" and application["agreed_on"] == "2026-06-10"
    assert [(p["due_on"], p["amount"]) for p in application["schedule"]] == [  # R4.4
        ("2026-06-10", "4000.00"),
        ("2026-07-01", "4000.00"),
        ("2026-10-01", "4000.00"),
    ]
    assert {"R4.1", "R4.2", "R4.3", "R4.4", "R4.5", "R4.6", "R5.1", "R8.1", "R8.2"} <= set(rules_of(body))

    page = await client.get(application["application_url"], headers=world.insured)
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert "Application to change the insurance program" in text and "Clinic Alpha" in text
    assert "12000.00" in text and world.policy.number in text and "R4.2" in text
    assert "&lt;b&gt;Smirnova&lt;/b&gt;" in text and "<b>Smirnova" not in text  # every value escaped
    other = await factories.insured(policy=world.policy, birth_date=date(1985, 1, 2))
    other_headers = bearer(await factories.login_insured(client, other))
    assert (await client.get(application["application_url"], headers=other_headers)).status == 404

    card = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert card["service_type"] == "dispatcher" and card["applications"][0]["id"] == application["id"]

    clock.advance(timedelta(days=1))  # 2026-06-11, the day before Russia Day
    await world.relogin(client, factories)
    first = application["schedule"][0]
    paid = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "scheduled_payment_id": first["id"], "amount": first["amount"]},
        headers=world.admin,
    )
    assert paid.status == 201, await paid.text()
    result = await paid.json()
    assert result["payment"]["purpose"] == "additional_premium" and result["payment"]["bundled_on"] == "2026-06-11"
    [activation] = result["activations"]
    assert activation["effective"] is True and "R4.6" in rules_of(activation)
    [generated] = result["attachment_letters"]
    letter = generated["letter"]
    assert next_business_day(date(2026, 6, 11)) == date(2026, 6, 15)
    assert letter["number"] == "AL-2026-000001"
    assert letter["generated_on"] == "2026-06-11"  # R7.1: the day the money is bundled
    assert letter["send_on"] == "2026-06-15"  # R7.2: next business day (12 June holiday, 13-14 weekend)
    assert letter["valid_from"] == "2026-06-15"
    assert letter["valid_until"] == "2026-07-01"  # R7.3: until the next scheduled payment
    assert {"R7.1", "R7.2", "R7.3"} <= set(rules_of(generated))

    card = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert card["service_type"] == "registry" and card["attached_clinic"]["id"] == world.clinic.id
    assert card["attachment"]["effective"] is False and "R7.2" in rules_of(card["attachment"])
    assert card["applications"][0]["status"] == "effective"

    to_send = await (
        await client.get("/api/admin/attachment-letters?to_send_on=2026-06-15", headers=world.admin)
    ).json()
    assert [row["number"] for row in to_send] == ["AL-2026-000001"]
    assert (
        await (await client.get("/api/admin/attachment-letters?to_send_on=2026-06-12", headers=world.admin)).json()
        == []
    )
    sent = await client.post(f"/api/admin/attachment-letters/{letter['id']}/sent", headers=world.admin)
    assert sent.status == 200 and (await sent.json())["sent_at"] is not None
    assert (await client.post(f"/api/admin/attachment-letters/{letter['id']}/sent", headers=world.admin)).status == 409

    twice = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "scheduled_payment_id": first["id"], "amount": first["amount"]},
        headers=world.admin,
    )
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "already_bundled"

    # The choice is final within the policy period: no other clinic (R5.1), no way back (R5.2).
    status, refused = await _change(client, world, clinic_id=world.clinic_b.id)
    assert status == 422 and rules_of(refused) == ["R5.1"]
    status, refused = await _change(client, world, service_type="dispatcher")
    assert status == 422 and "R5.2" in rules_of(refused)
    assert await count_rows(session_factory, ProgramChangeApplication) == 1
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        assert person is not None and person.service_type == "registry"


async def test_later_additional_installment_renews_the_attachment_r7_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """Each later payment bundled renews the letter (R7.3); the same day it updates that day's letter (R7.6)."""
    world = await build_world(client, factories, payment_mode="installments", installments=QUARTERLY)
    await pay_policy_premiums(client, world, "2026-07-01")  # Q3 paid early as well
    _, body = await _change(client, world, clinic_id=world.clinic.id)
    schedule = body["application"]["schedule"]
    for item, day in ((schedule[0], "2026-06-10"), (schedule[1], "2026-06-10")):
        response = await client.post(
            "/api/admin/payments",
            json={
                "policy_id": world.policy.id,
                "scheduled_payment_id": item["id"],
                "amount": item["amount"],
                "bundled_on": day,
            },
            headers=world.admin,
        )
        assert response.status == 201, await response.text()
    result = await response.json()
    assert result["activations"] == []  # already effective
    [generated] = result["attachment_letters"]
    assert generated["letter"]["valid_until"] == "2026-10-01"  # paid early for 1 July: runs to 1 October
    assert generated["letter"]["number"] == "AL-2026-000001" and "R7.6" in rules_of(generated)  # one a day


async def test_service_type_change_refusals_cite_their_rules_and_write_nothing(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R4.1 (not offered), R5.3 (other category), R2.3 (off the list / unknown), R1.3 (no clinic)."""
    world = await build_world(client, factories)
    cases = [
        ({"clinic_id": world.cat1_clinic.id}, "R5.3", "change_refused"),
        ({"clinic_id": world.cat3_clinic.id}, "R5.3", "change_refused"),
        ({"clinic_id": world.off_list.id}, "R2.3", "change_refused"),
        ({"clinic_id": 999_999}, "R2.3", "unknown_clinic"),
        ({}, "R1.3", "change_refused"),
    ]
    for payload, rule, code in cases:
        status, body = await _change(client, world, **payload)
        assert status == 422, payload
        assert body["error"]["code"] == code and rule in rules_of(body), (payload, body)
    basic = await factories.insured(policy=await factories.policy(program=world.basic_program))
    basic_headers = bearer(await factories.login_insured(client, basic))
    response = await client.post(
        "/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=basic_headers
    )
    assert response.status == 422 and "R4.1" in rules_of(await response.json())
    status, body = await _change(client, world, service_type="dispatcher")  # already dispatcher
    assert status == 422 and "R1.1" in rules_of(body)
    assert await count_rows(session_factory, ProgramChangeApplication) == 0
    assert await count_rows(session_factory, AdditionalAgreement) == 0
    assert await count_rows(session_factory, ScheduledPayment, ScheduledPayment.purpose == "additional_premium") == 0
    assert await count_rows(session_factory, CoverageDecisionRecord, CoverageDecisionRecord.allowed.is_(True)) == 0


async def test_registry_back_to_dispatcher_during_the_policy_is_refused_r5_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(
        client, factories, person_overrides={"service_type": "registry", "attached_clinic_id": None}
    )
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        assert person is not None
        person.attached_clinic_id = world.clinic.id
        await session.commit()
    status, body = await _change(client, world, service_type="dispatcher")
    assert status == 422 and "R5.2" in rules_of(body) and "R8.2" in rules_of(body)
    status, body = await _change(client, world, clinic_id=world.clinic_b.id)  # a second attachment
    assert status == 422 and "R5.1" in rules_of(body)
    assert await count_rows(session_factory, ProgramChangeApplication) == 0


async def test_concurrent_double_submission_gives_one_application_and_one_409(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    responses = await asyncio.gather(
        *(
            client.post("/api/me/service-type-change", json={"clinic_id": world.clinic.id}, headers=world.insured)
            for _ in range(2)
        )
    )
    assert sorted(r.status for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status == 409)
    assert (await conflict.json())["error"]["code"] == "application_in_flight"
    assert await count_rows(session_factory, ProgramChangeApplication) == 1
    assert await count_rows(session_factory, AdditionalAgreement) == 1
    assert await count_rows(session_factory, ScheduledPayment, ScheduledPayment.purpose == "additional_premium") == 1


async def test_withdrawn_application_frees_the_person_to_apply_again(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    _, body = await _change(client, world, clinic_id=world.clinic.id)
    application_id = body["application"]["id"]
    withdrawn = await client.post(f"/api/me/service-type-change/{application_id}/withdraw", headers=world.insured)
    assert withdrawn.status == 200 and (await withdrawn.json())["status"] == "withdrawn"
    assert await count_rows(session_factory, ScheduledPayment, ScheduledPayment.purpose == "additional_premium") == 0
    status, again = await _change(client, world, clinic_id=world.clinic_b.id)
    assert status == 201 and again["application"]["clinic"]["id"] == world.clinic_b.id


# ----------------------------------------------------------------------------- pass photo (R6.4)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _image(width: int, height: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(buffer, format=fmt)
    return buffer.getvalue()


async def _upload(client: TestClient, headers: dict[str, str], data: bytes, content_type: str = "image/jpeg") -> Any:
    form = FormData()
    form.add_field("photo", io.BytesIO(data), filename="me.jpg", content_type=content_type)
    return await client.post("/api/me/pass-photo", data=form, headers=headers)


async def test_pass_photo_bad_uploads_are_refused_with_r6_4_and_nothing_is_stored(
    client: TestClient, factories: Factories, ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    cases = [
        (b"%PDF-1.4 not an image at all", 422, "not_an_image"),
        (_image(100, 120), 422, "invalid_photo"),  # too small
        (_image(600, 400), 422, "invalid_photo"),  # landscape
        (_image(300, 400, "GIF"), 422, "invalid_photo"),  # wrong format
        (b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024), 413, "photo_too_large"),
    ]
    for data, status, code in cases:
        response = await _upload(client, world.insured, data)
        assert response.status == status, code
        body = await response.json()
        assert body["error"]["code"] == code and "R6.4" in rules_of(body)
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        assert person is not None and not person.has_pass_photo
    assert await count_rows(session_factory, PassPhoto) == 0
    assert not _files(ctx.settings.uploads_dir)


async def test_valid_pass_photo_is_stored_and_passes_are_requested(
    client: TestClient, factories: Factories, ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R6.4: the photo goes with a pass request to every clinic of the person's letters that has an access system."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    await issue_letter(client, world, event["id"], world.pass_clinic.id, ["MRI"])
    response = await _upload(client, world.insured, _image(300, 400), content_type="application/octet-stream")
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["mime"] == "image/jpeg" and (body["width"], body["height"]) == (300, 400)
    assert [r["clinic_id"] for r in body["pass_requests"]] == [world.pass_clinic.id]
    person, photo, pass_request = await _stored_photo(session_factory, world)
    assert person.pass_photo_path is None and not _files(ctx.settings.uploads_dir)  # in the database only
    with Image.open(io.BytesIO(photo.content)) as image:
        assert image.format == "JPEG" and image.size == (300, 400)
    assert (photo.size_bytes, photo.sha256) == (len(photo.content), hashlib.sha256(photo.content).hexdigest())
    assert pass_request.clinic_id == world.pass_clinic.id and pass_request.photo_id == photo.id
    assert (pass_request.photo_path, pass_request.photo_width, pass_request.photo_height) == (None, 300, 400)
    card = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert card["pass_photo_on_file"] is True
    png = await _upload(client, world.insured, _image(320, 480, "PNG"))
    assert png.status == 201
    # The replaced photo went with nothing any more: it is not kept.
    person, photo, pass_request = await _stored_photo(session_factory, world)
    assert (photo.width, photo.height) == (320, 480) and pass_request.photo_id == photo.id
    assert await count_rows(session_factory, PassPhoto) == 1


async def _stored_photo(
    session_factory: async_sessionmaker[AsyncSession], world: World
) -> tuple[InsuredPerson, PassPhoto, PassRequest]:
    """The person, their photo on file and their (only) pass request."""
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        assert person is not None and person.pass_photo_id is not None
        photo = await session.get(PassPhoto, person.pass_photo_id)
        assert photo is not None
        pass_request = (await session.execute(select(PassRequest))).scalar_one()
    return person, photo, pass_request


async def test_phone_pass_photo_is_stored_upright_without_exif_gps(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A portrait phone photo is stored sideways with an EXIF orientation: it is a portrait (R6.4), and what is
    kept is the upright picture without the position, device or time it was taken at."""
    world = await build_world(client, factories)
    photo = phone_jpeg((400, 300), orientation=6)
    assert_has_metadata(photo)
    response = await _upload(client, world.insured, photo)
    assert response.status == 201, await response.text()
    assert ((await response.json())["width"], (await response.json())["height"]) == (300, 400)
    async with session_factory() as session:
        stored = (await session.execute(select(PassPhoto))).scalar_one()
    image = assert_no_metadata(stored.content)
    assert image.format == "JPEG" and image.size == (300, 400) == (stored.width, stored.height)
    assert dominant(image, (150, 50)) == "red" and dominant(image, (150, 350)) == "blue"


async def test_a_replaced_photo_stays_while_an_earlier_pass_request_still_has_it(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    letter = await issue_letter(client, world, event["id"], world.pass_clinic.id, ["MRI"])
    assert (await _upload(client, world.insured, _image(300, 400))).status == 201
    cancelled = await client.post(f"/api/dispatch/letters/{letter['letter']['id']}/cancel", headers=world.dispatcher)
    assert cancelled.status == 200, await cancelled.text()
    assert (await _upload(client, world.insured, _image(320, 480))).status == 201  # no active letter any more
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        pass_request = (await session.execute(select(PassRequest))).scalar_one()
        photos = {p.id: (p.width, p.height) for p in (await session.execute(select(PassPhoto))).scalars()}
    assert person is not None and person.pass_photo_id is not None
    assert photos == {pass_request.photo_id: (300, 400), person.pass_photo_id: (320, 480)}


async def test_pass_photo_from_before_the_database_storage_still_counts(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Persons whose photo was stored as a file before migration 0003 keep it on file; passes still name it."""
    world = await build_world(client, factories)
    async with session_factory() as session:
        person = await session.get(InsuredPerson, world.person.id)
        assert person is not None
        person.pass_photo_path = "passes/0123456789abcdef-300x400.jpg"
        await session.commit()
    card = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert card["pass_photo_on_file"] is True
    event = await open_covered_event(client, world)
    issued = await issue_letter(client, world, event["id"], world.pass_clinic.id, ["MRI"])
    assert issued["pass_photo"]["photo_on_file"] is True and issued["pass_photo"]["pass_request_id"] is not None
    async with session_factory() as session:
        pass_request = (await session.execute(select(PassRequest))).scalar_one()
    assert (pass_request.photo_id, pass_request.photo_path) == (None, "passes/0123456789abcdef-300x400.jpg")
    assert (pass_request.photo_width, pass_request.photo_height) == (300, 400)


async def test_insured_routes_refuse_staff_and_anonymous(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    assert (await client.get("/api/me/coverage", headers=world.dispatcher)).status == 403
    assert (await client.get("/api/me/coverage")).status == 401
    assert (
        await client.post("/api/admin/payments", json={"policy_id": 1, "amount": "1.00"}, headers=world.insured)
    ).status == 403
