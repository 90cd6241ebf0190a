"""The duty roster through the HTTP API: shifts, import, a doctor's own view, coverage and gap alerts (R11.2)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.db.models import DutyShift, RosterAlert, StaffAccount
from server.keys import context_key
from server.services.context import ServiceContext
from tests.factories import Factories, bearer
from tests.fakes import RecordingSender


def _iso(value: datetime) -> str:
    return value.isoformat()


async def _admin(client: TestClient, factories: Factories) -> dict[str, str]:
    return bearer(await factories.login_staff(client, await factories.staff("admin")))


async def _shift_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(DutyShift))).scalar_one())


def _shift(
    doctor: StaffAccount, start: datetime, hours: float = 12, specialty: str = "general_practice"
) -> dict[str, Any]:
    return {
        "doctor_id": doctor.id,
        "specialty": specialty,
        "starts_at": _iso(start),
        "ends_at": _iso(start + timedelta(hours=hours)),
    }


async def test_admin_adds_a_shift_and_doctors_see_theirs_in_local_time(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor", specialties=["general_practice", "pediatrics"], full_name="Dr. Petrov")
    start = clock.now() + timedelta(hours=3)
    created = await client.post("/api/roster/shifts", json=_shift(doctor, start, 8, "pediatrics"), headers=admin)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert (body["doctor_name"], body["specialty"], body["hours"]) == ("Dr. Petrov", "pediatrics", 8)

    listed = await (await client.get("/api/roster", params={"specialty": "pediatrics"}, headers=admin)).json()
    assert [s["id"] for s in listed] == [body["id"]]

    own = bearer(await factories.login_staff(client, doctor))
    mine = await (await client.get("/api/roster/mine", params={"tz": "Asia/Yekaterinburg"}, headers=own)).json()
    assert len(mine) == 1
    assert mine[0]["starts_at"] == "2026-06-10T12:00:00Z"
    assert mine[0]["local"] == {
        "timezone": "Asia/Yekaterinburg",
        "starts_at": "2026-06-10T17:00:00+05:00",
        "ends_at": "2026-06-11T01:00:00+05:00",
    }
    moscow = await (await client.get("/api/roster/mine", headers=own)).json()
    assert moscow[0]["local"]["starts_at"] == "2026-06-10T15:00:00+03:00"
    bad_tz = await client.get("/api/roster/mine", params={"tz": "Mars/Olympus"}, headers=own)
    assert bad_tz.status == 400
    assert (await bad_tz.json())["error"]["code"] == "unknown_timezone"


async def test_a_shift_given_with_an_offset_is_stored_in_utc(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor")
    payload = {
        "doctor_username": doctor.username,
        "specialty": "general_practice",
        "starts_at": "2026-06-11T09:00:00+03:00",
        "ends_at": "2026-06-11T21:00:00+03:00",
    }
    created = await client.post("/api/roster/shifts", json=payload, headers=admin)
    assert created.status == 201
    assert (await created.json())["starts_at"] == "2026-06-11T06:00:00Z"


async def test_bad_shifts_are_refused_and_nothing_is_written(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor", specialties=["general_practice"])
    start = clock.now() + timedelta(hours=1)
    assert (await client.post("/api/roster/shifts", json=_shift(doctor, start, 8), headers=admin)).status == 201
    cases: list[tuple[dict[str, Any], int, str]] = [
        (_shift(doctor, start + timedelta(hours=4), 8), 409, "shift_overlap"),
        (_shift(doctor, start + timedelta(hours=10), 0), 400, "invalid_shift_period"),
        (_shift(doctor, start + timedelta(hours=10), -2), 400, "invalid_shift_period"),
        (_shift(doctor, start + timedelta(hours=10), 25), 400, "shift_too_long"),
        (_shift(doctor, start + timedelta(hours=10), 8, "cardiology"), 400, "doctor_lacks_specialty"),
        (_shift(doctor, start + timedelta(hours=10), 8, "astrology"), 400, "unknown_specialty"),
        ({**_shift(doctor, start + timedelta(hours=10)), "doctor_id": 999_999}, 400, "unknown_doctor"),
        ({**_shift(doctor, start + timedelta(hours=10)), "starts_at": "2026-06-12T09:00:00"}, 422, "validation_error"),
        ({**_shift(doctor, start + timedelta(hours=10)), "doctor_username": "x"}, 422, "validation_error"),
    ]
    for payload, status, code in cases:
        response = await client.post("/api/roster/shifts", json=payload, headers=admin)
        assert response.status == status, (payload, await response.text())
        assert (await response.json())["error"]["code"] == code
    assert await _shift_count(session_factory) == 1


async def test_back_to_back_shifts_are_not_an_overlap(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor")
    start = clock.now()
    assert (await client.post("/api/roster/shifts", json=_shift(doctor, start), headers=admin)).status == 201
    assert (
        await client.post("/api/roster/shifts", json=_shift(doctor, start + timedelta(hours=12)), headers=admin)
    ).status == 201


async def test_only_admins_edit_and_dispatchers_read_the_roster(client: TestClient, factories: Factories) -> None:
    doctor = await factories.staff("doctor")
    doctor_auth = bearer(await factories.login_staff(client, doctor))
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    insured = bearer(await factories.login_insured(client, await factories.insured()))
    payload = _shift(doctor, datetime(2026, 6, 11, tzinfo=datetime.now().astimezone().tzinfo))
    assert (await client.post("/api/roster/shifts", json=payload, headers=doctor_auth)).status == 403
    assert (await client.post("/api/roster/shifts", json=payload, headers=dispatcher)).status == 403
    assert (await client.get("/api/roster", headers=dispatcher)).status == 200
    assert (await client.get("/api/roster/coverage", headers=dispatcher)).status == 200
    assert (await client.get("/api/roster", headers=doctor_auth)).status == 403
    assert (await client.get("/api/roster", headers=insured)).status == 403
    assert (await client.get("/api/roster/mine", headers=dispatcher)).status == 403
    assert (await client.get("/api/admin/roster-alerts", headers=dispatcher)).status == 403
    assert (await client.get("/api/roster")).status == 401


async def test_patch_and_delete_a_shift(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor", specialties=["general_practice", "cardiology"])
    start = clock.now() + timedelta(hours=1)
    first = await (await client.post("/api/roster/shifts", json=_shift(doctor, start, 4), headers=admin)).json()
    second = await (
        await client.post("/api/roster/shifts", json=_shift(doctor, start + timedelta(hours=5), 4), headers=admin)
    ).json()
    changed = await client.patch(
        f"/api/roster/shifts/{first['id']}",
        json={"specialty": "cardiology", "ends_at": _iso(start + timedelta(hours=5))},
        headers=admin,
    )
    assert changed.status == 200
    assert (await changed.json())["specialty"] == "cardiology"
    into_overlap = await client.patch(
        f"/api/roster/shifts/{first['id']}", json={"ends_at": _iso(start + timedelta(hours=6))}, headers=admin
    )
    assert into_overlap.status == 409
    assert (await into_overlap.json())["error"]["code"] == "shift_overlap"
    assert (
        await client.patch("/api/roster/shifts/999999", json={"specialty": "cardiology"}, headers=admin)
    ).status == 404
    deleted = await client.delete(f"/api/roster/shifts/{second['id']}", headers=admin)
    assert deleted.status == 204
    assert (await client.delete(f"/api/roster/shifts/{second['id']}", headers=admin)).status == 404
    assert await _shift_count(session_factory) == 1


async def test_json_import_is_all_or_nothing_and_names_the_bad_rows(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _admin(client, factories)
    gp = await factories.staff("doctor", specialties=["general_practice"])
    start = clock.now() + timedelta(days=1)

    def row(
        username: str, offset_hours: float, hours: float = 12, specialty: str = "general_practice"
    ) -> dict[str, str]:
        return {
            "doctor_username": username,
            "specialty": specialty,
            "starts_at": _iso(start + timedelta(hours=offset_hours)),
            "ends_at": _iso(start + timedelta(hours=offset_hours + hours)),
        }

    bad = [row(gp.username, 0), row("nobody", 0), row(gp.username, 6), row(gp.username, 24, specialty="cardiology")]
    refused = await client.post("/api/roster/import", json=bad, headers=admin)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "invalid_roster"
    by_row = {e["row"]: " ".join(e["errors"]) for e in error["details"]["errors"]}
    assert set(by_row) == {1, 2, 3, 4}
    assert "unknown doctor" in by_row[2]
    assert "overlaps row 3" in by_row[1] and "overlaps row 1" in by_row[3]
    assert "cardiology" in by_row[4]
    assert await _shift_count(session_factory) == 0

    good = [row(gp.username, 0), row(gp.username, 12), {"shifts": None}]
    malformed = await client.post("/api/roster/import", json=good, headers=admin)
    assert malformed.status == 422
    assert (await malformed.json())["error"]["details"]["errors"][0]["row"] == 3

    imported = await client.post("/api/roster/import", json={"shifts": good[:2]}, headers=admin)
    assert imported.status == 201, await imported.text()
    assert ((await imported.json())["created"], (await imported.json())["unchanged"]) == (2, 0)
    again = await client.post("/api/roster/import", json=good[:2], headers=admin)
    assert ((await again.json())["created"], (await again.json())["unchanged"]) == (0, 2)
    assert await _shift_count(session_factory) == 2


async def test_csv_import(
    client: TestClient, factories: Factories, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _admin(client, factories)
    gp = await factories.staff("doctor", specialties=["general_practice"])
    csv_text = (
        "doctor_username,specialty,starts_at,ends_at\n"
        f"{gp.username},general_practice,2026-06-11T08:00:00+03:00,2026-06-11T20:00:00+03:00\n"
        f"{gp.username},general_practice,2026-06-12T08:00:00+03:00,2026-06-12T20:00:00+03:00\n"
    )
    headers = {**admin, "Content-Type": "text/csv"}
    imported = await client.post("/api/roster/import", data=csv_text.encode(), headers=headers)
    assert imported.status == 201, await imported.text()
    assert (await imported.json())["shifts"][0]["starts_at"] == "2026-06-11T05:00:00Z"

    broken = csv_text.replace("2026-06-12T08:00:00+03:00", "tomorrow morning") + f"{gp.username},gp,x\n"
    refused = await client.post("/api/roster/import", data=broken.encode(), headers=headers)
    assert refused.status == 422
    rows = {e["row"] for e in (await refused.json())["error"]["details"]["errors"]}
    assert rows == {2, 3}
    no_header = await client.post("/api/roster/import", data=b"a,b\n1,2\n", headers=headers)
    assert no_header.status == 400
    assert (await no_header.json())["error"]["code"] == "malformed_csv"
    xml = await client.post("/api/roster/import", data=b"<x/>", headers={**admin, "Content-Type": "application/xml"})
    assert xml.status == 415
    assert await _shift_count(session_factory) == 2


async def test_an_uncovered_hour_raises_an_r11_2_alert_visible_to_admins_and_in_the_metric(
    client: TestClient, factories: Factories, clock: FixedClock, ctx: ServiceContext
) -> None:
    """R11.2: one hour with no general practitioner on duty is an alarm: admin API, metric and log."""
    admin = await _admin(client, factories)
    gp1 = await factories.staff("doctor")
    gp2 = await factories.staff("doctor")
    day = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for n in range(16):
        start = day + timedelta(days=n)
        doctor = gp1 if n % 2 else gp2
        rows.append({"doctor_username": doctor.username, "specialty": "general_practice", "starts_at": _iso(start),
                     "ends_at": _iso(start + timedelta(hours=24))})  # fmt: skip
    # Leave 2026-06-12 03:00-04:00 UTC uncovered.
    rows[2]["ends_at"] = _iso(day + timedelta(days=2, hours=3))
    rows.insert(
        3, {**rows[2], "starts_at": _iso(day + timedelta(days=2, hours=4)), "ends_at": _iso(day + timedelta(days=3))}
    )
    assert (await client.post("/api/roster/import", json=rows, headers=admin)).status == 201

    coverage = await (await client.get("/api/roster/coverage", params={"weeks": 2}, headers=admin)).json()
    assert coverage["ok"] is False
    gp = next(s for s in coverage["specialties"] if s["specialty"] == "general_practice")
    assert gp["alert"] and gp["rule"] == "R11.2"
    assert gp["gaps"] == [{"start": "2026-06-12T03:00:00Z", "end": "2026-06-12T04:00:00Z", "hours": 1.0}]
    assert gp["gap_hours"] == 1.0
    assert gp["uncovered_hours"] == ["2026-06-12T03:00:00Z"]
    cardiology = next(s for s in coverage["specialties"] if s["specialty"] == "cardiology")
    assert cardiology["alert"] is False and cardiology["gap_hours"] == 336.0

    alerts = await (await client.get("/api/admin/roster-alerts", headers=admin)).json()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["specialty"], alert["rule"], alert["hours"]) == ("general_practice", "R11.2", 1.0)
    assert alert["gap_start"] == "2026-06-12T03:00:00Z"
    assert "no general practitioner on duty" in alert["message"]
    assert ctx.metrics.roster_gap_hours.labels(specialty="general_practice")._value.get() == 1.0

    metrics = await (await client.get("/metrics")).text()
    assert 'telemed_roster_gap_hours{specialty="general_practice"} 1.0' in metrics

    # Checking again does not duplicate the alert; filling the hour resolves it.
    await client.get("/api/roster/coverage", headers=admin)
    assert len(await (await client.get("/api/admin/roster-alerts", headers=admin)).json()) == 1
    filler = await factories.staff("doctor")
    fill = {"doctor_id": filler.id, "specialty": "general_practice", "starts_at": "2026-06-12T02:00:00Z",
            "ends_at": "2026-06-12T05:00:00Z"}  # fmt: skip
    assert (await client.post("/api/roster/shifts", json=fill, headers=admin)).status == 201
    assert await (await client.get("/api/admin/roster-alerts", headers=admin)).json() == []
    history = await (
        await client.get("/api/admin/roster-alerts", params={"include_resolved": "true"}, headers=admin)
    ).json()
    assert [(a["resolution"], a["resolved_at"] is not None) for a in history] == [("filled", True)]
    assert ctx.metrics.roster_gap_hours.labels(specialty="general_practice")._value.get() == 0.0


async def test_a_deleted_shift_that_opens_a_gap_raises_the_alert_at_once_r11_2(
    client: TestClient, factories: Factories, clock: FixedClock, caplog: Any
) -> None:
    admin = await _admin(client, factories)
    gps = [await factories.staff("doctor"), await factories.staff("doctor")]  # alternate days: 24 h on, 24 h off
    start = clock.now().replace(minute=0)
    ids = []
    for n in range(15):
        payload = _shift(gps[n % 2], start + timedelta(days=n), 24)
        ids.append((await (await client.post("/api/roster/shifts", json=payload, headers=admin)).json())["id"])
    assert await (await client.get("/api/admin/roster-alerts", headers=admin)).json() == []
    caplog.set_level("WARNING")
    assert (await client.delete(f"/api/roster/shifts/{ids[3]}", headers=admin)).status == 204
    alerts = await (await client.get("/api/admin/roster-alerts", headers=admin)).json()
    assert [(a["hours"], a["gap_start"]) for a in alerts] == [
        (24.0, _iso(start + timedelta(days=3)).replace("+00:00", "Z"))
    ]
    assert any("R11.2 roster gap" in r.getMessage() for r in caplog.records)


async def test_a_gap_under_way_stays_one_alert_as_time_passes(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = await _admin(client, factories)
    for _ in range(3):
        await client.get("/api/roster/coverage", headers=admin)
        clock.advance(timedelta(hours=1))
    async with session_factory() as session:
        alerts = list((await session.execute(select(RosterAlert))).scalars())
    assert len(alerts) == 1
    assert alerts[0].gap_start == datetime(2026, 6, 10, 9, 0, tzinfo=clock.now().tzinfo)


async def test_the_background_check_raises_alerts_without_anyone_asking(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FixedClock, sender: RecordingSender
) -> None:
    app = create_app(
        settings.model_copy(update={"roster_check_interval_seconds": 0.05}), clock=clock, code_sender=sender
    )
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    ctx = client.app[context_key]
    async with asyncio.timeout(10):
        while ctx.metrics.roster_gap_hours.labels(specialty="general_practice")._value.get() == 0:
            await asyncio.sleep(0.05)
    async with ctx.session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(RosterAlert))).scalar_one() == 1


async def test_a_24_hour_shift_next_to_a_12_hour_one_is_refused_as_36_hours_on_duty(
    client: TestClient, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Continuous duty is limited (TELEMED_MAX_CONTINUOUS_DUTY_HOURS, 24 by default), by route and by import."""
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor", specialties=["general_practice", "cardiology"])
    start = clock.now() + timedelta(hours=2)
    first = await client.post("/api/roster/shifts", json=_shift(doctor, start, 24), headers=admin)
    assert first.status == 201, await first.text()
    after = await client.post(
        "/api/roster/shifts", json=_shift(doctor, start + timedelta(hours=24), 12, "cardiology"), headers=admin
    )
    assert after.status == 409
    body = await after.json()
    assert body["error"]["code"] == "continuous_duty_too_long" and body["error"]["details"]["hours"] == 36
    before = await client.post("/api/roster/shifts", json=_shift(doctor, start - timedelta(hours=1), 1), headers=admin)
    assert before.status == 409
    imported = await client.post(
        "/api/roster/import",
        json=[
            {
                "doctor_username": doctor.username,
                "specialty": "general_practice",
                "starts_at": _iso(start + timedelta(hours=24)),
                "ends_at": _iso(start + timedelta(hours=36)),
            }
        ],
        headers=admin,
    )
    assert imported.status == 422, await imported.text()
    assert "without a break" in str(await imported.json())
    rested = await client.post(
        "/api/roster/shifts", json=_shift(doctor, start + timedelta(hours=32), 12), headers=admin
    )
    assert rested.status == 201
    assert await _shift_count(session_factory) == 2


async def test_my_shifts_are_shown_in_my_own_time_zone(
    client: TestClient, factories: Factories, clock: FixedClock
) -> None:
    admin = await _admin(client, factories)
    doctor = await factories.staff("doctor", specialties=["general_practice"])
    start = clock.now() + timedelta(hours=3)
    assert (await client.post("/api/roster/shifts", json=_shift(doctor, start, 8), headers=admin)).status == 201
    own = bearer(await factories.login_staff(client, doctor))
    saved = await client.put("/api/roster/mine/time-zone", json={"tz": "Asia/Vladivostok"}, headers=own)
    assert saved.status == 200 and (await saved.json())["tz"] == "Asia/Vladivostok"
    mine = await (await client.get("/api/roster/mine", headers=own)).json()
    assert mine[0]["local"]["timezone"] == "Asia/Vladivostok"
    assert mine[0]["local"]["starts_at"].endswith("+10:00")
    asked = await (await client.get("/api/roster/mine", params={"tz": "Europe/Moscow"}, headers=own)).json()
    assert asked[0]["local"]["starts_at"].endswith("+03:00")
    bad = await client.put("/api/roster/mine/time-zone", json={"tz": "Mars/Olympus"}, headers=own)
    assert bad.status == 400
