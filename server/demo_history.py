"""Past consultations of the demo's corporate staff, so that the HR dashboard has closed months to show.

Only completed consultations of past months are made (written straight into the records, not
through the queue): the HR figures are aggregates of exactly these rows.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Consultation, InsuredPerson, Policy, StaffAccount

# Leaf ICD-10 codes (R11.9) common in telemedicine: colds, back pain, gastritis, hypertension...
_CODES: Final = ("J06.9", "J06.9", "J20.9", "M54.5", "K29.7", "I10", "F41.1", "R51", "N39.0", "L20.9", "E11.9", "H10.9")
_SPECIALTIES: Final = ("general_practice",) * 6 + ("cardiology", "neurology", "dermatology", "gastroenterology")
_MOSCOW: Final = ZoneInfo("Europe/Moscow")


async def seed_hr_history(
    session: AsyncSession, *, now: datetime, policy_number: str, per_person_month: float = 0.4
) -> int:
    """Completed consultations in every closed month of the policy's year before ``now``.

    Returns:
        How many consultations were made.
    """
    rng = random.Random(20261201)
    policy = (await session.execute(select(Policy).where(Policy.number == policy_number))).scalar_one()
    people = (await session.execute(select(InsuredPerson).where(InsuredPerson.policy_id == policy.id))).scalars().all()
    doctors = (await session.execute(select(StaffAccount).where(StaffAccount.role == "doctor"))).scalars().all()
    if not people or not doctors:
        return 0
    today = now.astimezone(_MOSCOW).date()
    first = policy.starts_on.replace(day=1)
    made = 0
    month = first
    while True:
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        if following > today.replace(day=1):
            break
        days = (following - month).days
        for _ in range(round(len(people) * per_person_month)):
            person = rng.choice(people)
            day = month + timedelta(days=rng.randrange(days))
            started = datetime.combine(day, time(rng.randrange(7, 23), rng.randrange(60)), _MOSCOW).astimezone(UTC)
            waited = timedelta(seconds=rng.randrange(40, 1500))
            outcome = rng.choices(("advice", "referral", "emergency"), weights=(80, 19, 1))[0]
            session.add(
                Consultation(
                    insured_person_id=person.id,
                    policyholder_id=policy.policyholder_id,
                    department=person.department,
                    channel=rng.choices(("text", "audio", "video"), weights=(55, 15, 30))[0],
                    specialty=rng.choice(_SPECIALTIES),
                    complaints="(demo history)",
                    status="completed",
                    doctor_id=rng.choice(doctors).id,
                    requested_at=started - waited,
                    accepted_at=started,
                    completed_at=started + timedelta(minutes=rng.randrange(8, 35)),
                    icd10_code=rng.choice(_CODES),
                    outcome=outcome,
                    notes="Demo history: advice given, follow-up as needed.",
                    last_seq=0,
                    skipped_doctor_ids=[],
                    referral_services=[],
                )
            )
            made += 1
        month = following
    await session.flush()
    return made
