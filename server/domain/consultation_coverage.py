"""Which day and which allowance a consultation counts on, and which insured event it belongs to (R11.4, R11.5).

Kept apart from the consultation's life cycle (``consultation.py``): these rules decide coverage
and money, the others decide who talks to whom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.domain.decisions import Reason
from server.domain.errors import InvalidInput
from server.domain.letters import add_months


def service_date(started_at: datetime, timezone: str) -> date:
    """The consultation's service date: the person's local day on which it started (R11.4, R10.3).

    It started when the doctor accepted it. A consultation from 2026-12-31 23:50 to 2027-01-01
    00:10 is counted on 2026-12-31, under the policy and allowance of that day.

    Args:
        started_at: The aware moment the doctor accepted.
        timezone: The person's IANA zone.

    Returns:
        The local calendar date of the start.
    """
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise InvalidInput("the start of a consultation must be timezone-aware")
    return started_at.astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True, slots=True)
class PolicyYear:
    """One year of a policy's period, the span the telemedicine allowance counts over (R11.4).

    Attributes:
        starts_on: First day (inclusive).
        ends_on: Last day (inclusive); the policy's end for its last, possibly shorter, year.
    """

    starts_on: date
    ends_on: date

    def contains(self, day: date) -> bool:
        """Whether ``day`` falls in this policy year."""
        return self.starts_on <= day <= self.ends_on

    @property
    def label(self) -> str:
        """For messages: ``2026-07-01 to 2027-06-30``."""
        return f"{self.starts_on.isoformat()} to {self.ends_on.isoformat()}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"starts_on": self.starts_on.isoformat(), "ends_on": self.ends_on.isoformat()}


def policy_year(policy_starts_on: date, policy_ends_on: date, on: date) -> PolicyYear:
    """The policy year containing ``on``: the allowance "per year" is per policy year (R11.4).

    A policy from 2026-07-01 to 2027-06-30 has one policy year: 12 consultations used in December
    are not available again in January. A longer policy is cut at each anniversary of its start
    (clamped to a month's end, so 02-29 + 1 year is 02-28).

    Args:
        policy_starts_on: The policy's first day.
        policy_ends_on: Its last day.
        on: A day within the policy.

    Returns:
        The policy year.

    Raises:
        InvalidInput: ``on`` is outside the policy.
    """
    if not policy_starts_on <= on <= policy_ends_on:
        raise InvalidInput(
            "the day is outside the policy",
            details={"on": on.isoformat(), "starts_on": policy_starts_on.isoformat()},
        )
    years = 0
    while add_months(policy_starts_on, 12 * (years + 1)) <= on:
        years += 1
    start = add_months(policy_starts_on, 12 * years)
    end = min(add_months(policy_starts_on, 12 * (years + 1)) - timedelta(days=1), policy_ends_on)
    return PolicyYear(start, end)


@dataclass(frozen=True, slots=True)
class EventCandidate:
    """An open insured event of the patient, offered to the doctor at completion (R11.5).

    Attributes:
        id: Event id.
        complaints: As recorded, shown to the doctor.
        opened_at: When it was opened.
        icd10_codes: The codes of consultations already linked to it.
    """

    id: int
    complaints: str
    opened_at: datetime
    icd10_codes: frozenset[str] = frozenset()


def icd10_category(code: str) -> str:
    """The three-character ICD-10 category of a code (``J06.9`` -> ``J06``)."""
    return code.strip().upper().split(".")[0][:3]


def suggest_open_event(open_events: Iterable[EventCandidate], icd10_code: str) -> EventCandidate | None:
    """An open event the doctor may link to: one with a consultation of the same ICD-10 category (R11.5).

    Only a suggestion, never decided by word overlap: the doctor confirms or opens a new event.
    The newest such event wins (the likeliest continuation).

    Args:
        open_events: The patient's open events.
        icd10_code: The code the doctor is completing with.

    Returns:
        The suggested event, or ``None``.
    """
    category = icd10_category(icd10_code)
    same = [e for e in open_events if any(icd10_category(c) == category for c in e.icd10_codes)]
    return max(same, key=lambda e: (e.opened_at, e.id)) if same else None


def check_event_link(open_events: Iterable[EventCandidate], linked_event_id: int | None) -> Reason:
    """The doctor's choice at completion: link to one of the patient's open events, or a new one (R11.5).

    Args:
        open_events: The patient's open events.
        linked_event_id: The event chosen, or ``None`` to open a new insured event.

    Returns:
        The reason recorded with the write-back.

    Raises:
        InvalidInput: ``unknown_insured_event`` when the id is not one of the patient's open events.
    """
    events = {e.id: e for e in open_events}
    if linked_event_id is None:
        return Reason(
            "R11.5",
            "the doctor opened a new insured event for these complaints",
            {"insured_event_id": None, "open_events": sorted(events)},
        )
    if linked_event_id not in events:
        raise InvalidInput(
            "the consultation can only be linked to one of the patient's open insured events",
            code="unknown_insured_event",
            details={"insured_event_id": linked_event_id, "open_events": sorted(events)},
        )
    return Reason(
        "R11.5",
        f"the doctor linked the consultation to open insured event {linked_event_id}",
        {"insured_event_id": linked_event_id},
    )
