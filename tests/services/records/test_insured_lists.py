# ruff: noqa: RUF001 (Russian names, cities and departments are Cyrillic on purpose)
"""Loading an employer's list: all or nothing, re-import changes nothing, versions add/change/remove."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import AuthSession, Consultation, ImportBatch, InsuredPerson, RecordChange
from server.services.context import ServiceContext
from server.services.records import coverage_end, insured_lists
from server.services.records.changes import person_history
from server.services.records.files import FileTooLarge, UnsupportedFile, read_table
from server.services.records.insured_lists import ListRejected
from tests.factories import Factories
from tests.services.records.support import ADMIN, corporate_client, csv_rows

IVANOV = "Иванов Иван Иванович;17.05.1990;8 916 123-45-67;Москва;Продажи;CORP-STD;01.02.2026"
PETROV = "Петров Пётр Петрович;02.03.1985;+7 (916) 765-43-21;Москва;ИТ;CORP-STD;01.02.2026"
SIDOROV = "Сидоров Сидор;11.11.1979;89160000011;Казань;ИТ;CORP-STD;01.03.2026"


async def _count(session_factory: async_sessionmaker[AsyncSession], model: object) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


async def test_a_cp1251_semicolon_list_is_loaded_and_loading_it_again_changes_nothing(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    client = await corporate_client(ctx)
    content = csv_rows(IVANOV, PETROV, SIDOROV)
    report = await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=content, file_name="staff-2026.csv"
    )
    assert (report.encoding, report.delimiter, report.counts["added"]) == ("cp1251", ";", 3)
    async with session_factory() as session:
        phones = set((await session.scalars(select(InsuredPerson.phone))).all())
    assert phones == {"+79161234567", "+79167654321", "+79160000011"}
    batches, changes = await _count(session_factory, ImportBatch), await _count(session_factory, RecordChange)

    again = await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=content, file_name="staff-2026.csv"
    )
    assert again.counts == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3}
    assert not again.applied
    assert await _count(session_factory, ImportBatch) == batches
    assert await _count(session_factory, RecordChange) == changes
    assert await _count(session_factory, InsuredPerson) == 3


async def test_one_bad_row_writes_nothing_and_the_report_names_it(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    client = await corporate_client(ctx)
    bad = "Будущий Родился;01.01.2030;+79161112233;Москва;Продажи;CORP-STD;01.02.2026"
    with pytest.raises(ListRejected) as caught:
        await insured_lists.import_insured_list(
            ctx, ADMIN, policyholder_id=client.holder.id, content=csv_rows(IVANOV, bad, IVANOV), file_name="x.csv"
        )
    problems = caught.value.details["problems"]
    assert {"row": 3, "column": "birth_date", "value": "01.01.2030", "reason": "in the future"} in problems
    assert any(p["row"] == 4 and "row 2" in p["reason"] for p in problems)
    assert await _count(session_factory, InsuredPerson) == 0


async def test_a_new_version_dry_run_then_apply_removal_ends_login_and_keeps_history(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession], factories: Factories
) -> None:
    client = await corporate_client(ctx)
    await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=csv_rows(IVANOV, PETROV, SIDOROV), file_name="v1.csv"
    )
    async with session_factory() as session:
        sidorov = (await session.scalars(select(InsuredPerson).where(InsuredPerson.city == "Казань"))).one()
    doctor = await factories.staff("doctor")
    consultation = await factories.consultation(sidorov, doctor, status="active")

    v2 = csv_rows(
        IVANOV.replace("Продажи", "ИТ"), PETROV, "Новиков Николай;01.01.2000;+79165550000;Москва;ИТ;CORP-STD;01.06.2026"
    )
    preview = await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=v2, file_name="v2.csv", dry_run=True
    )
    assert preview.counts == {"added": 1, "changed": 1, "removed": 1, "unchanged": 1}
    assert preview.changed[0].changes == {"department": ["Продажи", "ИТ"]}
    assert [p.full_name for p in preview.removed] == ["Сидоров Сидор"]
    assert await _count(session_factory, InsuredPerson) == 3

    applied = await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=v2, file_name="v2.csv"
    )
    assert applied.applied
    async with session_factory() as session:
        removed = await session.get(InsuredPerson, sidorov.id)
        assert removed is not None and removed.removed_on == applied.removal_date and not removed.is_active
        cancelled = await session.get(Consultation, consultation.id)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert "cover ended" in (cancelled.cancel_reason or "")
    assert await _count(session_factory, InsuredPerson) == 4  # nothing deleted
    history = await person_history(ctx, ADMIN, sidorov.id)
    assert [h.action for h in history] == ["added", "removed", "coverage_ended"]
    assert {h.file_name for h in history[:2]} == {"v1.csv", "v2.csv"}


async def test_a_removed_person_can_no_longer_log_in(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession], factories: Factories, client: object
) -> None:
    holder = await corporate_client(ctx)
    await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=holder.holder.id, content=csv_rows(IVANOV, SIDOROV), file_name="v1.csv"
    )
    async with session_factory() as session:
        sidorov = (await session.scalars(select(InsuredPerson).where(InsuredPerson.city == "Казань"))).one()
    tokens = await factories.login_insured(client, sidorov)  # type: ignore[arg-type]
    await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=holder.holder.id, content=csv_rows(IVANOV), file_name="v2.csv"
    )
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})  # type: ignore[attr-defined]
    assert me.status == 401
    async with session_factory() as session:
        live = await session.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.subject_id == sidorov.id, AuthSession.revoked_at.is_(None))
        )
    assert live == 0
    sent_before = len(factories.sender.messages)
    started = await client.post(  # type: ignore[attr-defined]
        "/api/auth/policy/start", json={"policy_number": "VHI-NEW-0001", "birth_date": "1979-11-11"}
    )
    assert started.status == 200  # the same answer as for an unknown person (A9) ...
    assert len(factories.sender.messages) == sent_before  # ... but no code is sent


async def test_a_future_removal_date_keeps_cover_until_that_day(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession], client: object, factories: Factories,
    clock: FixedClock,
) -> None:
    setup = await corporate_client(ctx)
    await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=setup.holder.id, content=csv_rows(IVANOV, SIDOROV), file_name="v1.csv"
    )
    later = date(2026, 6, 30)
    await insured_lists.import_insured_list(
        ctx,
        ADMIN,
        policyholder_id=setup.holder.id,
        content=csv_rows(IVANOV),
        file_name="v2.csv",
        removal_date=later,
    )
    async with session_factory() as session:
        person = (await session.scalars(select(InsuredPerson).where(InsuredPerson.city == "Казань"))).one()
    assert person.removed_on == later and person.is_active
    with pytest.raises(ListRejected) as caught:
        await insured_lists.import_insured_list(
            ctx,
            ADMIN,
            policyholder_id=setup.holder.id,
            content=csv_rows(SIDOROV),
            file_name="v3.csv",
            removal_date=date(2026, 1, 15),
        )
    assert caught.value.details["problems"][0]["column"] == "removal_date"

    clock.advance(timedelta(days=21))  # 2026-07-01: the removal date has passed, the daily sweep has not run
    sent = len(factories.sender.messages)
    started = await client.post(  # type: ignore[attr-defined]
        "/api/auth/policy/start", json={"policy_number": "VHI-NEW-0001", "birth_date": "1979-11-11"}
    )
    assert started.status == 200 and len(factories.sender.messages) == sent  # no code: cover has ended
    report = await coverage_end.end_coverage_due(ctx, ADMIN)
    assert report.persons == [person.id]
    assert (await coverage_end.end_coverage_due(ctx, ADMIN)).persons == []  # once only


async def test_xlsx_with_a_formula_is_stored_as_text(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    client = await corporate_client(ctx)
    book = Workbook()
    sheet = book.active
    sheet.append(["full_name", "birth_date", "phone", "city", "department", "program", "starts_on"])
    sheet.append(
        [
            "Иванов Иван",
            date(1990, 5, 17),
            79161234567,
            '=HYPERLINK("http://evil","Москва")',
            "ИТ",
            "CORP-STD",
            "01.02.2026",
        ]
    )
    buffer = io.BytesIO()
    book.save(buffer)
    report = await insured_lists.import_insured_list(
        ctx, ADMIN, policyholder_id=client.holder.id, content=buffer.getvalue(), file_name="staff.xlsx"
    )
    assert report.file_kind == "xlsx" and report.counts["added"] == 1
    async with session_factory() as session:
        person = (await session.scalars(select(InsuredPerson))).one()
    assert person.city == '=HYPERLINK("http://evil","Москва")'
    assert person.birth_date == date(1990, 5, 17) and person.phone == "+79161234567"


def test_files_that_are_not_tables_are_refused() -> None:
    with pytest.raises(UnsupportedFile):
        read_table(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(FileTooLarge):
        read_table(b"a;b\n" * (6 * 1024 * 1024))
    with pytest.raises(Exception, match="empty"):
        read_table(b"   \n")
    bom = read_table("\ufefffull_name,phone\nИван,1\n".encode())
    assert (bom.encoding, bom.delimiter, bom.header) == ("utf-8-sig", ",", ["full_name", "phone"])
