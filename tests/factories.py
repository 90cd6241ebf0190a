"""Builders of real records (in the test database) and of logged-in users (through the HTTP API)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import (
    Clinic,
    Consultation,
    DoctorConnection,
    DutyShift,
    InsuredPerson,
    PatientConsent,
    Policy,
    Policyholder,
    Program,
    ProgramClinic,
    ScheduledPayment,
    StaffAccount,
)
from server.domain.consent import CURRENT_TEXTS
from server.security.passwords import hash_password
from tests.fakes import RecordingSender

STAFF_PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A short unique string for names and numbers."""
    return f"{prefix}{next(_counter):06d}"


@dataclass
class Factories:
    """Creates real rows; each returns the ORM object with its id."""

    session_factory: async_sessionmaker[AsyncSession]
    clock: FixedClock
    sender: RecordingSender

    async def add(self, *objects: Any) -> None:
        """Insert and commit objects."""
        async with self.session_factory() as session:
            session.add_all(objects)
            await session.commit()

    async def program(self, **overrides: Any) -> Program:
        """A program with every component, category 2, registry offered."""
        values: dict[str, Any] = {
            "code": unique("PRG-"),
            "name": "Test Program",
            "components": ["outpatient", "dental", "ambulance", "inpatient", "telemedicine"],
            "price_category": 2,
            "tariff_dispatcher": Decimal("40000.00"),
            "tariff_registry": Decimal("52000.00"),
            "registry_offered": True,
            "telemedicine_allowance_per_year": 12,
        }
        values.update(overrides)
        program = Program(**values)
        await self.add(program)
        return program

    async def clinic(self, *, programs: list[Program] = (), **overrides: Any) -> Clinic:  # type: ignore[assignment]
        """A clinic (category 2, Moscow) listed in the given programs."""
        values: dict[str, Any] = {
            "name": unique("Clinic "),
            "city": "Moscow",
            "address": "1 Test St, Moscow",
            "phone": "+7 495 000-00-00",
            "price_category": 2,
            "has_access_system": False,
        }
        values.update(overrides)
        clinic = Clinic(**values)
        await self.add(clinic)
        for program in programs:
            await self.add(ProgramClinic(program_id=program.id, clinic_id=clinic.id))
        return clinic

    async def policyholder(self, *, kind: str = "corporate", name: str | None = None) -> Policyholder:
        """A corporate (default) or individual policyholder."""
        holder = Policyholder(kind=kind, name=name or unique("Holder "), created_at=self.clock.now())
        await self.add(holder)
        return holder

    async def policy(
        self,
        *,
        program: Program | None = None,
        policyholder: Policyholder | None = None,
        starts_on: date | None = None,
        ends_on: date | None = None,
        payment_mode: str = "lump_sum",
        installments: list[date] | None = None,
    ) -> Policy:
        """A policy valid for the clock's whole year by default, with its payment schedule."""
        today = self.clock.now().date()
        program = program or await self.program()
        policyholder = policyholder or await self.policyholder()
        policy = Policy(
            number=unique("POL-"),
            policyholder_id=policyholder.id,
            program_id=program.id,
            starts_on=starts_on or date(today.year, 1, 1),
            ends_on=ends_on or date(today.year, 12, 31),
            payment_mode=payment_mode,
            premium=program.tariff_dispatcher,
            created_at=self.clock.now(),
        )
        await self.add(policy)
        dues = installments or (
            [policy.starts_on]
            if payment_mode == "lump_sum"
            else [policy.starts_on + timedelta(days=91 * q) for q in range(4)]
        )
        await self.add(
            *[
                ScheduledPayment(
                    policy_id=policy.id,
                    due_on=due,
                    amount=(policy.premium / len(dues)).quantize(Decimal("0.01")),
                    purpose="premium",
                )
                for due in dues
            ]
        )
        return policy

    async def insured(
        self, *, policy: Policy | None = None, consented: bool = True, **overrides: Any
    ) -> InsuredPerson:
        """An active insured person (dispatcher service type) on a new or given policy.

        With ``consented`` the person has given both consents of checklist E1 (the current texts).
        """
        policy = policy or await self.policy()
        values: dict[str, Any] = {
            "policy_id": policy.id,
            "full_name": unique("Person "),
            "birth_date": date(1990, 5, 17),
            "phone": "+7900" + unique("")[-7:],
            "city": "Moscow",
            "department": "Engineering",
            "service_type": "dispatcher",
            "attached_clinic_id": None,
            "is_active": True,
            "created_at": self.clock.now(),
        }
        values.update(overrides)
        person = InsuredPerson(**values)
        await self.add(person)
        if consented:
            await self.add(
                *(
                    PatientConsent(
                        insured_person_id=person.id,
                        kind=text.kind.value,
                        version=text.version,
                        language="ru",
                        given_at=self.clock.now(),
                        given_from="127.0.0.1",
                    )
                    for text in CURRENT_TEXTS.values()
                )
            )
        return person

    async def online(self, doctor: StaffAccount) -> None:
        """Give ``doctor`` a live client socket, as a connected browser would (R11.7: only they are offered).

        The socket is renewed far ahead, so tests that move the clock do not see it go stale.
        """
        await self.add(
            DoctorConnection(
                socket_id=unique("socket-"),
                doctor_id=doctor.id,
                connected_at=self.clock.now(),
                seen_at=self.clock.now() + timedelta(days=30),
            )
        )

    async def staff(self, role: str, **overrides: Any) -> StaffAccount:
        """A staff account with STAFF_PASSWORD; HR gets a corporate policyholder if none is given."""
        values: dict[str, Any] = {
            "username": unique(f"{role}."),
            "password_hash": hash_password(STAFF_PASSWORD),
            "role": role,
            "full_name": unique(f"{role.title()} "),
            "specialties": ["general_practice"] if role == "doctor" else [],
            "created_at": self.clock.now(),
        }
        if role == "hr" and "hr_policyholder_id" not in overrides:
            values["hr_policyholder_id"] = (await self.policyholder()).id
        values.update(overrides)
        account = StaffAccount(**values)
        await self.add(account)
        return account

    async def consultation(
        self, patient: InsuredPerson, doctor: StaffAccount | None = None, *, status: str = "active", **overrides: Any
    ) -> Consultation:
        """A text consultation of ``patient``, assigned to ``doctor`` (inserted directly, not via the API)."""
        async with self.session_factory() as session:
            policy = await session.get(Policy, patient.policy_id)
            assert policy is not None
            policyholder_id = policy.policyholder_id
        values: dict[str, Any] = {
            "insured_person_id": patient.id,
            "policyholder_id": policyholder_id,
            "department": patient.department,
            "channel": "text",
            "specialty": "general_practice",
            "complaints": "sore throat and fever since yesterday",
            "status": status,
            "doctor_id": doctor.id if doctor is not None else None,
            "requested_at": self.clock.now(),
            "accepted_at": self.clock.now() if doctor is not None and status != "queued" else None,
            "last_seq": 0,
            "skipped_doctor_ids": [],
            "referral_services": [],
        }
        values.update(overrides)
        consultation = Consultation(**values)
        await self.add(consultation)
        return consultation

    async def shift(
        self,
        doctor: StaffAccount,
        *,
        specialty: str = "general_practice",
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        hours: float = 8,
    ) -> DutyShift:
        """A duty shift of ``doctor`` (by default from one hour ago for ``hours`` hours)."""
        start = starts_at or self.clock.now() - timedelta(hours=1)
        shift = DutyShift(
            doctor_id=doctor.id,
            specialty=specialty,
            starts_at=start,
            ends_at=ends_at or start + timedelta(hours=hours),
            created_at=self.clock.now(),
        )
        await self.add(shift)
        return shift

    async def policy_number_of(self, person: InsuredPerson) -> str:
        """The policy number of a person."""
        async with self.session_factory() as session:
            policy = await session.get(Policy, person.policy_id)
            assert policy is not None
            return policy.number

    async def login_insured(self, client: TestClient[Any, Any], person: InsuredPerson) -> dict[str, Any]:
        """Log an insured person in through the API; returns the token response."""
        # By the insured number on the card: colleagues on one policy may share a birth date (issue 11).
        started = await client.post(
            "/api/auth/policy/start",
            json={"insured_number": person.insured_number, "birth_date": person.birth_date.isoformat()},
        )
        assert started.status == 200, await started.text()
        challenge = (await started.json())["challenge_id"]
        verified = await client.post(
            "/api/auth/policy/verify", json={"challenge_id": challenge, "code": self.sender.last_code(person.phone)}
        )
        assert verified.status == 200, await verified.text()
        return dict(await verified.json())

    async def login_staff(self, client: TestClient[Any, Any], account: StaffAccount) -> dict[str, Any]:
        """Log a staff member in through the API; returns the token response."""
        response = await client.post("/api/auth/login", json={"username": account.username, "password": STAFF_PASSWORD})
        assert response.status == 200, await response.text()
        return dict(await response.json())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    """Authorization header for a token response."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def json_keys(value: Any) -> set[str]:
    """Every key anywhere in a JSON value (tests of which fields a role gets: C2, R12.5)."""
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in json_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in json_keys(item)}
    return set()
