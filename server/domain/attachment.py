"""Attachment letters for registry persons: when generated, sent, and how long they attach (R6.1, R6.2, R7.1-R7.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from server.domain.calendar import next_business_day
from server.domain.coverage_types import (
    AttachmentLetterFacts,
    ClinicFacts,
    InsuredFacts,
    PaymentMode,
    PolicyFacts,
    ServiceType,
)
from server.domain.decisions import Decision, Reason
from server.domain.errors import InvalidInput, RuleViolation
from server.domain.letters import format_number

ATTACHMENT_LETTER_PREFIX: Final = "AL"


def format_attachment_letter_number(year: int, seq: int) -> str:
    """The number of an attachment letter, e.g. ``"AL-2026-000042"``.

    Args:
        year: Year of generation.
        seq: Sequence number within the year.

    Returns:
        The printed number.
    """
    return format_number(ATTACHMENT_LETTER_PREFIX, year, seq)


@dataclass(frozen=True, slots=True)
class AttachmentLetterPlan:
    """The attachment letter to generate for one bundled payment.

    Attributes:
        insured_id: The registry person.
        clinic_id: Their attached clinic, the letter's addressee (R6.1).
        generated_on: The day the money was bundled (R7.1).
        send_on: The next business day, when staff send it (R7.2).
        valid_from: First day the clinic may take the person without approval (R6.2).
        valid_until: Last day of attachment: the next installment's due date or the policy's end (R7.3).
        reasons: Why each date is what it is.
    """

    insured_id: int
    clinic_id: int
    generated_on: date
    send_on: date
    valid_from: date
    valid_until: date
    reasons: tuple[Reason, ...]

    def to_facts(self, number: str) -> AttachmentLetterFacts:
        """The letter as stored, once the service has given it a number."""
        return AttachmentLetterFacts(
            number=number,
            clinic_id=self.clinic_id,
            generated_on=self.generated_on,
            send_on=self.send_on,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {
            "insured_id": self.insured_id,
            "clinic_id": self.clinic_id,
            "generated_on": self.generated_on.isoformat(),
            "send_on": self.send_on.isoformat(),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "reasons": [r.as_dict() for r in self.reasons],
        }


def next_due_date(policy: PolicyFacts, after: date) -> date | None:
    """The first installment due date strictly after ``after`` within the policy, if any.

    Args:
        policy: The policy and its schedule.
        after: The reference day.

    Returns:
        The due date, or ``None`` for a lump-sum policy or when no installment is left.
    """
    if policy.payment_mode is PaymentMode.LUMP_SUM:
        return None
    for due in policy.installment_due_dates:
        if after < due <= policy.ends_on:
            return due
    return None


def attachment_letter_for_payment(
    insured: InsuredFacts,
    policy: PolicyFacts,
    clinic: ClinicFacts,
    bundled_on: date,
    *,
    covers_due_on: date | None = None,
    previous_letters: Iterable[AttachmentLetterFacts] = (),
) -> AttachmentLetterPlan:
    """Plan the attachment letter generated when a payment is bundled with the policy (R7.1-R7.3).

    Dates, and why:
      * ``generated_on`` is ``bundled_on`` (R7.1) and ``send_on`` the next business day (R7.2).
      * ``valid_from`` is ``send_on``: R6.2 exempts visits only once the clinic has the letter. When
        the letter continues an attachment still in force on ``bundled_on`` (a later installment paid
        on time), it starts on ``bundled_on`` instead, so that paying on time never leaves a gap.
        Never before the policy starts.
      * ``valid_until`` (inclusive) is the next installment due date after the paid one, or the
        policy's end for a lump sum or after the last installment (R7.3). Inclusive so that both
        payment modes share one meaning: the person is attached on that day, and not after it
        unless the next payment is bundled (R7.4).

    Apply the service type change first (R4.6): the person must already be ``registry`` with
    ``clinic`` attached.

    Args:
        insured: The registry person.
        policy: Their policy and its payment schedule.
        clinic: The attached clinic.
        bundled_on: The day the money was matched with the policy.
        covers_due_on: The due date of the installment this payment settles, when known; it matters
            for a payment made early (the letter then runs to the installment after that one).
            Without it the letter runs to the first due date after ``bundled_on``.
        previous_letters: The person's earlier attachment letters, to recognize a continuation.

    Returns:
        The plan; turn it into stored facts with ``plan.to_facts(number)``.

    Raises:
        RuleViolation: the person is not registry at ``clinic`` (R6.1), or the policy has ended (R7.3).
        InvalidInput: the person is not on ``policy``.
    """
    if insured.policy_id is not None and insured.policy_id != policy.id:
        raise InvalidInput("the insured person is not on this policy", details={"insured_id": insured.id})
    if insured.service_type is not ServiceType.REGISTRY or insured.attached_clinic_id != clinic.id:
        reason = Reason(
            "R6.1",
            f"an attachment letter goes only to a registry person's attached clinic; {clinic.name} is not "
            "this person's attached clinic",
            {
                "insured_id": insured.id,
                "service_type": insured.service_type.value,
                "attached_clinic_id": insured.attached_clinic_id,
                "clinic_id": clinic.id,
            },
        )
        raise RuleViolation(reason.message, reasons=(reason,))
    if bundled_on > policy.ends_on:
        reason = Reason(
            "R7.3",
            f"policy {policy.number} ended on {policy.ends_on.isoformat()}: there is nothing left to attach",
            {
                "policy_number": policy.number,
                "ends_on": policy.ends_on.isoformat(),
                "bundled_on": bundled_on.isoformat(),
            },
        )
        raise RuleViolation(reason.message, reasons=(reason,))

    send_on = next_business_day(bundled_on)
    reasons = [
        Reason(
            "R7.1",
            f"generated on {bundled_on.isoformat()}, the day the payment was bundled with policy {policy.number}",
            {"bundled_on": bundled_on.isoformat(), "policy_number": policy.number},
        ),
        Reason(
            "R7.2",
            f"sent to {clinic.name} on {send_on.isoformat()}, the next business day",
            {"send_on": send_on.isoformat(), "clinic_id": clinic.id},
        ),
    ]

    same_clinic = [letter for letter in previous_letters if letter.clinic_id == clinic.id]
    continued = sorted(
        (letter for letter in same_clinic if letter.valid_from <= bundled_on <= letter.valid_until),
        key=lambda letter: letter.valid_until,
    )
    if continued:
        valid_from = bundled_on
        reasons.append(
            Reason(
                "R7.3",
                f"continues letter {continued[-1].number} (valid until {continued[-1].valid_until.isoformat()}) "
                f"without a gap, from {bundled_on.isoformat()}",
                {"previous_letter": continued[-1].number, "valid_from": bundled_on.isoformat()},
            )
        )
    else:
        valid_from = send_on
        reasons.append(
            Reason(
                "R6.2",
                f"attachment starts on {send_on.isoformat()}, when {clinic.name} receives the letter",
                {"valid_from": send_on.isoformat()},
            )
        )
    if valid_from < policy.starts_on:
        valid_from = policy.starts_on
        reasons.append(
            Reason(
                "R10.2",
                f"attachment starts with policy {policy.number} on {policy.starts_on.isoformat()}",
                {"valid_from": valid_from.isoformat()},
            )
        )

    after = max(bundled_on, covers_due_on) if covers_due_on is not None else bundled_on
    due = next_due_date(policy, after)
    if policy.payment_mode is PaymentMode.LUMP_SUM:
        valid_until = policy.ends_on
        why = f"until the policy's end on {valid_until.isoformat()} (paid in a lump sum)"
    elif due is None:
        valid_until = policy.ends_on
        why = f"until the policy's end on {valid_until.isoformat()} (no installment left after this one)"
    else:
        valid_until = due
        why = f"until the next installment due on {due.isoformat()}"
    reasons.append(
        Reason(
            "R7.3",
            f"attaches the person to {clinic.name} {why}",
            {
                "valid_until": valid_until.isoformat(),
                "payment_mode": policy.payment_mode.value,
                "covers_due_on": covers_due_on.isoformat() if covers_due_on else None,
            },
        )
    )
    if valid_from > valid_until:
        reasons.append(
            Reason(
                "R7.4",
                f"the next installment falls due on {valid_until.isoformat()}, before the letter takes effect: "
                "pay it to stay attached",
                {"valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat()},
            )
        )
    return AttachmentLetterPlan(
        insured_id=insured.id,
        clinic_id=clinic.id,
        generated_on=bundled_on,
        send_on=send_on,
        valid_from=valid_from,
        valid_until=valid_until,
        reasons=tuple(reasons),
    )


def attachment_effective(
    letters: Iterable[AttachmentLetterFacts],
    on: date,
    *,
    clinic_id: int | None = None,
) -> Decision:
    """Whether a registry attachment is in force on ``on`` (R6.2, R7.4).

    Args:
        letters: The person's attachment letters (any order).
        on: The day of the visit.
        clinic_id: Only consider letters to this clinic (the person's attached clinic).

    Returns:
        ``allowed`` (the person books directly with the clinic) citing the letter in force; refused
        otherwise, saying whether the letter has not reached the clinic yet (R7.2) or the attachment
        lapsed because the next installment was not paid (R7.4): the person then has dispatcher access.
    """
    relevant = [letter for letter in letters if clinic_id is None or letter.clinic_id == clinic_id]
    in_force = sorted((letter for letter in relevant if letter.is_in_force_on(on)), key=lambda x: x.valid_until)
    if in_force:
        letter = in_force[-1]
        return Decision.allow(
            Reason(
                "R6.2",
                f"attachment letter {letter.number} is in force from {letter.valid_from.isoformat()} to "
                f"{letter.valid_until.isoformat()}: book directly with the clinic's reception",
                {
                    "attachment_letter": letter.number,
                    "clinic_id": letter.clinic_id,
                    "valid_from": letter.valid_from.isoformat(),
                    "valid_until": letter.valid_until.isoformat(),
                    "on": on.isoformat(),
                },
            )
        )
    pending = sorted((letter for letter in relevant if letter.valid_from > on), key=lambda x: x.valid_from)
    if pending:
        letter = pending[0]
        return Decision.deny(
            Reason(
                "R7.2",
                f"attachment letter {letter.number} reaches the clinic on {letter.send_on.isoformat()} and "
                f"attaches from {letter.valid_from.isoformat()}; until then visits go through the console",
                {
                    "attachment_letter": letter.number,
                    "send_on": letter.send_on.isoformat(),
                    "valid_from": letter.valid_from.isoformat(),
                    "on": on.isoformat(),
                },
            )
        )
    lapsed = sorted(relevant, key=lambda x: x.valid_until)
    if lapsed:
        letter = lapsed[-1]
        return Decision.deny(
            Reason(
                "R7.4",
                f"attachment letter {letter.number} ended on {letter.valid_until.isoformat()} and no later payment "
                "is bundled: dispatcher access only until it is paid",
                {
                    "attachment_letter": letter.number,
                    "valid_until": letter.valid_until.isoformat(),
                    "on": on.isoformat(),
                },
            )
        )
    return Decision.deny(
        Reason(
            "R6.1",
            "no attachment letter has been generated yet: visits go through the console",
            {"on": on.isoformat(), "clinic_id": clinic_id},
        )
    )
