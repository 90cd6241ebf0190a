"""Corporate HR through the API: usage, health, exports, and medical secrecy (R12, R12.5, checklist C3, E5, F1-F3).

The clock stands at 2026-06-10, so May 2026 is the newest published month.
"""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.db.models import AuditEvent, Consultation, HrMonthSnapshot, InsuredPerson, Policyholder, StaffAccount
from server.db.repositories.hr import month_counts
from server.domain.hr_reports import SCALARS, TABLES, Month, PublishedMonth
from server.domain.privacy import HR_FORBIDDEN_FIELDS
from tests.domain.hr_support import independent_audit
from tests.factories import Factories, bearer, json_keys

K = 11
MAY = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
CODES = ("J06.9", "I10", "M54.5", "K29.7", "F41.1", "J20.9")


async def _company(
    factories: Factories, *, persons: int = 40, consultations: int = 60, seed: int = 1
) -> dict[str, Any]:
    """A corporate client with staff in two departments and consultations in May 2026."""
    rng = random.Random(seed)
    holder = await factories.policyholder(name=f"Acme {seed}")
    async with factories.session_factory() as session:
        row = await session.get(Policyholder, holder.id)
        assert row is not None
        row.account_manager = "Irina Petrova, +7 495 111-22-33, i.petrova@insurer.example"
        await session.commit()
    policy = await factories.policy(policyholder=holder, starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31))
    doctor = await factories.staff("doctor")
    staff = [
        InsuredPerson(
            policy_id=policy.id,
            full_name=f"Employee Secretname{i}",
            birth_date=date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
            phone=f"+7900{seed:03d}{i:04d}",
            city="Moscow",
            department="Sales" if i % 3 else "Legal",
            service_type="registry" if i % 7 == 0 else "dispatcher",
            is_active=True,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for i in range(persons)
    ]
    await factories.add(*staff)  # one transaction: the suite builds many such companies
    rows = []
    for j in range(consultations):
        person = rng.choice(staff)
        started = MAY + timedelta(days=rng.randrange(30), minutes=rng.randrange(600))
        rows.append(
            Consultation(
                insured_person_id=person.id,
                policyholder_id=holder.id,
                department=person.department,
                channel=rng.choice(("text", "audio", "video")),
                specialty=rng.choice(("general_practice", "cardiology")),
                complaints="HIV test positive, very secret complaint",
                status="completed",
                doctor_id=doctor.id,
                requested_at=started - timedelta(minutes=rng.randrange(1, 40)),
                accepted_at=started,
                completed_at=started + timedelta(minutes=20),
                icd10_code=rng.choice(CODES),
                outcome="referral" if j % 5 == 0 else "advice",
                notes="secret notes",
                last_seq=0,
                skipped_doctor_ids=[],
                referral_services=[],
            )
        )
    await factories.add(*rows)
    hr = await factories.staff("hr", hr_policyholder_id=holder.id)
    return {"holder": holder, "staff": staff, "hr": hr, "doctor": doctor}


async def _hr_get(client: TestClient[Any, Any], factories: Factories, account: StaffAccount, url: str) -> Any:
    tokens = await factories.login_staff(client, account)
    return await client.get(url, headers=bearer(tokens))


def _rebuild(usage: dict[str, Any], health: dict[str, Any]) -> PublishedMonth:
    """What a reader has, back in the audit's own shape: every published table and figure."""
    by_name = {t["name"]: t for t in usage["tables"]}
    by_name["prevention_needs"] = health["prevention_needs"]
    by_name["diagnoses_by_chapter"] = health["diagnoses_by_chapter"]
    tables: dict[str, dict[tuple[str, ...], int | None]] = {}
    domains: dict[str, list[str]] = {}
    for spec in TABLES:
        if spec.name == "diagnoses":
            rows = by_name["diagnoses_by_chapter"]["rows"]
            values = [r["value"] for r in rows]
            total = None if None in values else sum(values)
            tables["diagnoses"] = {(): total}
            continue
        table = by_name[spec.name]
        tables[spec.name] = {}
        for row in table["rows"]:
            key = tuple(row["values"][d] for d in spec.dims)
            tables[spec.name][key] = row["value"]
            for d, v in zip(spec.dims, key, strict=True):
                domains.setdefault(d, [])
                if v not in domains[d]:
                    domains[d].append(v)
    figures = usage["figures"]
    scalars = {name: figures[name] for name in SCALARS}
    return PublishedMonth(Month(2026, 5), K, {d: tuple(v) for d, v in domains.items()}, tables, scalars)


async def test_hr_sees_the_month_totals_true_and_small_cells_suppressed_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    company = await _company(factories)
    response = await _hr_get(client, factories, company["hr"], "/api/hr/usage?period=2026-05")
    assert response.status == 200, await response.text()
    body = await response.json()
    tables = {t["name"]: t for t in body["tables"]}
    assert tables["consultations"]["rows"][0]["value"] == 60
    assert body["min_cell"] == K
    staff = {r["values"]["department"]: r["value"] for r in tables["staff_by_department"]["rows"]}
    assert staff == {"Legal": 14, "Sales": 26}
    # Legal's 14 employees consulted less than 11 persons' worth in some channel: those cells are hidden.
    hidden = [r for t in body["tables"] for r in t["rows"] if r["suppressed"]]
    assert hidden and all(r["value"] is None for r in hidden)
    assert body["figures"]["premium_paid"] is not None
    assert body["figures"]["wait_p50_minutes"] is not None
    assert "<svg" in body["charts"]["by_channel"] and "style=" not in body["charts"]["by_channel"]


async def test_nothing_published_lets_a_hidden_cell_be_worked_out_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """The audit over everything the API publishes for the month: usage and health together."""
    company = await _company(factories, persons=45, consultations=90, seed=3)
    tokens = await factories.login_staff(client, company["hr"])
    usage = await (await client.get("/api/hr/usage?period=2026-05", headers=bearer(tokens))).json()
    health_response = await client.get("/api/hr/health?period=2026-05", headers=bearer(tokens))
    assert health_response.status == 200, await health_response.text()
    health = await health_response.json()
    async with factories.session_factory() as session:
        truth = await month_counts(session, company["holder"].id, Month(2026, 5))
    assert independent_audit(_rebuild(usage, health), K, truth) == []


async def test_hr_responses_carry_no_person_and_no_clinical_content_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """Checklist E5/F3: no names, ids, complaints, notes or codes anywhere in what HR gets."""
    company = await _company(factories)
    tokens = await factories.login_staff(client, company["hr"])
    bodies = []
    for url in ("/api/hr/usage?period=2026-05", "/api/hr/health?period=2026-05", "/api/hr/periods"):
        response = await client.get(url, headers=bearer(tokens))
        assert response.status == 200, url
        bodies.append(await response.json())
    text = json.dumps(bodies)
    assert "Secretname" not in text and "HIV" not in text and "secret notes" not in text
    for code in CODES:
        assert code not in text
    keys = json_keys(bodies)
    assert not keys & HR_FORBIDDEN_FIELDS
    assert not keys & {"insured_person_id", "person_id", "full_name", "patient_id", "consultation_id"}


async def test_a_published_month_is_frozen_r12_5(client: TestClient[Any, Any], factories: Factories) -> None:
    """Checklist F2: asking again after the records changed returns what was published, nothing new."""
    company = await _company(factories)
    tokens = await factories.login_staff(client, company["hr"])
    first = await (await client.get("/api/hr/usage?period=2026-05", headers=bearer(tokens))).json()
    await factories.consultation(
        company["staff"][0], company["doctor"], status="completed", accepted_at=MAY + timedelta(days=3)
    )
    again = await (await client.get("/api/hr/usage?period=2026-05", headers=bearer(tokens))).json()
    assert again["tables"] == first["tables"]
    async with factories.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(HrMonthSnapshot)) == 1


async def test_hr_of_another_company_sees_only_its_own_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """Checklist C3: two clients, each HR sees its own staff; no route takes a company id."""
    await _company(factories, seed=1)
    other = await _company(factories, persons=12, consultations=0, seed=2)
    tokens = await factories.login_staff(client, other["hr"])
    body = await (await client.get("/api/hr/usage?period=2026-05", headers=bearer(tokens))).json()
    tables = {t["name"]: t for t in body["tables"]}
    # Its own staff (12) and nothing of the first company's 60 consultations; its own zero is hidden
    # like any count under k (a shown zero would make every hidden cell say "somebody is here").
    assert tables["staff"]["rows"][0]["value"] == 12
    assert tables["consultations"]["rows"][0]["value"] is None
    assert not [r for t in body["tables"] for r in t["rows"] if r["value"] not in (None, 12)]
    forged = await client.get(
        f"/api/hr/usage?period=2026-05&policyholder_id={(await _company(factories, seed=4))['holder'].id}",
        headers=bearer(tokens),
    )
    assert forged.status == 422


@pytest.mark.parametrize("role", ["insured", "doctor", "dispatcher", "admin"])
async def test_only_hr_reaches_hr_routes_c1(client: TestClient[Any, Any], factories: Factories, role: str) -> None:
    if role == "insured":
        person = await factories.insured()
        tokens = await factories.login_insured(client, person)
    else:
        tokens = await factories.login_staff(client, await factories.staff(role))
    for url in ("/api/hr/usage?period=2026-05", "/api/hr/health?period=2026-05", "/api/hr/passport.pdf?period=2026-05"):
        response = await client.get(url, headers=bearer(tokens))
        assert response.status == 403, url
    anonymous = await client.get("/api/hr/usage?period=2026-05")
    assert anonymous.status == 401


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("period=2026-05-01", 422, "validation_error"),
        ("period=2016-05", 400, "period_not_published"),
        ("period=2026-06", 400, "period_not_published"),
        ("period=2026-13", 400, "invalid_period"),
        ("period=2026-Q2", 400, "invalid_period"),
        ("period=2026-05&group_by=diagnosis", 422, "validation_error"),
        ("period=2026-05&department=Sales&age_band=25-34", 400, "invalid_filter"),
        ("", 422, "validation_error"),
    ],
)
async def test_bad_periods_and_filters_are_clear_4xx_r12_5(
    client: TestClient[Any, Any], factories: Factories, query: str, status: int, code: str
) -> None:
    company = await _company(factories, consultations=5)
    response = await _hr_get(client, factories, company["hr"], f"/api/hr/usage?{query}")
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code


async def test_a_small_or_unknown_slice_is_refused_alike_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    """Checklist F2: a slice of fewer than k employees is refused, and the refusal does not say whether
    the department exists or how many it has."""
    company = await _company(factories, persons=20, consultations=30)
    tokens = await factories.login_staff(client, company["hr"])
    small = await client.get("/api/hr/usage?period=2026-05&department=Legal", headers=bearer(tokens))  # 7 people
    unknown = await client.get("/api/hr/usage?period=2026-05&department=Nowhere", headers=bearer(tokens))
    assert small.status == unknown.status == 400
    assert await small.json() == await unknown.json()
    sales = await client.get("/api/hr/usage?period=2026-05&department=Sales", headers=bearer(tokens))
    assert sales.status == 200
    body = await sales.json()
    assert body["filter"] == {"department": "Sales"}
    assert all(r["values"]["department"] == "Sales" for t in body["tables"] for r in t["rows"])


async def test_an_iso_week_is_read_from_its_months(client: TestClient[Any, Any], factories: Factories) -> None:
    company = await _company(factories)
    response = await _hr_get(client, factories, company["hr"], "/api/hr/usage?period=2026-W20")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["months"] == ["2026-05"]
    assert {r["values"]["week"] for t in body["tables"] for r in t["rows"]} == {"2026-W20"}
    # W23 runs 1-7 June: June is not published yet.
    late = await _hr_get(client, factories, company["hr"], "/api/hr/usage?period=2026-W23")
    assert late.status == 400


async def test_csv_exports_have_the_same_suppression_and_no_formulas_r12_5(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    company = await _company(factories)
    async with factories.session_factory() as session:
        person = await session.get(InsuredPerson, company["staff"][1].id)
        assert person is not None
        person.department = '=HYPERLINK("http://evil")'
        await session.commit()
    tokens = await factories.login_staff(client, company["hr"])
    usage = await (await client.get("/api/hr/usage?period=2026-05", headers=bearer(tokens))).json()
    response = await client.get("/api/hr/usage.csv?period=2026-05", headers=bearer(tokens))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:2] == ["table", "period"]
    data = [r for r in rows[1:] if r and not r[0].startswith("#")]
    assert len(data) == sum(len(t["rows"]) for t in usage["tables"])
    suppressed = [r for r in data if r[-1] == "yes"]
    assert suppressed and all(r[-2] == "" for r in suppressed)
    assert not any(cell.startswith("=") for r in data for cell in r)
    assert any(cell.startswith("'=HYPERLINK") for r in data for cell in r)
    health = await client.get("/api/hr/health.csv?period=2026-05", headers=bearer(tokens))
    assert health.status == 200 and "prevention_needs" in await health.text()


async def test_the_health_passport_is_a_one_or_two_page_pdf_r12_3(
    client: TestClient[Any, Any], factories: Factories, tmp_path: Path
) -> None:
    company = await _company(factories)
    response = await _hr_get(client, factories, company["hr"], "/api/hr/passport.pdf?period=2026-05")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/pdf"
    pdf = await response.read()
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "passport.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert 1 <= pages <= 2
    assert b"Secretname" not in pdf


async def test_hr_sees_the_account_manager_and_periods_r12_4(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    company = await _company(factories, consultations=3)
    tokens = await factories.login_staff(client, company["hr"])
    manager = await (await client.get("/api/hr/account-manager", headers=bearer(tokens))).json()
    assert manager["account_manager"].startswith("Irina Petrova")
    periods = await (await client.get("/api/hr/periods", headers=bearer(tokens))).json()
    assert periods["months"] == ["2026-05", "2026-04", "2026-03", "2026-02", "2026-01"]
    assert "2026-W20" in periods["weeks"] and "2026-W23" not in periods["weeks"]


async def test_every_hr_read_is_audited_d1(client: TestClient[Any, Any], factories: Factories) -> None:
    company = await _company(factories, consultations=3)
    await _hr_get(client, factories, company["hr"], "/api/hr/usage?period=2026-05")
    async with factories.session_factory() as session:
        actions = (await session.scalars(select(AuditEvent.action).where(AuditEvent.actor_role == "hr"))).all()
    assert "hr.usage.read" in actions


async def test_the_demo_gives_hr_closed_months_to_look_at_r12(
    client: TestClient[Any, Any], factories: Factories, clock: Any
) -> None:
    """The first run works for HR too: the demo's corporate staff have consultations in past months."""
    from server.demo import DEMO_PASSWORD, seed_demo

    await seed_demo(factories.session_factory, now=clock.now(), corporate_insured=300)
    login = await client.post("/api/auth/login", json={"username": "hr", "password": DEMO_PASSWORD})
    assert login.status == 200, await login.text()
    headers = bearer(await login.json())
    periods = await (await client.get("/api/hr/periods", headers=headers)).json()
    assert periods["months"][0] == "2026-05"
    usage = await (await client.get("/api/hr/usage?period=2026-05", headers=headers)).json()
    tables = {t["name"]: t for t in usage["tables"]}
    assert tables["consultations"]["rows"][0]["value"] == 120  # 300 employees x 0.4
    assert tables["staff"]["rows"][0]["value"] == 300
    shown = [r for r in tables["consultations_by_channel"]["rows"] if r["value"] is not None]
    assert shown, "a 300-person company sees its channels"


async def test_closed_months_are_frozen_in_the_background_r12_5(
    client: TestClient[Any, Any], factories: Factories, ctx: Any
) -> None:
    """The job freezes each client's newest published month once; HR then reads it as it was frozen."""
    from server.services.hr import freeze_closed_months

    company = await _company(factories, consultations=20)
    assert await freeze_closed_months(ctx) == 1
    assert await freeze_closed_months(ctx) == 0
    async with factories.session_factory() as session:
        months = (await session.scalars(select(HrMonthSnapshot.month))).all()
    assert months == ["2026-05"]
    response = await _hr_get(client, factories, company["hr"], "/api/hr/usage?period=2026-05")
    assert response.status == 200
