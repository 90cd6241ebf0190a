"""Letters of guarantee: numbering, one-month validity, issue checks, extend/close/cancel (R2.5, R3.3)."""

from __future__ import annotations

import calendar as std_calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any, Final

from server.domain.coverage import evaluate_coverage
from server.domain.coverage_types import (
    ClinicFacts,
    Component,
    EventStatus,
    InsuredEventFacts,
    InsuredFacts,
    LetterFacts,
    LetterStatus,
    PolicyFacts,
    ProgramFacts,
    parse_component,
)
from server.domain.decisions import Decision, Reason
from server.domain.errors import Conflict, InvalidInput, RuleViolation

DEFAULT_VALIDITY_MONTHS: Final = 1  # R3.3: "default validity one month from issue"
LETTER_PREFIX: Final = "LG"
MAX_SERVICES: Final = 20
MAX_SERVICE_CHARS: Final = 200
# R2.5 allows a letter "for diagnosis of the complaints" when services are not yet known.
DIAGNOSIS_SERVICE: Final = "diagnosis of the complaints"

_NUMBER_RE: Final = re.compile(r"^([A-Z]{2})-(\d{4})-(\d{6})$")


def add_months(day: date, months: int) -> date:
    """Calendar-month arithmetic, clamping to the month's last day (2026-01-31 + 1 -> 2026-02-28).

    Args:
        day: The start day.
        months: Months to add (may be negative).

    Returns:
        The same day of the month ``months`` later, or that month's last day if it is shorter.
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = std_calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def letter_validity(issued_on: date, months: int = DEFAULT_VALIDITY_MONTHS) -> date:
    """The last valid day of a letter issued on ``issued_on`` (R3.3).

    Args:
        issued_on: Day of issue.
        months: Validity in calendar months; one by default.

    Returns:
        ``issued_on`` plus ``months`` calendar months (inclusive end), clamped to month ends.
    """
    if months < 1:
        raise InvalidInput("a letter is valid for at least one month", details={"months": months})
    return add_months(issued_on, months)


def capped_validity(issued_on: date, policy: PolicyFacts) -> tuple[date, Reason | None]:
    """A letter's last valid day: one month from issue, but never past the policy's last day (R3.3, R10.3).

    No approval reaches past the policy's end (R10.3): a letter issued on 2026-12-15 under a policy
    ending 2026-12-31 is valid until 2026-12-31, not 2027-01-15.

    Args:
        issued_on: Day of issue (or of the re-approval).
        policy: The person's policy.

    Returns:
        The inclusive end and, when the policy's end cut the month short, the R10.3 reason saying so.
    """
    month_end = letter_validity(issued_on)
    if month_end <= policy.ends_on:
        return month_end, None
    return policy.ends_on, Reason(
        "R10.3",
        f"valid until {policy.ends_on.isoformat()}, the last day of policy {policy.number}, not "
        f"{month_end.isoformat()}: no approval reaches past the policy's end",
        {
            "policy_number": policy.number,
            "ends_on": policy.ends_on.isoformat(),
            "month_end": month_end.isoformat(),
            "issued_on": issued_on.isoformat(),
        },
    )


class LetterState(StrEnum):
    """What the coverage card says about a letter of guarantee on a day (R3.3, R10.3)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    ENDED_WITH_POLICY = "ended_with_policy"
    NOT_YET_VALID = "not_yet_valid"
    CLOSED = "closed"
    CANCELLED = "cancelled"


def letter_state(letter: LetterFacts, policy: PolicyFacts, on: date) -> tuple[LetterState, Reason]:
    """The state of a letter on ``on`` and why, so the card shows why a letter ended (R3.3, R10.2, R10.3).

    A letter never outlives its policy: past the policy's last day it has ended with the policy,
    whatever its own validity says (letters issued before R10.3 capped them may run longer).

    Args:
        letter: The letter.
        policy: The policy of the person it was issued for.
        on: The day shown (the person's local date, R10.3).

    Returns:
        The state and a reason citing the rule that decided it.
    """
    facts = {**_letter_facts(letter), "on": on.isoformat(), "policy_ends_on": policy.ends_on.isoformat()}
    if letter.status is LetterStatus.CLOSED:
        return LetterState.CLOSED, Reason("R2.5", f"letter {letter.number} closed: treatment complete", facts)
    if letter.status is LetterStatus.CANCELLED:
        return LetterState.CANCELLED, Reason("R2.5", f"letter {letter.number} cancelled", facts)
    if on < letter.issued_on:
        return LetterState.NOT_YET_VALID, Reason(
            "R3.3", f"letter {letter.number} is valid from {letter.issued_on.isoformat()}", facts
        )
    if on > policy.ends_on:
        return LetterState.ENDED_WITH_POLICY, Reason(
            "R10.3",
            f"letter {letter.number} ended with policy {policy.number} on {policy.ends_on.isoformat()}",
            facts,
        )
    if on > letter.valid_until:
        return LetterState.EXPIRED, Reason(
            "R3.3", f"letter {letter.number} expired on {letter.valid_until.isoformat()}", facts
        )
    return LetterState.ACTIVE, Reason(
        "R3.3", f"letter {letter.number} is valid until {letter.valid_until.isoformat()}", facts
    )


def format_number(prefix: str, year: int, seq: int) -> str:
    """Format a document number ``PP-YYYY-NNNNNN`` (letters of guarantee, attachment letters).

    Args:
        prefix: Two capital letters, e.g. ``"LG"``.
        year: Four-digit year of issue.
        seq: Sequence number within the year, 1..999999.

    Returns:
        The number, zero-padded, e.g. ``"LG-2026-000123"``.
    """
    if not re.fullmatch(r"[A-Z]{2}", prefix):
        raise InvalidInput("a document prefix is two capital letters", details={"prefix": prefix})
    if not 1000 <= year <= 9999:
        raise InvalidInput("the year must have four digits", details={"year": year})
    if not 1 <= seq <= 999_999:
        raise InvalidInput("the sequence number must be 1..999999", details={"seq": seq})
    return f"{prefix}-{year:04d}-{seq:06d}"


def format_letter_number(year: int, seq: int) -> str:
    """The number of a letter of guarantee, e.g. ``format_letter_number(2026, 123) == "LG-2026-000123"``.

    Args:
        year: Year of issue.
        seq: Sequence number within the year.

    Returns:
        The printed number the person is told (R2.6).
    """
    return format_number(LETTER_PREFIX, year, seq)


def parse_letter_number(number: str) -> tuple[int, int]:
    """Read ``(year, seq)`` back from a letter number, refusing anything else.

    Args:
        number: E.g. ``"LG-2026-000123"``.

    Returns:
        ``(2026, 123)``.
    """
    match = _NUMBER_RE.match(number.strip())
    if match is None or match.group(1) != LETTER_PREFIX or int(match.group(3)) == 0:
        raise InvalidInput("not a letter of guarantee number", details={"number": number})
    return int(match.group(2)), int(match.group(3))


def service_key(name: str) -> str:
    """How two service names compare: case and spacing do not matter (clinics and dispatchers type them).

    Args:
        name: A service name as typed.

    Returns:
        The comparison key: spaces collapsed, case folded.
    """
    return " ".join(name.split()).casefold()


def normalize_services(services: Iterable[str]) -> tuple[str, ...]:
    """Clean a list of service names: trim, collapse spaces, drop empties and duplicates, keep order.

    Args:
        services: Names as typed.

    Returns:
        The distinct names, first spelling kept.
    """
    seen: set[str] = set()
    out: list[str] = []
    for raw in services:
        name = " ".join(raw.split())
        key = name.casefold()
        if name and key not in seen:
            seen.add(key)
            out.append(name)
    return tuple(out)


def _services_text(services: Iterable[str]) -> str:
    return ", ".join(sorted(services, key=service_key)) or "no services"


def check_letter_issue(
    program: ProgramFacts,
    clinic: ClinicFacts,
    services: Iterable[str],
    component: Component | str,
    *,
    insured: InsuredFacts,
    policy: PolicyFacts,
    event: InsuredEventFacts,
    on: date,
) -> Decision:
    """Whether the console may send ``clinic`` a letter of guarantee for ``services`` (R2.5).

    Args:
        program: The person's program: the clinic must be on its list (R2.3) and cover ``component``.
        clinic: The clinic chosen with the person.
        services: The agreed services, or ``[DIAGNOSIS_SERVICE]`` for diagnosis of the complaints.
        component: The component the services fall under.
        insured: The person.
        policy: Their policy, valid on ``on`` (R10.2).
        event: The open insured event the letter belongs to.
        on: Day of issue.

    Returns:
        ``allowed`` with an R2.5 reason giving the validity end; otherwise every failed condition.
    """
    component = parse_component(component)
    names = normalize_services(services)
    failures: list[Reason] = []
    if not names:
        failures.append(
            Reason("R2.5", f"a letter names the agreed services, or {DIAGNOSIS_SERVICE!r}", {"services": []})
        )
    if len(names) > MAX_SERVICES:
        failures.append(Reason("R2.5", f"a letter names at most {MAX_SERVICES} services", {"count": len(names)}))
    too_long = [n for n in names if len(n) > MAX_SERVICE_CHARS]
    if too_long:
        failures.append(
            Reason("R2.5", f"a service name is limited to {MAX_SERVICE_CHARS} characters", {"count": len(too_long)})
        )
    if clinic.id not in program.clinic_ids:
        failures.append(
            Reason(
                "R2.3",
                f"{clinic.name} is not on the list of {program.label}: no letter can be sent to it",
                {"clinic_id": clinic.id, "program_id": program.id},
            )
        )
    coverage = evaluate_coverage(insured, policy, program, component, on)
    if not coverage.allowed:
        failures.extend(coverage.reasons)
    if event.status is not EventStatus.OPEN:
        failures.append(
            Reason(
                "R3.1",
                f"insured event {event.id} is {event.status.value}: a new problem is a new insured event",
                {"insured_event_id": event.id, "status": event.status.value},
            )
        )
    if event.component is not component:
        failures.append(
            Reason(
                "R10.2",
                f"insured event {event.id} is under {event.component.value} care, not {component.value}",
                {"insured_event_id": event.id, "event_component": event.component.value},
            )
        )
    if failures:
        return Decision.deny(*failures)
    valid_until, capped = capped_validity(on, policy)
    return Decision.allow(
        Reason(
            "R2.5",
            f"a letter of guarantee to {clinic.name} for {_services_text(names)}, "
            f"valid until {valid_until.isoformat()}",
            {
                "clinic_id": clinic.id,
                "services": list(names),
                "issued_on": on.isoformat(),
                "valid_until": valid_until.isoformat(),
                "insured_event_id": event.id,
            },
        ),
        *((capped,) if capped else ()),
        *coverage.reasons,
    )


def draft_letter(
    number: str,
    clinic: ClinicFacts,
    services: Iterable[str],
    event: InsuredEventFacts,
    on: date,
    *,
    policy: PolicyFacts,
) -> LetterFacts:
    """The letter to store once ``check_letter_issue`` allowed it.

    Args:
        number: From ``format_letter_number``.
        clinic: The clinic it promises payment to.
        services: The agreed services.
        event: The insured event.
        on: Day of issue.
        policy: The person's policy; the letter ends with it at the latest (R10.3).

    Returns:
        An active letter valid one month (R3.3), capped at the policy's last day (R10.3).
    """
    parse_letter_number(number)
    return LetterFacts(
        number=number,
        clinic_id=clinic.id,
        services=frozenset(normalize_services(services)),
        issued_on=on,
        valid_until=capped_validity(on, policy)[0],
        status=LetterStatus.ACTIVE,
        insured_event_id=event.id,
    )


@dataclass(frozen=True, slots=True)
class LetterTransition:
    """A letter after a lifecycle step, with why it was allowed."""

    letter: LetterFacts
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {
            "number": self.letter.number,
            "status": self.letter.status.value,
            "valid_until": self.letter.valid_until.isoformat(),
            "reasons": [r.as_dict() for r in self.reasons],
        }


def _letter_facts(letter: LetterFacts) -> dict[str, Any]:
    return {
        "letter_number": letter.number,
        "status": letter.status.value,
        "issued_on": letter.issued_on.isoformat(),
        "valid_until": letter.valid_until.isoformat(),
    }


def check_letter_extension(letter: LetterFacts, event: InsuredEventFacts, on: date, *, policy: PolicyFacts) -> Decision:
    """Whether the console may re-approve a letter for another month (R3.3).

    An expired letter whose treatment is not complete needs a new approval; extending the letter
    is that approval, for the same services at the same clinic.

    Args:
        letter: The letter.
        event: Its insured event; treatment must still be going on.
        on: The day of the new approval.
        policy: The person's policy: no re-approval outside it, none reaching past its end (R10.2, R10.3).

    Returns:
        ``allowed`` with the new validity end, or why not.
    """
    facts = _letter_facts(letter)
    if letter.insured_event_id is not None and letter.insured_event_id != event.id:
        raise InvalidInput("the letter belongs to another insured event", details=facts)
    if letter.status is not LetterStatus.ACTIVE:
        return Decision.deny(
            Reason("R3.3", f"letter {letter.number} is {letter.status.value}: it cannot be extended", facts)
        )
    if event.treatment_complete:
        return Decision.deny(
            Reason(
                "R3.3",
                f"treatment of insured event {event.id} is complete ({event.status.value}): nothing to extend",
                {**facts, "insured_event_id": event.id},
            )
        )
    if on < letter.issued_on:
        raise InvalidInput("a letter cannot be extended before it is issued", details=facts)
    if not policy.is_valid_on(on):
        return Decision.deny(
            Reason(
                "R10.2",
                f"policy {policy.number} is not valid on {on.isoformat()} (it runs {policy.starts_on.isoformat()} "
                f"to {policy.ends_on.isoformat()}): no re-approval",
                {**facts, "on": on.isoformat(), "policy_number": policy.number},
            )
        )
    new_until, capped = capped_validity(on, policy)
    if new_until <= letter.valid_until:
        if capped is not None:
            return Decision.deny(
                Reason(
                    "R10.3",
                    f"letter {letter.number} is already valid until {letter.valid_until.isoformat()} and policy "
                    f"{policy.number} ends on {policy.ends_on.isoformat()}: no extension reaches past the policy's end",
                    {**facts, "on": on.isoformat(), "ends_on": policy.ends_on.isoformat()},
                )
            )
        return Decision.deny(
            Reason(
                "R3.3",
                f"letter {letter.number} is already valid until {letter.valid_until.isoformat()}",
                facts,
            )
        )
    state = "expired" if on > letter.valid_until else "still valid"
    return Decision.allow(
        Reason(
            "R3.3",
            f"letter {letter.number} ({state}, was valid until {letter.valid_until.isoformat()}) is re-approved "
            f"until {new_until.isoformat()}: treatment is not complete",
            {**facts, "new_valid_until": new_until.isoformat(), "on": on.isoformat()},
        ),
        *((capped,) if capped else ()),
    )


def extend_letter(letter: LetterFacts, event: InsuredEventFacts, on: date, *, policy: PolicyFacts) -> LetterTransition:
    """Extend a letter by one month from ``on``, never past the policy's end (R3.3, R10.3).

    Args:
        letter: The letter.
        event: Its open insured event.
        on: Day of the new approval.
        policy: The person's policy.

    Returns:
        The extended letter and its reasons.

    Raises:
        RuleViolation: when ``check_letter_extension`` refuses (reasons included).
    """
    decision = check_letter_extension(letter, event, on, policy=policy)
    if not decision.allowed:
        raise RuleViolation(decision.reasons[0].message, reasons=decision.reasons)
    return LetterTransition(replace(letter, valid_until=capped_validity(on, policy)[0]), decision.reasons)


def _finish(letter: LetterFacts, target: LetterStatus, on: date, why: str) -> LetterTransition:
    facts = {**_letter_facts(letter), "on": on.isoformat()}
    if letter.status is not LetterStatus.ACTIVE:
        reason = Reason("R2.5", f"letter {letter.number} is already {letter.status.value}", facts)
        raise Conflict(reason.message, reasons=(reason,))
    if on < letter.issued_on:
        raise InvalidInput(f"a letter cannot be {target.value} before it is issued", details=facts)
    reason = Reason("R2.5", f"letter {letter.number} {target.value}: {why}", {**facts, "status": target.value})
    return LetterTransition(replace(letter, status=target), (reason,))


def close_letter(letter: LetterFacts, on: date) -> LetterTransition:
    """Close an active letter because treatment is complete.

    Args:
        letter: An active letter.
        on: The day of closing.

    Returns:
        The closed letter; a closed letter never authorizes a visit again.

    Raises:
        Conflict: when the letter is already closed or cancelled.
    """
    return _finish(letter, LetterStatus.CLOSED, on, "treatment complete")


def cancel_letter(letter: LetterFacts, on: date) -> LetterTransition:
    """Cancel an active letter (issued in error, visit not taking place).

    Args:
        letter: An active letter.
        on: The day of cancelling.

    Returns:
        The cancelled letter; it never authorizes a visit again.

    Raises:
        Conflict: when the letter is already closed or cancelled.
    """
    return _finish(letter, LetterStatus.CANCELLED, on, "cancelled, the clinic will not be paid under it")
