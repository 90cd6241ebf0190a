"""Medical secrecy for employers: fields that never reach an HR view (R12.5).

Small-group suppression lives in server/domain/disclosure.py and server/domain/hr_reports.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from server.domain.decisions import Reason
from server.domain.errors import Forbidden

# Clinical content that never reaches an HR view, individually or per row (R12.5).
HR_FORBIDDEN_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "diagnosis",
        "icd10_code",
        "icd10_description",
        "complaints",
        "notes",
        "messages",
        "attachments",
        "referral_specialty",
        "referral_services",
    }
)


def ensure_hr_safe(fields: Iterable[str]) -> None:
    """Refuse an HR view or export that would carry clinical content (R12.5).

    Raises:
        Forbidden: ``medical_secrecy``, naming the forbidden fields.
    """
    found = sorted(set(fields) & HR_FORBIDDEN_FIELDS)
    if found:
        raise Forbidden(
            "employers never see diagnoses, complaints or consultation content",
            code="medical_secrecy",
            reasons=(Reason("R12.5", "medical secrecy", {"fields": found}),),
            details={"fields": found},
        )
