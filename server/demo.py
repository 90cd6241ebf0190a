"""Demo data: realistic, deterministic and idempotent (``telemed seed`` / ``telemed demo``).

One corporate policyholder with departments and a few hundred employees, some individual
policies, clinics of all three price categories in five cities (three with a dispatch console,
two with a branch curator), about twenty doctors and a duty roster that covers 24/7 (R11.2).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tqdm import tqdm

from server.db.models import (
    Clinic,
    DispatchPoint,
    DutyShift,
    InsuredPerson,
    Policy,
    Policyholder,
    Program,
    ProgramClinic,
    ScheduledPayment,
    StaffAccount,
)
from server.demo_history import seed_hr_history
from server.domain.insured_number import format_insured_number
from server.security.passwords import hash_password

DEMO_PASSWORD: Final = "demo-password"  # noqa: S105 - printed demo credential, refused in production
CORPORATE_POLICY: Final = "VHI-CORP-0001"
DEPARTMENTS: Final = ("Finance", "Sales", "Engineering", "Logistics", "Customer Care", "Legal", "HR")
ALL_COMPONENTS: Final = ["outpatient", "dental", "ambulance", "inpatient", "telemedicine"]

CITIES: Final = {
    "Moscow": "Europe/Moscow",
    "Saint Petersburg": "Europe/Moscow",
    "Ekaterinburg": "Asia/Yekaterinburg",
    "Kazan": "Europe/Moscow",
    "Novosibirsk": "Asia/Novosibirsk",
}

FIRST_NAMES: Final = (
    "Alexander",
    "Maria",
    "Dmitry",
    "Anna",
    "Sergey",
    "Elena",
    "Andrey",
    "Olga",
    "Ivan",
    "Natalia",
    "Mikhail",
    "Tatiana",
    "Nikolai",
    "Irina",
    "Pavel",
    "Svetlana",
    "Alexei",
    "Ekaterina",
    "Yuri",
    "Daria",
)
LAST_NAMES: Final = (
    "Ivanov",
    "Smirnov",
    "Kuznetsov",
    "Popov",
    "Vasiliev",
    "Petrov",
    "Sokolov",
    "Mikhailov",
    "Novikov",
    "Fedorov",
    "Morozov",
    "Volkov",
    "Alekseev",
    "Lebedev",
    "Semenov",
    "Egorov",
    "Pavlov",
    "Kozlov",
)

DOCTORS: Final = [
    *[(f"dr.gp{i}", f"GP Doctor {i}", ["general_practice"]) for i in range(1, 11)],
    ("dr.pediatrics", "Dr. Irina Pediatrician", ["pediatrics", "general_practice"]),
    ("dr.cardiology", "Dr. Pavel Cardiologist", ["cardiology"]),
    ("dr.neurology", "Dr. Olga Neurologist", ["neurology"]),
    ("dr.dermatology", "Dr. Sergey Dermatologist", ["dermatology"]),
    ("dr.gynecology", "Dr. Anna Gynecologist", ["gynecology"]),
    ("dr.otolaryngology", "Dr. Yuri ENT", ["otolaryngology"]),
    ("dr.gastro", "Dr. Elena Gastroenterologist", ["gastroenterology"]),
    ("dr.endocrinology", "Dr. Ivan Endocrinologist", ["endocrinology"]),
    ("dr.psychotherapy", "Dr. Maria Psychotherapist", ["psychotherapy"]),
    ("dr.cardiology2", "Dr. Nikolai Cardiologist", ["cardiology"]),
]


@dataclass(slots=True)
class SeedReport:
    """What the seed created or found, printed by the CLI."""

    created: bool
    insured_persons: int = 0
    shifts_added: int = 0
    logins: list[dict[str, str]] = field(default_factory=list)


def _full_name(rng: random.Random) -> str:
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    if first.endswith("a") and not last.endswith("a"):
        last += "a"
    return f"{last} {first}"


def _birth_date(rng: random.Random) -> date:
    return date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))


async def seed_demo(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    corporate_insured: int = 300,
    roster_days: int = 28,
    progress: bool = False,
) -> SeedReport:
    """Create the demo data if missing, and extend the roster to cover the coming weeks.

    Args:
        now: Seeding time (UTC); policies run from the start of this year.
        corporate_insured: Employees on the corporate policy (``--insured``).
        roster_days: How many days ahead the duty roster must cover.
        progress: Show a progress bar for the insured persons.
    """
    async with session_factory() as session:
        exists = (await session.execute(select(Policy.id).where(Policy.number == CORPORATE_POLICY))).first()
        created = exists is None
        if created:
            await _seed_base(session, now=now, corporate_insured=corporate_insured, progress=progress)
            await session.commit()
            await seed_dispatch_demo(session, now=now)
            await session.commit()
            await seed_hr_history(session, now=now, policy_number=CORPORATE_POLICY)
            await session.commit()
        shifts_added = await extend_roster(session, now=now, days=roster_days)
        shifts_added += await ensure_doctor_on_duty(session, now=now)
        await session.commit()
        count = (await session.execute(select(func.count()).select_from(InsuredPerson))).scalar_one()
        logins = await demo_logins(session, now=now)
    return SeedReport(created=created, insured_persons=int(count), shifts_added=shifts_added, logins=logins)


def is_demo_registry(index: int) -> bool:
    """Which employees of the demo corporate policy chose registry at conclusion (every seventh)."""
    return index % 7 == 3


def corporate_premium(program: Program, insured: int) -> Decimal:
    """The corporate policy's premium: each registry person at the registry tariff from the start (R1.4, R8.1)."""
    assert program.tariff_registry is not None
    registry = sum(1 for index in range(insured) if is_demo_registry(index))
    return program.tariff_dispatcher * (insured - registry) + program.tariff_registry * registry


async def _seed_base(session: AsyncSession, *, now: datetime, corporate_insured: int, progress: bool) -> None:
    rng = random.Random(20261125)  # deterministic demo data
    year_start = date(now.year, 1, 1)
    year_end = date(now.year, 12, 31)

    programs = {
        1: Program(
            code="DR-RESO-PREMIUM",
            name="Doctor Reso Premium",
            components=ALL_COMPONENTS,
            price_category=1,
            tariff_dispatcher=Decimal("68000.00"),
            tariff_registry=Decimal("91000.00"),
            registry_offered=True,
            telemedicine_allowance_per_year=24,
        ),
        2: Program(
            code="DR-RESO-STANDARD",
            name="Doctor Reso Standard",
            components=ALL_COMPONENTS,
            price_category=2,
            tariff_dispatcher=Decimal("42000.00"),
            tariff_registry=Decimal("55500.00"),
            registry_offered=True,
            telemedicine_allowance_per_year=12,
        ),
        3: Program(
            code="DR-RESO-BASIC",
            name="Doctor Reso Basic",
            components=["outpatient", "ambulance", "telemedicine"],
            price_category=3,
            tariff_dispatcher=Decimal("24000.00"),
            # Sold as dispatcher-only, yet switchable by changing the program (R4.1): it needs a registry tariff.
            tariff_registry=Decimal("31500.00"),
            registry_offered=False,
            telemedicine_allowance_per_year=6,
        ),
    }
    session.add_all(programs.values())

    clinics: list[Clinic] = []
    for city in CITIES:
        for category in (1, 2, 3):
            for n in range(1, 3):
                clinics.append(
                    Clinic(
                        name=f"{city} Clinic {'ABC'[category - 1]}{n}",
                        city=city,
                        address=f"{10 * category + n} {['Lenin', 'Pushkin', 'Gagarin'][category - 1]} St",
                        phone=f"+7 (495) {100 + 10 * category + n}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}",
                        price_category=category,
                        has_access_system=(n == 2 and category == 1),
                    )
                )
    session.add_all(clinics)
    await session.flush()
    for program in programs.values():
        for clinic in clinics:
            # A program lists clinics of its own category and cheaper ones (reachable via the console).
            if clinic.price_category >= program.price_category:
                session.add(ProgramClinic(program_id=program.id, clinic_id=clinic.id))

    for point in _dispatch_points():
        session.add(point)

    corporate = Policyholder(
        kind="corporate",
        name="OOO Severstal Logistics",
        tax_id="7701234567",
        account_manager="Marina Orlova, +7 495 777-00-11",
        created_at=now,
    )
    session.add(corporate)
    await session.flush()
    corporate_policy = Policy(
        number=CORPORATE_POLICY,
        policyholder_id=corporate.id,
        program_id=programs[2].id,
        starts_on=year_start,
        ends_on=year_end,
        payment_mode="installments",
        premium=corporate_premium(programs[2], corporate_insured),
        created_at=now,
    )
    session.add(corporate_policy)
    await session.flush()
    quarter_amount = (corporate_policy.premium / 4).quantize(Decimal("0.01"))
    for quarter in range(4):
        session.add(
            ScheduledPayment(
                policy_id=corporate_policy.id,
                due_on=date(now.year, 1 + 3 * quarter, 1),
                amount=quarter_amount,
                purpose="premium",
            )
        )

    registry_clinics = [c for c in clinics if c.price_category == 2]
    rows: list[dict[str, Any]] = []
    iterator = range(corporate_insured)
    for index in tqdm(iterator, desc="insured persons", disable=not progress, unit="person"):
        city = list(CITIES)[index % 10 if index % 10 < 5 else 0]
        registry = is_demo_registry(index)
        attached = next((c for c in registry_clinics if c.city == city), registry_clinics[0]) if registry else None
        rows.append(
            {
                "policy_id": corporate_policy.id,
                "full_name": _full_name(rng) if index else "Ivanova Anna",
                "birth_date": _birth_date(rng) if index else date(1990, 5, 17),
                "phone": f"+79{rng.randrange(100000000, 999999999)}",
                "city": city,
                "department": DEPARTMENTS[index % len(DEPARTMENTS)],
                "service_type": "registry" if registry else "dispatcher",
                "attached_clinic_id": attached.id if attached else None,
                "is_active": True,
                "created_at": now,
            }
        )
        if len(rows) >= 5000:
            await session.execute(insert(InsuredPerson), rows)
            rows = []
    if rows:
        await session.execute(insert(InsuredPerson), rows)

    individuals = [
        ("Petrov Sergey", date(1985, 3, 2), "Saint Petersburg", 1, "lump_sum"),
        ("Sokolova Elena", date(1978, 11, 30), "Ekaterinburg", 2, "lump_sum"),
        ("Volkov Dmitry", date(1992, 7, 8), "Kazan", 3, "installments"),
        ("Lebedeva Olga", date(1969, 1, 21), "Novosibirsk", 2, "installments"),
    ]
    for number, (name, born, city, category, mode) in enumerate(individuals, start=1):
        holder = Policyholder(kind="individual", name=name, created_at=now)
        session.add(holder)
        await session.flush()
        program = programs[category]
        policy = Policy(
            number=f"VHI-IND-{number:04d}",
            policyholder_id=holder.id,
            program_id=program.id,
            starts_on=year_start,
            ends_on=year_end,
            payment_mode=mode,
            premium=program.tariff_dispatcher,
            created_at=now,
        )
        session.add(policy)
        await session.flush()
        dues = [year_start] if mode == "lump_sum" else [date(now.year, m, 1) for m in (1, 4, 7, 10)]
        for due in dues:
            session.add(
                ScheduledPayment(
                    policy_id=policy.id,
                    due_on=due,
                    purpose="premium",
                    amount=(program.tariff_dispatcher / len(dues)).quantize(Decimal("0.01")),
                )
            )
        session.add(
            InsuredPerson(
                policy_id=policy.id,
                full_name=name,
                birth_date=born,
                phone=f"+79{rng.randrange(100000000, 999999999)}",
                city=city,
                department=None,
                service_type="dispatcher",
                is_active=True,
                created_at=now,
            )
        )

    password_hash = hash_password(DEMO_PASSWORD)
    for username, full_name, specialties in DOCTORS:
        session.add(
            StaffAccount(
                username=username,
                password_hash=password_hash,
                role="doctor",
                full_name=full_name,
                specialties=specialties,
                max_active_consultations=3,
                created_at=now,
            )
        )
    for username, full_name in (("dispatcher", "Natalia Dispatcher"), ("dispatcher2", "Andrey Dispatcher")):
        session.add(
            StaffAccount(
                username=username,
                password_hash=password_hash,
                role="dispatcher",
                full_name=full_name,
                specialties=[],
                created_at=now,
            )
        )
    session.add(
        StaffAccount(
            username="hr",
            password_hash=password_hash,
            role="hr",
            full_name="Svetlana HR Manager",
            specialties=[],
            hr_policyholder_id=corporate.id,
            created_at=now,
        )
    )
    session.add(
        StaffAccount(
            username="admin",
            password_hash=password_hash,
            role="admin",
            full_name="Admin",
            specialties=[],
            created_at=now,
        )
    )


def _dispatch_points() -> list[DispatchPoint]:
    weekdays = {str(d): ["09:00", "18:00"] for d in range(5)} | {"5": None, "6": None}
    return [
        DispatchPoint(
            kind="console",
            city="Moscow",
            name="Moscow dispatch console (24 h)",
            phone="+7 495 730-30-00",
            timezone="Europe/Moscow",
            hours={"always": True},
        ),
        DispatchPoint(
            kind="console",
            city="Saint Petersburg",
            name="St. Petersburg dispatch console (24 h)",
            phone="+7 812 333-33-33",
            timezone="Europe/Moscow",
            hours={"always": True},
        ),
        DispatchPoint(
            kind="console",
            city="Ekaterinburg",
            name="Ekaterinburg dispatch console",
            phone="+7 343 222-22-22",
            timezone="Asia/Yekaterinburg",
            hours={str(d): ["08:00", "20:00"] for d in range(6)} | {"6": None},
        ),
        DispatchPoint(
            kind="branch_curator",
            city="Kazan",
            name="Kazan branch VHI curator",
            phone="+7 843 211-11-11",
            timezone="Europe/Moscow",
            hours=weekdays,
        ),
        DispatchPoint(
            kind="branch_curator",
            city="Novosibirsk",
            name="Novosibirsk branch VHI curator",
            phone="+7 383 200-00-00",
            timezone="Asia/Novosibirsk",
            hours=weekdays,
        ),
        DispatchPoint(
            kind="federal_line",
            city="Moscow",
            name="Moscow 24-hour dispatch center (federal line)",
            phone="8-800-100-63-65",
            timezone="Europe/Moscow",
            hours={"always": True},
        ),
    ]


async def extend_roster(session: AsyncSession, *, now: datetime, days: int) -> int:
    """Add demo shifts so that every hour from yesterday to ``now + days`` is covered (R11.2).

    General practice: two GPs in each 12-hour slot, rotating, the second starting an hour after the
    first, so shifts overlap by an hour (a clinical hand-over window, R11.8) instead of every GP
    leaving at the same minute; specialists: 06:00-18:00 UTC daily.
    Idempotent: a day that already has shifts is left alone.
    """
    doctors = {
        d.username: d
        for d in (await session.execute(select(StaffAccount).where(StaffAccount.role == "doctor"))).scalars()
    }
    if not doctors:
        return 0
    start_day = (now - timedelta(days=1)).date()
    existing = {
        row[0].date() if isinstance(row[0], datetime) else row[0]
        for row in (
            await session.execute(
                select(DutyShift.starts_at).where(
                    DutyShift.starts_at >= datetime.combine(start_day, datetime.min.time(), tzinfo=UTC)
                )
            )
        ).all()
    }
    gps = [d for name, d in sorted(doctors.items()) if name.startswith("dr.gp")]
    specialists = [(d, d.specialties[0]) for name, d in sorted(doctors.items()) if not name.startswith("dr.gp")]
    added = 0
    for offset in range(days + 2):
        day = start_day + timedelta(days=offset)
        day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        if any(existing_day == day for existing_day in existing):
            continue
        ordinal = day.toordinal()
        for slot in range(2):
            for k in range(2):
                doctor = gps[(ordinal * 4 + slot * 2 + k) % len(gps)]
                session.add(
                    DutyShift(
                        doctor_id=doctor.id,
                        specialty="general_practice",
                        starts_at=day_start + timedelta(hours=12 * slot + k),
                        ends_at=day_start + timedelta(hours=12 * (slot + 1) + k),
                        created_at=now,
                    )
                )
                added += 1
        for doctor, specialty in specialists:
            session.add(
                DutyShift(
                    doctor_id=doctor.id,
                    specialty=specialty,
                    starts_at=day_start + timedelta(hours=6),
                    ends_at=day_start + timedelta(hours=18),
                    created_at=now,
                )
            )
            added += 1
    return added


async def ensure_doctor_on_duty(session: AsyncSession, *, now: datetime, hours: int = 4) -> int:
    """Make the printed demo login work at this moment: if no general practitioner is on duty for
    the next 30 minutes, put a free one on a shift from now for ``hours`` (no overlap with their own)."""
    if await on_duty_doctors(session, now=now):
        return 0
    starts, ends = now - timedelta(minutes=5), now + timedelta(hours=hours)
    gps = (
        (
            await session.execute(
                select(StaffAccount)
                .where(StaffAccount.role == "doctor", StaffAccount.username.like("dr.gp%"))
                .order_by(StaffAccount.username)
            )
        )
        .scalars()
        .all()
    )
    for doctor in gps:
        clash = (
            await session.execute(
                select(DutyShift.id).where(
                    DutyShift.doctor_id == doctor.id, DutyShift.starts_at < ends, DutyShift.ends_at > starts
                )
            )
        ).first()
        if clash is None:
            session.add(
                DutyShift(
                    doctor_id=doctor.id, specialty="general_practice", starts_at=starts, ends_at=ends, created_at=now
                )
            )
            await session.flush()
            return 1
    return 0


async def on_duty_doctors(session: AsyncSession, *, now: datetime, specialty: str = "general_practice") -> list[str]:
    """Usernames of doctors on duty now who stay on for at least 30 more minutes (assignment
    skips a doctor in the last 10 minutes of a shift), the longest-staying first."""
    rows = (
        await session.execute(
            select(StaffAccount.username, DutyShift.ends_at)
            .join(DutyShift, DutyShift.doctor_id == StaffAccount.id)
            .where(
                DutyShift.specialty == specialty,
                DutyShift.starts_at <= now,
                DutyShift.ends_at > now + timedelta(minutes=30),
                StaffAccount.is_active.is_(True),
            )
            .order_by(DutyShift.ends_at.desc(), StaffAccount.username)
        )
    ).all()
    return list(dict.fromkeys(row[0] for row in rows))


async def demo_logins(session: AsyncSession, *, now: datetime) -> list[dict[str, str]]:
    """Logins to print after the demo starts: the doctor is one on duty at this moment.

    The insured login is by the personal insured number on the card, shown for an employee who
    shares a birth date with a colleague on the corporate policy (where the policy number alone
    is ambiguous, issue 11).
    """
    persons = (
        (
            await session.execute(
                select(InsuredPerson)
                .join(Policy, Policy.id == InsuredPerson.policy_id)
                .where(Policy.number == CORPORATE_POLICY)
                .order_by(InsuredPerson.id)
            )
        )
        .scalars()
        .all()
    )
    born: dict[date, int] = {}
    for person in persons:
        born[person.birth_date] = born.get(person.birth_date, 0) + 1
    shown = next((p for p in persons if born[p.birth_date] > 1), persons[0] if persons else None)
    logins = []
    if shown is not None:
        logins.append(
            {
                "role": "insured",
                "login": (
                    f"insured number {format_insured_number(shown.insured_number)} (on the card), "
                    f"birth date {shown.birth_date.isoformat()} (policy {CORPORATE_POLICY}; "
                    f"{born[shown.birth_date]} persons on it share this birth date)"
                ),
                "secret": "one-time code: run `telemed outbox --last 1` (also in the server log); app: /#/patient",
            }
        )
    on_duty = await on_duty_doctors(session, now=now)
    for username in on_duty[:2] or ["dr.gp1"]:
        note = "on duty now (general practice); app: /#/doctor" if on_duty else "no general practitioner on duty now"
        logins.append({"role": "doctor", "login": username, "secret": f"password {DEMO_PASSWORD}  ({note})"})
    for username, role in (("dispatcher", "dispatcher"), ("hr", "hr"), ("admin", "admin")):
        logins.append({"role": role, "login": username, "secret": f"password {DEMO_PASSWORD}"})
    return logins


async def seed_dispatch_demo(session: AsyncSession, *, now: datetime) -> None:
    """Payments, attachment letters and a dispatcher's day for the demo (R2, R6.1, R7).

    Every scheduled premium already due is bundled on its due date (so registry persons hold
    attachment letters, R7.1-R7.3), a few insured persons wait in the dispatchers' queue, and the
    first employee has an insured event with a letter of guarantee and a booked visit (R2.5, R2.6).
    """
    from server.db.models import DispatchRequest, InsuredEvent, LetterOfGuarantee, ScheduledPayment, Visit
    from server.db.repositories.dispatch import next_document_seq_txn
    from server.domain import letters as letter_rules
    from server.services.coverage_facts import coverage_day
    from server.services.decisions import record_decision_txn
    from server.services.payments import bundle_payment_txn

    today = coverage_day(now)
    due = (
        (
            await session.execute(
                select(ScheduledPayment)
                .where(ScheduledPayment.purpose == "premium", ScheduledPayment.due_on <= today)
                .order_by(ScheduledPayment.due_on, ScheduledPayment.id)
            )
        )
        .scalars()
        .all()
    )
    for scheduled in due:
        await bundle_payment_txn(
            session,
            policy_id=scheduled.policy_id,
            amount=scheduled.amount,
            bundled_on=scheduled.due_on,
            scheduled_payment_id=scheduled.id,
            principal=None,
            now=now,
        )

    corporate = (await session.execute(select(Policy).where(Policy.number == CORPORATE_POLICY))).scalar_one()
    persons = (
        (
            await session.execute(
                select(InsuredPerson)
                .where(InsuredPerson.policy_id == corporate.id, InsuredPerson.service_type == "dispatcher")
                .order_by(InsuredPerson.id)
                .limit(6)
            )
        )
        .scalars()
        .all()
    )
    if not persons:
        return
    waiting = [
        ("outpatient", "Lower back pain for three days, worse when sitting", ["neurologist consultation"]),
        ("dental", "Toothache, lower left molar, since yesterday", []),
        ("outpatient", "Persistent cough for two weeks, no fever", ["chest X-ray"]),
        ("outpatient", "Rash on both forearms after a new detergent", ["dermatologist consultation"]),
    ]
    for minutes, (person, (_component, complaints, services)) in enumerate(zip(persons[1:], waiting, strict=False)):
        session.add(
            DispatchRequest(
                insured_person_id=person.id,
                source="insured",
                complaints=complaints,
                requested_services=services,
                status="open",
                created_at=now - timedelta(minutes=40 - 7 * minutes),
            )
        )

    first = persons[0]
    clinic = (
        await session.execute(
            select(Clinic)
            .join(ProgramClinic, ProgramClinic.clinic_id == Clinic.id)
            .where(ProgramClinic.program_id == corporate.program_id, Clinic.city == first.city)
            .order_by(Clinic.price_category.desc(), Clinic.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    if clinic is None:
        return
    complaints = "Knee pain after a fall while skiing, swelling"
    event = InsuredEvent(
        insured_person_id=first.id,
        component="outpatient",
        complaints=complaints,
        status="open",
        source="insured",
        covered=True,
        reasons=[{"rule": "R2.2", "message": "an insured event: outpatient care is in the program", "facts": {}}],
        opened_at=now - timedelta(hours=2),
    )
    session.add(event)
    await session.flush()
    services = ["Orthopedist consultation", "Knee X-ray"]
    seq = await next_document_seq_txn(session, LetterOfGuarantee.number, letter_rules.LETTER_PREFIX, today.year)
    letter = LetterOfGuarantee(
        number=letter_rules.format_letter_number(today.year, seq),
        insured_event_id=event.id,
        insured_person_id=first.id,
        clinic_id=clinic.id,
        services=services,
        issued_on=today,
        valid_until=letter_rules.letter_validity(today),
        status="active",
        sent_to_clinic_at=now - timedelta(hours=1),
        created_at=now - timedelta(hours=1),
    )
    session.add(letter)
    await session.flush()
    visit_day = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=UTC) + timedelta(hours=7)
    session.add(
        Visit(
            insured_event_id=event.id,
            letter_id=letter.id,
            clinic_id=clinic.id,
            doctor_name="Dr. Mikhail Orlov, orthopedist",
            scheduled_at=visit_day,
            services=services,
            created_at=now - timedelta(hours=1),
        )
    )
    session.add(
        DispatchRequest(
            insured_person_id=first.id,
            insured_event_id=event.id,
            source="insured",
            complaints=complaints,
            requested_services=services,
            status="done",
            created_at=now - timedelta(hours=2),
            closed_at=now - timedelta(hours=1),
        )
    )
    record_decision_txn(
        session,
        person_id=first.id,
        kind="letter_issue",
        allowed=True,
        reasons=[
            {
                "rule": "R2.5",
                "message": f"a letter of guarantee to {clinic.name} for {', '.join(services)}",
                "facts": {"letter_number": letter.number},
            }
        ],
        subject={"insured_event_id": event.id, "letter_id": letter.id, "letter_number": letter.number},
        principal=None,
        now=now,
    )
