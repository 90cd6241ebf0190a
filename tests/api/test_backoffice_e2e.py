# ruff: noqa: RUF001 (Russian names, cities and departments are Cyrillic on purpose)
"""Done-when of the back office (issue 16), through the HTTP API: a new corporate client from nothing.

An admin creates the policyholder, a program with its clinics, a policy paid in installments and loads
1,000 employees from a cp1251 ';' CSV; one employee logs in by policy and consults a doctor; a new version
of the list removes one person and moves another to another department: the removed person can no longer
log in and their history stays.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from server.domain.consent import CURRENT_TEXTS
from server.domain.red_flags import CODES as RED_FLAG_CODES
from tests.factories import Factories, bearer
from tests.fakes import RecordingSender

HEADER = "ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала"
DEPARTMENTS = ["Продажи", "ИТ", "Бухгалтерия"]
LETTERS = "абвгдежзиклмнопрстуфхцчшэюя"


def _name(index: int) -> str:
    letters = ""
    while True:
        index, rest = divmod(index, len(LETTERS))
        letters = LETTERS[rest] + letters
        if index == 0:
            break
    return f"Сотрудников {letters.capitalize()} Иванович"


def employee_row(index: int, department: str | None = None) -> str:
    """One employee: a unique birth date and mobile number, a department in turn."""
    birth = date(1970, 1, 1) + timedelta(days=index * 9)
    dept = department or DEPARTMENTS[index % len(DEPARTMENTS)]
    phone = f"+7 916 {index:03d}-{index % 100:02d}-{index % 97:02d}"
    return f"{_name(index)};{birth:%d.%m.%Y};{phone};Москва;{dept};CORP-2026;01.02.2026"


def employees_csv(rows: list[str]) -> bytes:
    """As a Russian office's Excel saves it: cp1251, ';', CRLF."""
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp1251")


async def _ok(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


def _upload(content: bytes, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name, content_type="text/csv")
    return form


async def test_a_new_corporate_client_from_nothing_to_a_consultation_and_a_new_list_version(
    client: TestClient[Any, Any], factories: Factories, sender: RecordingSender
) -> None:
    admin = bearer(await factories.login_staff(client, await factories.staff("admin")))

    holder = await _ok(
        await client.post(
            "/api/admin/policyholders",
            headers=admin,
            json={
                "kind": "corporate",
                "name": "АО Новый клиент",
                "tax_id": "7701000001",
                "departments": DEPARTMENTS,
            },
        ),
        201,
    )
    clinics = [
        await _ok(
            await client.post(
                "/api/admin/clinics",
                headers=admin,
                json={
                    "name": f"Клиника {n}",
                    "city": "Москва",
                    "address": f"ул. Ленина, {n}",
                    "phone": f"+7495000000{n}",
                    "price_category": 2,
                    "has_access_system": n == 2,
                },
            ),
            201,
        )
        for n in (1, 2)
    ]
    bad_program = await client.post(
        "/api/admin/programs",
        headers=admin,
        json={
            "code": "BAD",
            "name": "Bad",
            "components": ["outpatient"],
            "price_category": 2,
            "tariffs": {"dispatcher": -1},
        },
    )
    assert bad_program.status == 400
    assert "negative" in (await bad_program.json())["error"]["message"]
    program = await _ok(
        await client.post(
            "/api/admin/programs",
            headers=admin,
            json={
                "code": "CORP-2026",
                "name": "Корпоративная 2026",
                "components": ["outpatient", "ambulance", "telemedicine"],
                "price_category": 2,
                "tariffs": {"dispatcher": 30000, "registry": 41000},
                "registry_offered": True,
                "telemedicine_allowance_per_year": 12,
                "clinic_ids": [c["id"] for c in clinics],
            },
        ),
        201,
    )
    assert program["clinic_ids"] == [c["id"] for c in clinics]
    policy = await _ok(
        await client.post(
            "/api/admin/policies",
            headers=admin,
            json={
                "number": "VHI-NC-2026",
                "policyholder_id": holder["id"],
                "program_id": program["id"],
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
                "payment_mode": "installments",
                "premium": 30000000,
                "installments": [{"due_on": f"2026-{m:02d}-01", "amount": 7500000} for m in (1, 4, 7, 10)],
            },
        ),
        201,
    )
    assert len(policy["installments"]) == 4

    rows = [employee_row(i) for i in range(1000)]
    url = f"/api/admin/policyholders/{holder['id']}/insured-lists"
    preview = await _ok(
        await client.post(url + "?dry_run=true", headers=admin, data=_upload(employees_csv(rows), "staff.csv"))
    )
    assert preview["counts"]["added"] == 1000 and not preview["applied"]
    assert (preview["encoding"], preview["delimiter"]) == ("cp1251", ";")
    loaded = await _ok(await client.post(url, headers=admin, data=_upload(employees_csv(rows), "staff.csv")))
    assert loaded["applied"] and loaded["counts"]["added"] == 1000

    # One employee logs in by policy and consults a doctor.
    doctor = await factories.staff("doctor", full_name="Доктор Айболит")
    await factories.shift(doctor, hours=12)
    await factories.online(doctor)
    employee_birth = (date(1970, 1, 1) + timedelta(days=7 * 9)).isoformat()
    started = await _ok(
        await client.post(
            "/api/auth/policy/start",
            json={
                "policy_number": "VHI-NC-2026",
                "birth_date": employee_birth,
            },
        )
    )
    patient = await _ok(
        await client.post(
            "/api/auth/policy/verify",
            json={
                "challenge_id": started["challenge_id"],
                "code": sender.last_code("+79160070707"),
            },
        )
    )
    me = await _ok(await client.get("/api/me", headers=bearer(patient)))
    assert me is not None
    for text in CURRENT_TEXTS.values():  # checklist E1: both consents before the first consultation
        await _ok(
            await client.post(
                "/api/me/consents",
                headers=bearer(patient),
                json={"kind": text.kind.value, "version": text.version, "language": "ru"},
            ),
            201,
        )
    requested = await _ok(
        await client.post(
            "/api/consultations",
            headers=bearer(patient),
            json={
                "channel": "text",
                "specialty": "general_practice",
                "complaints": "headache for two days",
                "red_flags": dict.fromkeys(RED_FLAG_CODES, False),
            },
        ),
        201,
    )
    staff_tokens = await factories.login_staff(client, doctor)
    await _ok(await client.post(f"/api/consultations/{requested['id']}/accept", headers=bearer(staff_tokens)))
    await _ok(
        await client.post(
            f"/api/consultations/{requested['id']}/complete",
            headers=bearer(staff_tokens),
            json={
                "notes": "Tension headache; rest, fluids, paracetamol as needed.",
                "icd10_code": "G44.2",
                "outcome": "advice",
            },
        )
    )

    # A new version: employee 7 leaves, employee 8 moves to another department.
    new_rows = [r for i, r in enumerate(rows) if i != 7]
    new_rows[7] = employee_row(8, department="Бухгалтерия" if DEPARTMENTS[8 % 3] != "Бухгалтерия" else "ИТ")
    dry = await _ok(
        await client.post(url + "?dry_run=true", headers=admin, data=_upload(employees_csv(new_rows), "v2.csv"))
    )
    assert dry["counts"] == {"added": 0, "changed": 1, "removed": 1, "unchanged": 998}
    assert [p["full_name"] for p in dry["removed"]] == [_name(7)]
    assert list(dry["changed"][0]["changes"]) == ["department"]
    applied = await _ok(await client.post(url, headers=admin, data=_upload(employees_csv(new_rows), "v2.csv")))
    assert applied["applied"]

    assert (await client.get("/api/me", headers=bearer(patient))).status == 401  # sessions ended at once
    sent = len(sender.messages)
    await _ok(
        await client.post("/api/auth/policy/start", json={"policy_number": "VHI-NC-2026", "birth_date": employee_birth})
    )
    assert len(sender.messages) == sent  # no code for a removed person (same answer as for anyone, A9)
    removed_id = dry["removed"][0]["person_id"]
    history = await _ok(await client.get(f"/api/admin/persons/{removed_id}/history", headers=admin))
    assert [h["action"] for h in history] == ["added", "removed", "coverage_ended"]
    assert [h["file_name"] for h in history[:2]] == ["staff.csv", "v2.csv"]
    again = await _ok(await client.post(url, headers=admin, data=_upload(employees_csv(new_rows), "v2.csv")))
    assert not again["applied"] and again["counts"]["unchanged"] == 999
    exported = await client.get(f"/api/admin/policyholders/{holder['id']}/insured-list.csv", headers=admin)
    assert exported.status == 200
    assert (await exported.text()).count("\n") == 1001  # header + everyone, the removed person included
