"""Which clinics a person may be sent to or attached to (R2.3, R4.2, R5.3, R6.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.domain.coverage_types import ClinicFacts, InsuredFacts, ProgramFacts, ServiceType
from server.domain.decisions import Reason


class ClinicPurpose(StrEnum):
    """Why a clinic is being chosen: a visit approved by the console, or the registry attachment."""

    VISIT = "visit"
    ATTACHMENT = "attachment"


@dataclass(frozen=True, slots=True)
class ClinicChoice:
    """The outcome of choosing a clinic.

    Attributes:
        allowed: The clinic may be used for the purpose.
        needs_pass_photo: The clinic has an access system and the person's photo is not on file (R6.4);
            this does not refuse the clinic, it tells the service to request the photo.
        reasons: Why, each citing its rule.
    """

    allowed: bool
    needs_pass_photo: bool
    reasons: tuple[Reason, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids cited, in order."""
        return tuple(r.rule for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {
            "allowed": self.allowed,
            "needs_pass_photo": self.needs_pass_photo,
            "reasons": [r.as_dict() for r in self.reasons],
        }


def allowed_clinics(
    program: ProgramFacts,
    clinics: Iterable[ClinicFacts],
    service_type_for_attachment: ServiceType | None = None,
) -> tuple[ClinicFacts, ...]:
    """The clinics a person can choose from, sorted by city and name.

    Args:
        program: The person's program; only its listed clinics count (R2.3).
        clinics: Candidate clinics (e.g. all clinics of a city).
        service_type_for_attachment: ``ServiceType.REGISTRY`` when choosing the attached clinic:
            then only clinics of the program's price category qualify (R5.3). ``None`` or
            ``DISPATCHER`` lists every clinic of the program.

    Returns:
        The qualifying clinics, without duplicates.
    """
    by_id: dict[int, ClinicFacts] = {}
    for clinic in clinics:
        if clinic.id not in program.clinic_ids:
            continue
        if service_type_for_attachment is ServiceType.REGISTRY and clinic.price_category != program.price_category:
            continue
        by_id[clinic.id] = clinic
    return tuple(sorted(by_id.values(), key=lambda c: (c.city.casefold(), c.name.casefold(), c.id)))


def check_clinic_choice(
    program: ProgramFacts,
    clinic: ClinicFacts,
    purpose: ClinicPurpose | str,
    insured: InsuredFacts | None = None,
) -> ClinicChoice:
    """Check one clinic for a visit (R2.3) or for the registry attachment (R2.3, R5.3), noting R6.4 passes.

    Args:
        program: The person's program.
        clinic: The clinic proposed.
        purpose: ``visit`` (the console picks a clinic with the person) or ``attachment`` (registry).
        insured: The person, to know whether their pass photo is on file; ``None`` assumes it is not.

    Returns:
        A ``ClinicChoice`` whose reasons list every failed condition, or why the clinic qualifies.
    """
    purpose = ClinicPurpose(purpose)
    facts = {"clinic_id": clinic.id, "program_id": program.id}
    failures: list[Reason] = []
    passes: list[Reason] = []
    if clinic.id in program.clinic_ids:
        passes.append(Reason("R2.3", f"{clinic.name} is on the list of {program.label}", facts))
    else:
        failures.append(Reason("R2.3", f"{clinic.name} is not on the list of {program.label}", facts))
    if purpose is ClinicPurpose.ATTACHMENT:
        category_facts = {
            "clinic_id": clinic.id,
            "clinic_category": clinic.price_category,
            "program_category": program.price_category,
        }
        if clinic.price_category == program.price_category:
            passes.append(
                Reason(
                    "R5.3", f"{clinic.name} is of the program's price category {program.price_category}", category_facts
                )
            )
        else:
            failures.append(
                Reason(
                    "R5.3",
                    f"{clinic.name} is of price category {clinic.price_category}; with category "
                    f"{program.price_category} only a clinic of category {program.price_category} can be attached",
                    category_facts,
                )
            )
    needs_photo = clinic.has_access_system and (insured is None or not insured.has_pass_photo)
    notes: list[Reason] = []
    if clinic.has_access_system:
        if needs_photo:
            notes.append(
                Reason(
                    "R6.4",
                    f"{clinic.name} has an access system: the insurer needs the person's photo to issue a pass",
                    {"clinic_id": clinic.id},
                )
            )
        else:
            notes.append(
                Reason(
                    "R6.4",
                    f"{clinic.name} has an access system; the person's pass photo is on file",
                    {"clinic_id": clinic.id},
                )
            )
    if failures:
        return ClinicChoice(False, needs_photo, tuple(failures + notes))
    return ClinicChoice(True, needs_photo, tuple(passes + notes))
