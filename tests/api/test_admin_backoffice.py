"""The back-office API: roles, bad files and bad records as clear 4xx, formulas never exported, staff accounts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from openpyxl import Workbook

from server.services.context import ServiceContext
from tests.factories import Factories, bearer
from tests.realtime.conftest import ORIGIN, WAIT, connect
from tests.services.records.support import corporate_client, csv_rows

ROW = "Иванов Иван;17.05.1990;+79161234567;Москва;ИТ;CORP-STD;01.02.2026"


def _upload(content: bytes, name: str = "list.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(content), filename=name, content_type="application/octet-stream")
    return form


async def _admin(client: TestClient[Any, Any], factories: Factories) -> dict[str, str]:
    return bearer(await factories.login_staff(client, await factories.staff("admin")))


async def test_only_admins_reach_the_back_office(client: TestClient[Any, Any], factories: Factories) -> None:
    assert (await client.get("/api/admin/policyholders")).status == 401
    for role in ("dispatcher", "doctor", "hr"):
        tokens = bearer(await factories.login_staff(client, await factories.staff(role)))
        for method, path in (
            ("GET", "/api/admin/policyholders"),
            ("POST", "/api/admin/staff"),
            ("GET", "/api/admin/persons/1/history"),
        ):
            response = await client.request(method, path, headers=tokens, json={})
            assert response.status == 403, (role, path)


async def test_bad_records_are_clear_400s(client: TestClient[Any, Any], factories: Factories) -> None:
    admin = await _admin(client, factories)
    holder = await (
        await client.post(
            "/api/admin/policyholders", headers=admin, json={"kind": "corporate", "name": "X", "departments": ["A"]}
        )
    ).json()
    program = await client.post(
        "/api/admin/programs",
        headers=admin,
        json={
            "code": "P1",
            "name": "P",
            "components": ["outpatient"],
            "price_category": 2,
            "tariffs": {"dispatcher": 10},
        },
    )
    assert program.status == 201
    bad_policy = await client.post(
        "/api/admin/policies",
        headers=admin,
        json={
            "number": "N-1",
            "policyholder_id": holder["id"],
            "program_id": (await program.json())["id"],
            "starts_on": "2026-01-01",
            "ends_on": "2026-12-31",
            "payment_mode": "installments",
            "premium": 1000,
            "installments": [{"due_on": "2026-01-01", "amount": 500}, {"due_on": "2027-01-01", "amount": 400}],
        },
    )
    assert bad_policy.status == 400
    fields = {p["field"] for p in (await bad_policy.json())["error"]["details"]["problems"]}
    assert fields == {"installments", "installments.1.due_on"}
    bad_point = await client.post(
        "/api/admin/dispatch-points",
        headers=admin,
        json={
            "kind": "branch_curator",
            "city": "Казань",
            "name": "Казань",
            "phone": "+78430000000",
            "timezone": "Europe/Nowhere",
            "hours": {"0": ["09:00"]},
        },
    )
    assert bad_point.status == 400
    assert {p["field"] for p in (await bad_point.json())["error"]["details"]["problems"]} == {"timezone", "hours"}
    point = await client.post(
        "/api/admin/dispatch-points",
        headers=admin,
        json={
            "kind": "branch_curator",
            "city": "Казань",
            "name": "Казань",
            "phone": "+78430000000",
            "timezone": "Europe/Moscow",
            "hours": {"4": ["20:00", "24:00"], "5": ["00:00", "02:00"]},
        },
    )
    assert point.status == 201  # a Friday night to Saturday 02:00 (R9.5)
    unknown_clinic = await client.put(
        f"/api/admin/programs/{(await program.json())['id']}/clinics", headers=admin, json={"clinic_ids": [999999]}
    )
    assert unknown_clinic.status == 404


async def test_files_that_cannot_be_lists_are_refused_and_nothing_is_written(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    admin = await _admin(client, factories)
    setup = await corporate_client(ctx)
    other = await corporate_client(ctx, code="OTHER", number="VHI-OTHER-1")
    url = f"/api/admin/policyholders/{setup.holder.id}/insured-lists"
    assert (await client.post(url, headers=admin, data=_upload(b"\x89PNG\r\n\x1a\n\x00\x00"))).status == 415
    empty = await client.post(url, headers=admin, data=_upload(b""))
    assert empty.status == 400 and (await empty.json())["error"]["code"] == "empty_file"
    huge = await client.post(url, headers=admin, data=_upload(b"a;b\n" * (13 * 1024 * 1024)))
    assert huge.status == 413
    header = "ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала;Полис"
    foreign = await client.post(url, headers=admin, data=_upload(csv_rows(ROW + ";VHI-OTHER-1", header=header)))
    assert foreign.status == 422
    body = await foreign.json()
    assert body["error"]["details"]["problems"] == [
        {"row": 2, "column": "policy", "value": "VHI-OTHER-1", "reason": "the policy belongs to another policyholder"}
    ]
    assert other.holder.id != setup.holder.id
    listed = await (
        await client.get(f"/api/admin/policyholders/{setup.holder.id}/insured-list.csv", headers=admin)
    ).text()
    assert listed.count("\n") == 1  # only the header: nothing was written


async def test_a_formula_comes_in_as_text_and_never_goes_out_as_a_formula(
    client: TestClient[Any, Any], factories: Factories, ctx: ServiceContext
) -> None:
    admin = await _admin(client, factories)
    setup = await corporate_client(ctx)
    book = Workbook()
    sheet = book.active
    sheet.append(["ФИО", "Дата рождения", "Телефон", "Город", "Подразделение", "Программа", "Дата начала"])
    sheet.append(
        [
            "Иванов Иван",
            "17.05.1990",
            "+79161234567",
            '=HYPERLINK("http://evil.example","Москва")',
            "ИТ",
            "CORP-STD",
            "01.02.2026",
        ]
    )
    data = io.BytesIO()
    book.save(data)
    url = f"/api/admin/policyholders/{setup.holder.id}/insured-lists"
    loaded = await client.post(url, headers=admin, data=_upload(data.getvalue(), "list.xlsx"))
    assert loaded.status == 200, await loaded.text()
    exported = await (
        await client.get(f"/api/admin/policyholders/{setup.holder.id}/insured-list.csv", headers=admin)
    ).text()
    header, row = list(csv.reader(io.StringIO(exported.lstrip("\ufeff")), delimiter=";"))
    cells = dict(zip(header, row, strict=True))
    assert cells["city"] == """'=HYPERLINK("http://evil.example","Москва")"""  # shown as text by a spreadsheet
    assert cells["phone"] == "+79161234567"  # a phone number is not mistaken for a formula


async def test_staff_lifecycle_over_http_and_disable_closes_open_sockets_at_once_a6(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    admin = await _admin(client, factories)
    created = await client.post(
        "/api/admin/staff",
        headers=admin,
        json={
            "username": "dr.petrova",
            "role": "doctor",
            "full_name": "Петрова Мария",
            "specialties": ["general_practice"],
            "timezone": "Asia/Yekaterinburg",
        },
    )
    assert created.status == 201, await created.text()
    body = await created.json()
    account_id, code = body["account"]["id"], body["set_password"]["code"]
    assert "password_hash" not in json.dumps(body)
    weak = await client.post("/api/auth/password/set", json={"code": code, "password": "dr.petrova-123456"})
    assert weak.status == 400
    assert (
        await client.post("/api/auth/password/set", json={"code": code, "password": "correct horse battery"})
    ).status == 200
    assert (
        await client.post("/api/auth/password/set", json={"code": code, "password": "another long one"})
    ).status == 401
    login = await client.post("/api/auth/login", json={"username": "dr.petrova", "password": "correct horse battery"})
    assert login.status == 200
    doctor_tokens = await login.json()
    socket = await connect(client, doctor_tokens)

    disabled = await client.post(f"/api/admin/staff/{account_id}/disable", headers=admin)
    assert disabled.status == 200 and (await disabled.json())["is_active"] is False
    async with asyncio.timeout(1.0):
        while True:
            message = await socket.ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
    assert message.data == 4001
    assert (await client.get("/api/me", headers=bearer(doctor_tokens))).status == 401
    history = await (await client.get(f"/api/admin/staff/{account_id}/history", headers=admin)).json()
    assert [h["action"] for h in history] == ["created", "password_set", "disable"]
    assert ORIGIN and WAIT
