"""Dispatcher API: queue -> event -> clinic -> letter of guarantee -> visit details, the approval check,
letter lifecycle, refusals with rule ids, roles and audit (R2, R3, R6.2-R6.4, R7.4, R10.2)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.channels import EVENT_DISPATCH_QUEUE_CHANGED, dispatch_queue_channel
from server.clock import FixedClock
from server.db.models import (
    AuditEvent,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    LetterOfGuarantee,
    Visit,
)
from server.services.context import ServiceContext
from tests.api.dispatch_support import build_world, count_rows, issue_letter, open_covered_event, rules_of
from tests.factories import Factories, bearer


async def test_dispatcher_carries_a_request_to_a_letter_and_visit_the_insured_then_sees(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession], ctx: ServiceContext
) -> None:
    """R2.1-R2.6 end to end through HTTP: request, take, classify, allowed clinics, letter, visit, coverage card."""
    world = await build_world(client, factories)
    subscription = ctx.bus.subscribe([dispatch_queue_channel()])
    try:
        created = await client.post(
            "/api/me/requests",
            json={"component": "outpatient", "complaints": "Knee pain after a fall", "services": ["knee X-ray"]},
            headers=world.insured,
        )
        assert created.status == 201, await created.text()
        request = await created.json()
        assert request["status"] == "open" and request["source"] == "insured"
        _, message = await asyncio.wait_for(subscription.get(), 5)
        assert message["type"] == EVENT_DISPATCH_QUEUE_CHANGED
    finally:
        subscription.close()

    queue = await (await client.get("/api/dispatch/requests?status=open", headers=world.dispatcher)).json()
    assert [item["id"] for item in queue] == [request["id"]]
    assert queue[0]["person_name"] == world.person.full_name

    taken = await client.post(f"/api/dispatch/requests/{request['id']}/take", headers=world.dispatcher)
    assert taken.status == 200
    assert (await taken.json())["status"] == "in_progress"

    history = await client.get(f"/api/dispatch/persons/{world.person.id}/coverage", headers=world.dispatcher)
    assert history.status == 200
    body = await history.json()
    assert body["card"]["service_type"] == "dispatcher"
    assert body["requests"][0]["id"] == request["id"]

    event = await client.post(
        "/api/dispatch/events",
        json={
            "insured_person_id": world.person.id,
            "component": "outpatient",
            "complaints": "Knee pain after a fall",
            "request_id": request["id"],
        },
        headers=world.dispatcher,
    )
    assert event.status == 201, await event.text()
    event_body = await event.json()
    assert event_body["status"] == "open" and event_body["covered"] is True
    assert {"R2.1", "R2.2", "R10.2"} <= set(rules_of(event_body))

    clinics = await (
        await client.get(f"/api/dispatch/persons/{world.person.id}/clinics?purpose=visit", headers=world.dispatcher)
    ).json()
    offered = {option["clinic"]["id"] for option in clinics}
    assert world.clinic.id in offered and world.off_list.id not in offered  # R2.3: only allowed ones
    gate = next(option for option in clinics if option["clinic"]["id"] == world.pass_clinic.id)
    assert gate["needs_pass_photo"] is True and "R6.4" in rules_of(gate)

    issued = await issue_letter(
        client, world, event_body["id"], world.clinic.id, ["Orthopedist consultation", "knee X-ray"]
    )
    letter = issued["letter"]
    assert letter["number"] == "LG-2026-000001"
    assert letter["issued_on"] == "2026-06-10" and letter["valid_until"] == "2026-07-10"  # R3.3: one month
    assert letter["validity"] == "active" and letter["sent_to_clinic_at"] is not None
    assert issued["finished_request_ids"] == [request["id"]]
    assert "R2.5" in rules_of(issued)

    visit = await client.post(
        f"/api/dispatch/letters/{letter['id']}/visits",
        json={
            "doctor_name": "Dr. Petrov",
            "scheduled_at": "2026-06-12T10:30:00+03:00",
            "services": ["orthopedist consultation"],
        },
        headers=world.dispatcher,
    )
    assert visit.status == 201, await visit.text()
    visit_body = await visit.json()
    assert visit_body["letter_number"] == "LG-2026-000001"
    assert "5 Tverskaya St" in visit_body["text"] and "Dr. Petrov" in visit_body["text"]

    card = await (await client.get("/api/me/coverage", headers=world.insured)).json()
    assert [item["number"] for item in card["letters"]] == ["LG-2026-000001"]
    assert card["letters"][0]["validity"] == "active"
    [seen] = card["visits"]  # R2.6: address, doctor, date and time, services, letter number
    assert seen["clinic"]["address"] == "5 Tverskaya St"
    assert seen["doctor_name"] == "Dr. Petrov"
    assert seen["scheduled_at"] == "2026-06-12T10:30:00+03:00"
    assert seen["services"] == ["orthopedist consultation"]
    assert seen["letter_number"] == "LG-2026-000001"
    assert [e["id"] for e in card["open_events"]] == [event_body["id"]]
    assert card["requests"] == []  # the request is done

    done = await (await client.get("/api/dispatch/requests?status=done", headers=world.dispatcher)).json()
    assert [item["id"] for item in done] == [request["id"]]
    kinds = await _decision_kinds(session_factory, world.person.id)
    assert {"insured_request", "insured_event", "letter_issue"} <= kinds


async def _decision_kinds(session_factory: async_sessionmaker[AsyncSession], person_id: int) -> set[str]:
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(CoverageDecisionRecord.kind).where(CoverageDecisionRecord.insured_person_id == person_id)
            )
        ).scalars()
        return set(rows)


async def test_consultation_referrals_and_insured_requests_share_one_queue_oldest_first(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R11.3 referrals reach the R2 console queue next to insured requests."""
    world = await build_world(client, factories)
    await factories.add(
        DispatchRequest(
            insured_person_id=world.person.id,
            source="consultation_referral",
            complaints="referral to a cardiologist",
            requested_specialty="cardiology",
            requested_services=["ECG"],
            status="open",
            created_at=clock.now() - timedelta(hours=1),
        )
    )
    response = await client.post(
        "/api/me/requests", json={"component": "dental", "complaints": "toothache"}, headers=world.insured
    )
    assert response.status == 201
    queue = await (await client.get("/api/dispatch/requests", headers=world.dispatcher)).json()
    assert [item["source"] for item in queue] == ["consultation_referral", "insured"]


async def test_two_dispatchers_taking_one_request_one_wins(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    other = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    created = await client.post(
        "/api/me/requests", json={"component": "outpatient", "complaints": "back pain"}, headers=world.insured
    )
    request_id = (await created.json())["id"]
    first, second = await asyncio.gather(
        client.post(f"/api/dispatch/requests/{request_id}/take", headers=world.dispatcher),
        client.post(f"/api/dispatch/requests/{request_id}/take", headers=other),
    )
    assert sorted([first.status, second.status]) == [200, 409]
    loser = first if first.status == 409 else second
    assert (await loser.json())["error"]["code"] == "request_taken"


async def test_uncovered_event_is_recorded_as_rejected_with_its_reasons(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R2.2, R10.1, R10.2: dental care outside the basic program is not an insured event, and says why."""
    world = await build_world(client, factories)
    basic_policy = await factories.policy(program=world.basic_program)
    person = await factories.insured(policy=basic_policy)
    response = await client.post(
        "/api/dispatch/events",
        json={"insured_person_id": person.id, "component": "dental", "complaints": "toothache"},
        headers=world.dispatcher,
    )
    assert response.status == 201
    body = await response.json()
    assert body["status"] == "rejected" and body["covered"] is False
    assert {"R2.2", "R10.1"} <= set(rules_of(body))
    async with session_factory() as session:
        record = (
            await session.execute(
                select(CoverageDecisionRecord).where(CoverageDecisionRecord.insured_person_id == person.id)
            )
        ).scalar_one()
    assert record.kind == "insured_event" and record.allowed is False and record.actor_type == "staff"


async def test_event_dated_outside_the_policy_is_rejected_citing_r10_2(
    client: TestClient, factories: Factories
) -> None:
    world = await build_world(client, factories)
    response = await client.post(
        "/api/dispatch/events",
        json={
            "insured_person_id": world.person.id,
            "component": "outpatient",
            "complaints": "fever",
            "on": "2027-01-05",
        },
        headers=world.dispatcher,
    )
    body = await response.json()
    assert body["status"] == "rejected" and "R10.2" in rules_of(body)


async def test_letter_for_an_uncovered_component_is_refused_and_nothing_is_written(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """R10.2, R10.1, R2.2: a letter for dental services under a program without dental care -> 422."""
    world = await build_world(client, factories)
    basic_policy = await factories.policy(program=world.basic_program)
    person = await factories.insured(policy=basic_policy)
    event = await client.post(
        "/api/dispatch/events",
        json={"insured_person_id": person.id, "component": "outpatient", "complaints": "tooth and jaw pain"},
        headers=world.dispatcher,
    )
    event_id = (await event.json())["id"]
    response = await client.post(
        f"/api/dispatch/events/{event_id}/letters",
        json={"clinic_id": world.clinic.id, "services": ["tooth filling"], "component": "dental"},
        headers=world.dispatcher,
    )
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "letter_refused"
    assert {"R10.2", "R10.1", "R2.2"} <= set(rules_of(body))
    assert await count_rows(session_factory, LetterOfGuarantee) == 0
    async with session_factory() as session:
        refused = (
            await session.execute(select(CoverageDecisionRecord).where(CoverageDecisionRecord.kind == "letter_issue"))
        ).scalar_one()
    assert refused.allowed is False  # the refusal itself is on the decision trail


async def test_letter_to_a_clinic_off_the_list_or_unknown_is_refused_with_r2_3(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    for clinic_id, code in ((world.off_list.id, "letter_refused"), (999_999, "unknown_clinic")):
        response = await client.post(
            f"/api/dispatch/events/{event['id']}/letters",
            json={"clinic_id": clinic_id, "services": ["MRI"]},
            headers=world.dispatcher,
        )
        assert response.status == 422
        body = await response.json()
        assert body["error"]["code"] == code and "R2.3" in rules_of(body)
    assert await count_rows(session_factory, LetterOfGuarantee) == 0


async def test_letter_dated_outside_the_policy_is_refused_with_r10_2(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    response = await client.post(
        f"/api/dispatch/events/{event['id']}/letters",
        json={"clinic_id": world.clinic.id, "services": ["MRI"], "issued_on": "2027-02-01"},
        headers=world.dispatcher,
    )
    assert response.status == 422
    assert "R10.2" in rules_of(await response.json())
    assert await count_rows(session_factory, LetterOfGuarantee) == 0


async def test_concurrent_letters_never_share_a_number(client: TestClient, factories: Factories) -> None:
    """Numbers LG-YYYY-NNNNNN are allocated race-free (two concurrent issues, two numbers)."""
    world = await build_world(client, factories)
    first_event = await open_covered_event(client, world, complaints="knee pain")
    second_event = await open_covered_event(client, world, complaints="ear ache")
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/dispatch/events/{event['id']}/letters",
                json={"clinic_id": world.clinic.id, "services": ["consultation"]},
                headers=world.dispatcher,
            )
            for event in (first_event, second_event)
        )
    )
    assert [r.status for r in responses] == [201, 201]
    numbers = sorted([(await r.json())["letter"]["number"] for r in responses])
    assert numbers == ["LG-2026-000001", "LG-2026-000002"]


async def test_letter_to_a_pass_clinic_requests_a_pass_once_the_photo_is_on_file(
    client: TestClient, factories: Factories
) -> None:
    """R6.4: the answer says a photo is needed; with a photo on file the pass is requested."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    issued = await issue_letter(client, world, event["id"], world.pass_clinic.id, ["MRI"])
    assert issued["pass_photo"]["needed"] is True and issued["pass_photo"]["photo_on_file"] is False
    assert issued["pass_photo"]["pass_request_id"] is None and "R6.4" in rules_of(issued["pass_photo"])


async def test_visit_outside_the_letter_is_refused_with_r2_4(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    letter = (await issue_letter(client, world, event["id"], world.clinic.id, ["MRI"]))["letter"]
    for payload in (
        {"doctor_name": "Dr. A", "scheduled_at": "2026-08-01T10:00:00+03:00", "services": ["MRI"]},
        {"doctor_name": "Dr. A", "scheduled_at": "2026-06-15T10:00:00+03:00", "services": ["CT scan"]},
    ):
        response = await client.post(
            f"/api/dispatch/letters/{letter['id']}/visits", json=payload, headers=world.dispatcher
        )
        assert response.status == 422
        assert "R2.4" in rules_of(await response.json())
    naive = await client.post(
        f"/api/dispatch/letters/{letter['id']}/visits",
        json={"doctor_name": "Dr. A", "scheduled_at": "2026-06-15T10:00:00", "services": ["MRI"]},
        headers=world.dispatcher,
    )
    assert naive.status == 422 and (await naive.json())["error"]["code"] == "validation_error"
    assert await count_rows(session_factory, Visit) == 0


# ----------------------------------------------------------------------------- the approval check


async def _check(client: TestClient, headers: dict[str, str], **payload: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/dispatch/approval-check", json=payload, headers=headers)
    return response.status, await response.json()


async def test_approval_check_within_a_valid_letter_needs_no_new_approval(
    client: TestClient, factories: Factories
) -> None:
    """R3 (otherwise clause): a visit within a valid letter, for its services, at its clinic."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    letter = (await issue_letter(client, world, event["id"], world.clinic.id, ["MRI", "consultation"]))["letter"]
    status, body = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["mri"],
        insured_event_id=event["id"],
    )
    assert status == 200
    assert body["needs_approval"] is False and body["channel"] == "console"
    assert body["letter"]["number"] == letter["number"] and rules_of(body) == ["R3"]


async def test_approval_check_new_event_needs_approval_r3_1(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    status, body = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["consultation"],
        new_event=True,
    )
    assert status == 200 and body["needs_approval"] is True and "R3.1" in rules_of(body)


async def test_approval_check_new_complaints_are_a_new_event_never_guessed_from_words_R3_1_R11_5(
    client: TestClient, factories: Factories
) -> None:
    """Item 6: "Chest pain" no longer reuses the "Stomach pain" letter; only naming the event continues it."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world, complaints="Stomach pain")
    await issue_letter(client, world, event["id"], world.clinic.id, ["consultation"])
    _, new = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["consultation"],
        complaints="Chest pain",
    )
    assert new["needs_approval"] is True and new["new_event"] is True
    assert new["letter"] is None
    assert {"R3.1", "R11.5"} <= set(rules_of(new))
    _, same = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["consultation"],
        complaints="Stomach pain",
    )
    assert same["needs_approval"] is True and same["new_event"] is True  # the same words do not decide either
    _, named = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["consultation"],
        insured_event_id=event["id"],
    )
    assert named["needs_approval"] is False and named["insured_event_id"] == event["id"]


async def test_approval_check_service_not_in_the_letter_r3_2(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    await issue_letter(client, world, event["id"], world.clinic.id, ["consultation"])
    _, body = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["consultation", "MRI"],
        insured_event_id=event["id"],
    )
    assert body["needs_approval"] is True and "R3.2" in rules_of(body)
    assert body["reasons"][0]["facts"]["missing_services"] == ["MRI"]


async def test_approval_check_expired_letter_with_treatment_going_on_r3_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R3.3 by the clock: a month after issue the letter has expired; extending it is the new approval."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    letter = (await issue_letter(client, world, event["id"], world.clinic.id, ["physiotherapy"]))["letter"]
    clock.advance(timedelta(days=35))  # 2026-07-15, after valid_until 2026-07-10
    await world.relogin(client, factories)
    _, body = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["physiotherapy"],
        insured_event_id=event["id"],
    )
    assert body["needs_approval"] is True and "R3.3" in rules_of(body) and body["on"] == "2026-07-15"
    card = await (
        await client.get(f"/api/dispatch/persons/{world.person.id}/coverage", headers=world.dispatcher)
    ).json()
    assert card["card"]["letters"][0]["validity"] == "expired"

    extended = await client.post(f"/api/dispatch/letters/{letter['id']}/extend", headers=world.dispatcher)
    assert extended.status == 200
    extended_body = await extended.json()
    assert extended_body["letter"]["valid_until"] == "2026-08-15" and "R3.3" in rules_of(extended_body)
    _, after = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["physiotherapy"],
        insured_event_id=event["id"],
    )
    assert after["needs_approval"] is False


async def test_approval_check_on_a_date_after_the_letter_r3_3(client: TestClient, factories: Factories) -> None:
    """R3.3 by the visit date: the same letter is valid on its last day and expired the day after."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    await issue_letter(client, world, event["id"], world.clinic.id, ["MRI"])
    common = {
        "insured_person_id": world.person.id,
        "clinic_id": world.clinic.id,
        "services": ["MRI"],
        "insured_event_id": event["id"],
    }
    _, last_day = await _check(client, world.dispatcher, **common, on="2026-07-10")
    _, day_after = await _check(client, world.dispatcher, **common, on="2026-07-11")
    assert last_day["needs_approval"] is False
    assert day_after["needs_approval"] is True and "R3.3" in rules_of(day_after)


async def test_closed_letter_and_closed_event_never_authorize(client: TestClient, factories: Factories) -> None:
    """R2.5 (closed letter) and R3.1 (a closed event's visit is a new event); a second close is 409."""
    world = await build_world(client, factories)
    event = await open_covered_event(client, world)
    letter = (await issue_letter(client, world, event["id"], world.clinic.id, ["MRI"]))["letter"]
    closed = await client.post(f"/api/dispatch/letters/{letter['id']}/close", headers=world.dispatcher)
    assert closed.status == 200 and (await closed.json())["letter"]["status"] == "closed"
    again = await client.post(f"/api/dispatch/letters/{letter['id']}/cancel", headers=world.dispatcher)
    assert again.status == 409 and "R2.5" in rules_of(await again.json())
    _, body = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["MRI"],
        insured_event_id=event["id"],
    )
    assert body["needs_approval"] is True and "R2.5" in rules_of(body)
    ended = await client.post(f"/api/dispatch/events/{event['id']}/close", headers=world.dispatcher)
    assert ended.status == 200 and (await ended.json())["status"] == "closed"
    _, after = await _check(
        client,
        world.dispatcher,
        insured_person_id=world.person.id,
        clinic_id=world.clinic.id,
        services=["MRI"],
        insured_event_id=event["id"],
    )
    assert after["new_event"] is True and "R3.1" in rules_of(after)


async def test_approval_check_bad_input_is_4xx_with_the_rule(client: TestClient, factories: Factories) -> None:
    """Dates outside the policy (R10.2), unknown clinic and clinic off the list (R2.3), someone else's event."""
    world = await build_world(client, factories)
    base = {"insured_person_id": world.person.id, "clinic_id": world.clinic.id, "services": ["MRI"]}
    status, body = await _check(client, world.dispatcher, **base, on="2025-12-31")
    assert status == 422 and body["error"]["code"] == "outside_policy" and "R10.2" in rules_of(body)
    status, body = await _check(client, world.dispatcher, **{**base, "clinic_id": 987_654})
    assert status == 422 and body["error"]["code"] == "unknown_clinic" and "R2.3" in rules_of(body)
    status, body = await _check(client, world.dispatcher, **{**base, "clinic_id": world.off_list.id})
    assert status == 422 and body["error"]["code"] == "clinic_not_on_program" and "R2.3" in rules_of(body)
    stranger = await factories.insured(policy=world.policy)
    async with factories.session_factory() as session:
        foreign = InsuredEvent(
            insured_person_id=stranger.id,
            component="outpatient",
            complaints="x",
            status="open",
            source="dispatcher",
            covered=True,
            reasons=[],
            opened_at=factories.clock.now(),
        )
        session.add(foreign)
        await session.commit()
    status, body = await _check(client, world.dispatcher, **base, insured_event_id=foreign.id)
    assert status == 404
    status, body = await _check(client, world.dispatcher, **{**base, "insured_person_id": 123_456})
    assert status == 404


async def test_registry_person_at_the_attached_clinic_needs_no_approval_r6_2_elsewhere_r6_3(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R6.2 with an attachment letter in force; R6.3 at another clinic of the program."""
    world = await build_world(client, factories)
    registry = await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic.id, birth_date=date(1985, 1, 2)
    )
    clock.advance(timedelta(days=1))  # bundle on 2026-06-11; the letter reaches the clinic on 2026-06-15
    await world.relogin(client, factories)
    paid = await client.post(
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": str(world.policy.premium), "bundled_on": "2026-06-11"},
        headers=world.admin,
    )
    assert paid.status == 201, await paid.text()
    common = {"insured_person_id": registry.id, "services": ["cardiologist consultation"], "new_event": True}
    _, before = await _check(client, world.dispatcher, clinic_id=world.clinic.id, on="2026-06-12", **common)
    assert before["needs_approval"] is True and "R7.2" in rules_of(before)  # not yet at the clinic
    _, direct = await _check(client, world.dispatcher, clinic_id=world.clinic.id, on="2026-06-16", **common)
    assert direct["needs_approval"] is False and direct["channel"] == "clinic_registry"
    assert rules_of(direct)[0] == "R6.2"
    _, other = await _check(client, world.dispatcher, clinic_id=world.clinic_b.id, on="2026-06-16", **common)
    assert other["needs_approval"] is True and {"R6.3", "R3.1"} <= set(rules_of(other))


async def test_unpaid_installment_ends_the_attachment_r7_4(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    """R7.3/R7.4: the letter runs to the next due date; unpaid, the person needs the console's approval again."""
    dues = [date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]
    world = await build_world(client, factories, payment_mode="installments", installments=dues)
    registry = await factories.insured(
        policy=world.policy, service_type="registry", attached_clinic_id=world.clinic.id, birth_date=date(1985, 1, 2)
    )
    due = await (
        await client.get(f"/api/admin/payments/due?policy_id={world.policy.id}&due_by=2026-04-01", headers=world.admin)
    ).json()
    january = next(row for row in due if row["due_on"] == "2026-01-01")
    first = await client.post(  # R7.4: an earlier installment unpaid would block the April letter
        "/api/admin/payments",
        json={"policy_id": world.policy.id, "amount": january["amount"], "scheduled_payment_id": january["id"]},
        headers=world.admin,
    )
    assert first.status == 201
    april = next(row for row in due if row["due_on"] == "2026-04-01")
    paid = await client.post(
        "/api/admin/payments",
        json={
            "policy_id": world.policy.id,
            "amount": april["amount"],
            "scheduled_payment_id": april["id"],
            "bundled_on": "2026-03-25",
        },
        headers=world.admin,
    )
    body = await paid.json()
    [generated] = body["attachment_letters"]
    assert generated["letter"]["valid_until"] == "2026-07-01" and "R7.3" in rules_of(generated)
    common = {"insured_person_id": registry.id, "clinic_id": world.clinic.id, "services": ["ECG"], "new_event": True}
    _, in_force = await _check(client, world.dispatcher, on="2026-06-20", **common)
    assert in_force["needs_approval"] is False
    clock.advance(timedelta(days=25))  # 2026-07-05: the July installment is not bundled
    await world.relogin(client, factories)
    _, lapsed = await _check(client, world.dispatcher, **common)
    assert lapsed["needs_approval"] is True and "R7.4" in rules_of(lapsed)
    card = await (await client.get(f"/api/dispatch/persons/{registry.id}/coverage", headers=world.dispatcher)).json()
    assert card["card"]["attachment"]["effective"] is False
    assert "R7.4" in rules_of(card["card"]["attachment"])


# ----------------------------------------------------------------------------- roles and audit


async def test_insured_and_hr_cannot_use_dispatcher_routes(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    hr = bearer(await factories.login_staff(client, await factories.staff("hr")))
    for headers in (world.insured, hr, world.admin):
        for method, path, payload in (
            ("GET", "/api/dispatch/requests", None),
            ("GET", f"/api/dispatch/persons/{world.person.id}/coverage", None),
            (
                "POST",
                "/api/dispatch/approval-check",
                {"insured_person_id": world.person.id, "clinic_id": world.clinic.id},
            ),
        ):
            response = await client.request(method, path, json=payload, headers=headers)
            assert response.status == 403, (method, path)
            assert (await response.json())["error"]["code"] == "wrong_role"
    anonymous = await client.get("/api/dispatch/requests")
    assert anonymous.status == 401


async def test_dispatcher_reading_a_persons_coverage_writes_an_audit_event(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Checklist D1: who read whose coverage, when."""
    world = await build_world(client, factories)
    response = await client.get(f"/api/dispatch/persons/{world.person.id}/coverage", headers=world.dispatcher)
    assert response.status == 200
    async with session_factory() as session:
        events = (await session.execute(select(AuditEvent).where(AuditEvent.action == "coverage.read"))).scalars().all()
    assert [(e.actor, e.patient_id, e.resource_id) for e in events] == [
        (f"staff:{world.dispatcher_id}", world.person.id, str(world.person.id))
    ]


async def test_unknown_ids_are_404(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories)
    for method, path in (
        ("GET", "/api/dispatch/persons/999999/coverage"),
        ("POST", "/api/dispatch/requests/999999/take"),
        ("POST", "/api/dispatch/letters/999999/extend"),
        ("POST", "/api/dispatch/events/999999/close"),
    ):
        response = await client.request(method, path, headers=world.dispatcher)
        assert response.status == 404, path
    letter = await client.post(
        "/api/dispatch/events/999999/letters",
        json={"clinic_id": world.clinic.id, "services": ["x"]},
        headers=world.dispatcher,
    )
    assert letter.status == 404


async def test_dispatcher_finds_a_person_by_policy_number_or_name(client: TestClient, factories: Factories) -> None:
    world = await build_world(client, factories, person_overrides={"full_name": "Ivanova Anna 100%"})
    by_number = await client.get(f"/api/dispatch/persons?policy_number={world.policy.number}", headers=world.dispatcher)
    assert [p["id"] for p in await by_number.json()] == [world.person.id]
    by_name = await client.get("/api/dispatch/persons?name=anna 100%25", headers=world.dispatcher)
    assert [p["policy_number"] for p in await by_name.json()] == [world.policy.number]
    assert await (await client.get("/api/dispatch/persons?name=zz%25", headers=world.dispatcher)).json() == []
    nothing = await client.get("/api/dispatch/persons", headers=world.dispatcher)
    assert nothing.status == 400 and (await nothing.json())["error"]["code"] == "search_criteria_required"
