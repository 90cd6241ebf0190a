
"""Payments in bulk: bundled through the payments use case (R7.1), idempotent on the reference, all or nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import AttachmentLetter, Payment
from server.services.context import ServiceContext
from server.services.records import bulk_payments, insured_lists
from server.services.records.insured_lists import ListRejected
from tests.services.records.support import ADMIN, corporate_client, csv_rows

HEADER = "policy_number;amount;date;reference"
REGISTRY_PERSON = "Иванов Иван;17.05.1990;+79161234567;Москва;ИТ;CORP-STD;01.02.2026;registry;{clinic}"


async def _payments(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Payment)) or 0)


async def test_a_payments_file_bundles_each_row_generates_letters_r7_1_and_a_rerun_changes_nothing(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    client = await corporate_client(ctx)
    header = "ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала;service_type;clinic"
    await insured_lists.import_insured_list(
        ctx,
        ADMIN,
        policyholder_id=client.holder.id,
        file_name="staff.csv",
        content=csv_rows(REGISTRY_PERSON.format(clinic=client.clinic.id), header=header),
    )
    content = csv_rows(
        "VHI-NEW-0001;100 000,00;15.01.2026;PP-0001", "VHI-NEW-0001;100000;10.04.2026;PP-0002", header=HEADER
    )
    dry = await bulk_payments.import_payments(
        ctx, ADMIN, principal=None, content=content, file_name="bank.csv", dry_run=True
    )
    assert dry.counts == {"bundled": 2, "already_loaded": 0} and not dry.applied
    assert await _payments(session_factory) == 0

    report = await bulk_payments.import_payments(ctx, ADMIN, principal=None, content=content, file_name="bank.csv")
    assert report.applied and [line.status for line in report.lines] == ["bundled", "bundled"]
    assert all(line.attachment_letters for line in report.lines)  # R7.1: a letter the day the money is bundled
    async with session_factory() as session:
        letters = int(await session.scalar(select(func.count()).select_from(AttachmentLetter)) or 0)
    assert letters == 2

    again = await bulk_payments.import_payments(ctx, ADMIN, principal=None, content=content, file_name="bank.csv")
    assert again.counts == {"bundled": 0, "already_loaded": 2} and not again.applied
    assert await _payments(session_factory) == 2


async def test_one_refused_payment_bundles_nothing_and_is_reported_by_row(
    ctx: ServiceContext, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await corporate_client(ctx)
    content = csv_rows(
        "VHI-NEW-0001;100000;15.01.2026;PP-1",
        "VHI-NEW-0001;99,50;15.01.2026;PP-2",
        "VHI-NOPE;100000;15.01.2026;PP-3",
        "VHI-NEW-0001;100000;15.01.2031;PP-4",
        "VHI-NEW-0001;100000;15.01.2026;PP-1",
        header=HEADER,
    )
    with pytest.raises(ListRejected) as caught:
        await bulk_payments.import_payments(ctx, ADMIN, principal=None, content=content, file_name="bank.csv")
    problems = {(p["row"], p["column"]) for p in caught.value.details["problems"]}
    assert problems == {(5, "date"), (6, "reference")}  # checked first, before anything is bundled
    content = csv_rows(
        "VHI-NEW-0001;100000;15.01.2026;PP-1",
        "VHI-NEW-0001;99,50;15.01.2026;PP-2",
        "VHI-NOPE;100000;15.01.2026;PP-3",
        header=HEADER,
    )
    with pytest.raises(ListRejected) as caught:
        await bulk_payments.import_payments(ctx, ADMIN, principal=None, content=content, file_name="bank.csv")
    problems = {(p["row"], p["column"]) for p in caught.value.details["problems"]}
    assert problems == {(3, "amount"), (4, "policy_number")}
    assert await _payments(session_factory) == 0
