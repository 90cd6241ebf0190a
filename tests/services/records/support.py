# ruff: noqa: RUF001 (Russian names, cities and departments are Cyrillic on purpose)
"""A corporate client built through the back-office services, for the records tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from server.domain.records import Installment, ProgramTerms
from server.services.context import ServiceContext
from server.services.records import reference
from server.services.records.changes import Actor

ADMIN = Actor("cli:test-admin")
CSV_HEADER = "ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала"


@dataclass
class Client:
    """What ``corporate_client`` made."""

    holder: reference.PolicyholderView
    program: reference.ProgramView
    clinic: reference.ClinicView
    policy: reference.PolicyView


async def corporate_client(ctx: ServiceContext, *, code: str = "CORP-STD", number: str = "VHI-NEW-0001") -> Client:
    """A corporate policyholder with two departments, a program with one clinic and a policy paid quarterly."""
    holder = await reference.create_policyholder(
        ctx, ADMIN, kind="corporate", name="ООО Ромашка", tax_id="7701234567", departments=["Продажи", "ИТ"]
    )
    clinic = await reference.create_clinic(
        ctx,
        ADMIN,
        name="Клиника №1",
        city="Москва",
        address="ул. Тверская, 1",
        phone="+74950000001",
        price_category=2,
        has_access_system=True,
    )
    program = await reference.create_program(
        ctx,
        ADMIN,
        code=code,
        name="Корпоративная стандарт",
        terms=ProgramTerms(
            components=["outpatient", "telemedicine"],
            price_category=2,
            tariffs={"dispatcher": Decimal(40000), "registry": Decimal(52000)},
            registry_offered=True,
            telemedicine_allowance_per_year=12,
        ),
        clinic_ids=[clinic.id],
    )
    policy = await reference.create_policy(
        ctx,
        ADMIN,
        number=number,
        policyholder_id=holder.id,
        program_id=program.id,
        starts_on=date(2026, 1, 1),
        ends_on=date(2026, 12, 31),
        payment_mode="installments",
        premium=Decimal(400000),
        installments=[Installment(date(2026, 1, 1).replace(month=m), Decimal(100000)) for m in (1, 4, 7, 10)],
    )
    return Client(holder, program, clinic, policy)


def csv_rows(*rows: str, header: str = CSV_HEADER) -> bytes:
    """A list as Russian offices send it: cp1251, ``;``, CRLF."""
    return ("\r\n".join([header, *rows]) + "\r\n").encode("cp1251")
