"""Booking a person into the letter's clinic and telling them the visit details (R2.4, R2.6)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from server.domain.coverage_types import ClinicFacts, LetterFacts, PolicyFacts
from server.domain.decisions import Decision, Reason
from server.domain.errors import InvalidInput, RuleViolation
from server.domain.letters import normalize_services, service_key

MAX_DOCTOR_NAME_CHARS: Final = 300


def check_booking(
    letter: LetterFacts,
    clinic: ClinicFacts,
    services: Iterable[str],
    scheduled_at: datetime,
    *,
    policy: PolicyFacts | None = None,
) -> Decision:
    """Whether the console may book the visit under ``letter`` (R2.4).

    The booking must be at the letter's clinic, on a day the letter is valid, for services it names.

    Args:
        letter: The letter of guarantee sent for the visit.
        clinic: The clinic being booked.
        services: The services booked.
        scheduled_at: Appointment time, timezone-aware, in the clinic's local time (its date is the visit day).
        policy: The person's policy; a visit outside it is refused even under a letter that runs
            longer (letters issued before R10.3 capped them).

    Returns:
        ``allowed`` citing the letter, or every mismatch.
    """
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        raise InvalidInput(
            "the appointment time must be timezone-aware", details={"scheduled_at": scheduled_at.isoformat()}
        )
    day = scheduled_at.date()
    names = normalize_services(services)
    facts = {
        "letter_number": letter.number,
        "clinic_id": clinic.id,
        "scheduled_at": scheduled_at.isoformat(),
        "services": list(names),
    }
    failures: list[Reason] = []
    if letter.clinic_id != clinic.id:
        failures.append(
            Reason("R2.4", f"letter {letter.number} is addressed to another clinic, not {clinic.name}", facts)
        )
    if not letter.is_valid_on(day):
        failures.append(
            Reason(
                "R2.4",
                f"letter {letter.number} ({letter.status.value}, valid {letter.issued_on.isoformat()} to "
                f"{letter.valid_until.isoformat()}) does not cover a visit on {day.isoformat()}",
                facts,
            )
        )
    if policy is not None and not policy.is_valid_on(day):
        failures.append(
            Reason(
                "R10.3",
                f"policy {policy.number} runs {policy.starts_on.isoformat()} to {policy.ends_on.isoformat()}: "
                f"no visit on {day.isoformat()} can be booked under it",
                {**facts, "policy_number": policy.number, "ends_on": policy.ends_on.isoformat()},
            )
        )
    named = {service_key(s) for s in letter.services}
    missing = [s for s in names if service_key(s) not in named]
    if missing:
        failures.append(
            Reason("R2.4", f"{', '.join(missing)} not named in letter {letter.number}", {**facts, "missing": missing})
        )
    if failures:
        return Decision.deny(*failures)
    return Decision.allow(
        Reason("R2.4", f"book at {clinic.name} on {day.isoformat()} under letter {letter.number}", facts)
    )


@dataclass(frozen=True, slots=True)
class VisitNotice:
    """What the console tells the person about the upcoming visit (R2.6).

    Attributes:
        clinic_name: The clinic.
        clinic_address: Where to go.
        doctor_name: Whom to see.
        scheduled_at: When (timezone-aware, clinic local time).
        services: Range of services.
        letter_number: The letter of guarantee number to quote at the reception.
    """

    clinic_name: str
    clinic_address: str
    doctor_name: str
    scheduled_at: datetime
    services: tuple[str, ...]
    letter_number: str

    def text(self) -> str:
        """The message sent to the person."""
        when = self.scheduled_at.strftime("%d.%m.%Y at %H:%M")
        return (
            f"Your visit: {self.clinic_name}, {self.clinic_address}; doctor {self.doctor_name}; {when}; "
            f"services: {', '.join(self.services) or 'consultation'}; letter of guarantee {self.letter_number}."
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API."""
        return {
            "clinic_name": self.clinic_name,
            "clinic_address": self.clinic_address,
            "doctor_name": self.doctor_name,
            "scheduled_at": self.scheduled_at.isoformat(),
            "services": list(self.services),
            "letter_number": self.letter_number,
            "text": self.text(),
        }


def compose_visit_notice(
    clinic: ClinicFacts,
    doctor_name: str,
    scheduled_at: datetime,
    services: Iterable[str],
    letter: LetterFacts,
    *,
    policy: PolicyFacts | None = None,
) -> VisitNotice:
    """Compose the visit details the person is told (R2.6), after checking the booking (R2.4).

    Args:
        clinic: The clinic (its address must be known).
        doctor_name: The doctor's name.
        scheduled_at: Appointment time, timezone-aware, clinic local time.
        services: The services booked.
        letter: The letter of guarantee.
        policy: The person's policy (a visit past its end is refused, R10.3).

    Returns:
        The notice with every R2.6 detail.

    Raises:
        RuleViolation: when the booking does not fit the letter (R2.4) or a detail is missing (R2.6).
    """
    names = normalize_services(services)
    booking = check_booking(letter, clinic, names, scheduled_at, policy=policy)
    missing: list[Reason] = []
    doctor = " ".join(doctor_name.split())
    if not clinic.address.strip():
        missing.append(Reason("R2.6", f"the address of {clinic.name} is not known", {"clinic_id": clinic.id}))
    if not doctor:
        missing.append(Reason("R2.6", "the doctor's name must be told to the person", {}))
    elif len(doctor) > MAX_DOCTOR_NAME_CHARS:
        missing.append(Reason("R2.6", "the doctor's name is too long", {"length": len(doctor)}))
    reasons = (*(() if booking.allowed else booking.reasons), *missing)
    if reasons:
        raise RuleViolation(reasons[0].message, reasons=reasons)
    return VisitNotice(clinic.name, clinic.address.strip(), doctor, scheduled_at, names, letter.number)
