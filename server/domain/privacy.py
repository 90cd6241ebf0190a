"""Medical secrecy for employers: what HR may see, and small-group suppression of aggregates (R12.5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from server.domain.decisions import Reason
from server.domain.errors import Forbidden

# k-anonymity threshold: no figure shown to an employer may describe fewer people than this.
MIN_GROUP_SIZE: Final = 5

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


def suppress_small_groups(counts: Mapping[str, int], min_size: int = MIN_GROUP_SIZE) -> dict[str, int | None]:
    """Hide every count that could single a person out, including through the total (R12.5).

    1. Primary suppression: every count below ``min_size`` is hidden (``None``), zero included -
       "nobody in the department" is a statement about each of its members.
    2. Complementary suppression: while exactly one count is hidden, or the hidden counts add up to
       less than ``min_size``, the smallest visible count is hidden too (ties: first key in sorted
       order). So the total minus the visible counts never gives one hidden count, nor a sum of
       fewer than ``min_size`` people.

    When everything ends up hidden and the total is small, the total must be hidden too: see
    ``suppressed_total``. Differencing across several tables (e.g. by department and by age band)
    is not guarded here; publish one breakdown per figure.

    Args:
        counts: People (or consultations) per group.
        min_size: The threshold; ``MIN_GROUP_SIZE`` by default.

    Returns:
        The same keys, in the same order, each with its count or ``None`` when hidden.
    """
    if min_size < 1:
        raise ValueError("min_size is at least 1")
    if any(count < 0 for count in counts.values()):
        raise ValueError("counts are never negative")
    hidden = {key for key, count in counts.items() if count < min_size}
    visible = sorted((count, key) for key, count in counts.items() if key not in hidden)
    while hidden and visible and (len(hidden) == 1 or sum(counts[key] for key in hidden) < min_size):
        hidden.add(visible.pop(0)[1])
    return {key: None if key in hidden else count for key, count in counts.items()}


def suppressed_total(counts: Mapping[str, int], min_size: int = MIN_GROUP_SIZE) -> int | None:
    """The total of a breakdown, or ``None`` when it is itself a group too small to show (R12.5)."""
    total = sum(counts.values())
    return total if total >= min_size else None


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
