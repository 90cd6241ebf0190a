"""A small insurer world for the dispatch, coverage and admin API tests: programs, clinics, persons, logins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import Clinic, InsuredPerson, Policy, Program
from tests.factories import Factories, bearer


@dataclass
class World:
    """Records and logged-in headers shared by a test."""

    program: Program
    basic_program: Program
    clinic: Clinic  # category 2, on the list
    clinic_b: Clinic  # category 2, on the list
    pass_clinic: Clinic  # category 2, on the list, access system (R6.4)
    cat1_clinic: Clinic  # category 1, on the list (visits only)
    cat3_clinic: Clinic  # category 3, on the list (visits only)
    off_list: Clinic  # not on the program's list
    policy: Policy
    person: InsuredPerson
    insured: dict[str, str]
    dispatcher: dict[str, str]
    admin: dict[str, str]
    dispatcher_id: int
    dispatcher_account: Any = None
    admin_account: Any = None

    async def relogin(self, client: TestClient[Any, Any], factories: Factories) -> None:
        """Log everyone in again (after the test clock moved past the tokens' lifetime)."""
        self.insured = bearer(await factories.login_insured(client, self.person))
        self.dispatcher = bearer(await factories.login_staff(client, self.dispatcher_account))
        self.admin = bearer(await factories.login_staff(client, self.admin_account))


async def build_world(
    client: TestClient[Any, Any],
    factories: Factories,
    *,
    payment_mode: str = "lump_sum",
    installments: list[date] | None = None,
    program_overrides: dict[str, Any] | None = None,
    person_overrides: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    policyholder_kind: str = "individual",
) -> World:
    """A category-2 program with every component and registry offered, its clinics, one dispatcher person.

    The policy is an individual one by default, so the insured person signs their own application
    (R4.2); a corporate one (``policyholder_kind="corporate"``) needs the employer's HR to sign.
    """
    program = await factories.program(**(program_overrides or {}))
    basic = await factories.program(
        name="Basic",
        components=["outpatient", "ambulance", "telemedicine"],
        price_category=3,
        tariff_registry=None,
        registry_offered=False,
    )
    clinic = await factories.clinic(programs=[program, basic], name="Clinic Alpha", address="5 Tverskaya St")
    clinic_b = await factories.clinic(programs=[program], name="Clinic Beta", address="7 Arbat St")
    pass_clinic = await factories.clinic(
        programs=[program], name="Clinic Gate", address="9 Lubyanka Sq", has_access_system=True
    )
    cat1 = await factories.clinic(programs=[program], name="Clinic Premium", price_category=1)
    cat3 = await factories.clinic(programs=[program, basic], name="Clinic Budget", price_category=3)
    off_list = await factories.clinic(name="Clinic Elsewhere")
    policy_row = await factories.policy(
        program=program,
        payment_mode=payment_mode,
        installments=installments,
        policyholder=await factories.policyholder(kind=policyholder_kind),
        **(policy or {}),
    )
    person = await factories.insured(policy=policy_row, **(person_overrides or {}))
    dispatcher = await factories.staff("dispatcher")
    admin = await factories.staff("admin")
    return World(
        program=program,
        basic_program=basic,
        clinic=clinic,
        clinic_b=clinic_b,
        pass_clinic=pass_clinic,
        cat1_clinic=cat1,
        cat3_clinic=cat3,
        off_list=off_list,
        policy=policy_row,
        person=person,
        insured=bearer(await factories.login_insured(client, person)),
        dispatcher=bearer(await factories.login_staff(client, dispatcher)),
        admin=bearer(await factories.login_staff(client, admin)),
        dispatcher_id=dispatcher.id,
        dispatcher_account=dispatcher,
        admin_account=admin,
    )


async def count_rows(session_factory: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    """How many rows of ``model`` match."""
    async with session_factory() as session:
        stmt = select(func.count()).select_from(model)
        for condition in where:
            stmt = stmt.where(condition)
        return int((await session.execute(stmt)).scalar_one())


def rules_of(body: dict[str, Any]) -> list[str]:
    """The rule ids cited by an error body or a decision's reasons."""
    if "error" in body:
        return list(body["error"].get("rules", []))
    return [reason["rule"] for reason in body.get("reasons", [])]


async def open_covered_event(
    client: TestClient[Any, Any], world: World, *, component: str = "outpatient", complaints: str = "knee pain"
) -> dict[str, Any]:
    """Classify a covered insured event for the world's person through the API."""
    response = await client.post(
        "/api/dispatch/events",
        json={"insured_person_id": world.person.id, "component": component, "complaints": complaints},
        headers=world.dispatcher,
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def issue_letter(
    client: TestClient[Any, Any],
    world: World,
    event_id: int,
    clinic_id: int,
    services: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """Issue a letter of guarantee through the API and return the response body."""
    response = await client.post(
        f"/api/dispatch/events/{event_id}/letters",
        json={"clinic_id": clinic_id, "services": services, **extra},
        headers=world.dispatcher,
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


MONEY = Decimal("0.01")
