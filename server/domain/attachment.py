"""Attachment letters for registry persons: when generated, sent, and how long they attach (R6.1, R6.2, R7.1-R7.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from server.domain.calendar import is_business_day, next_business_day
from server.domain.coverage_types import (
    AttachmentLetterFacts,
    ClinicFacts,
    InsuredFacts,
    PaymentMode,
    PolicyFacts,
    ProgramFacts,
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


def effective_due_date(due_on: date) -> date:
    """The day an installment must be bundled by: its due date, moved to the next business day (R7.5).

    Civil Code art. 193: a term ending on a non-business day ends on the next business day, so an
    installment due on 2027-01-01 and bundled on 2027-01-11 (the first business day) is on time.

    Args:
        due_on: The scheduled due date.

    Returns:
        ``due_on`` itself on a business day, else the next business day of the production calendar.
    """
    return due_on if is_business_day(due_on) else next_business_day(due_on)


@dataclass(frozen=True, slots=True)
class Installment:
    """One scheduled payment that concerns the person, on either schedule (R7.4).

    Attributes:
        due_on: Its due date as scheduled (R7.5 moves it off non-business days).
        paid: Whether money has been bundled for it (this payment included).
        schedule: ``"premium"`` (the policy's) or ``"additional_premium"`` (the switch's, R4.4).
        reference: What names it: the policy or agreement number, for the messages.
    """

    due_on: date
    paid: bool
    schedule: str = "premium"
    reference: str = ""

    def facts(self) -> dict[str, Any]:
        """JSON-ready form for reasons."""
        return {
            "due_on": self.due_on.isoformat(),
            "effective_due_on": effective_due_date(self.due_on).isoformat(),
            "schedule": self.schedule,
            "reference": self.reference,
        }


def overdue_installments(installments: Iterable[Installment], on: date) -> list[Installment]:
    """The unpaid installments already due on ``on`` (R7.4, with R7.5's moved due dates).

    An installment due today (or whose due date moved to today, R7.5) counts: on its due date the
    previous letter still attaches the person, and a letter made while it is unpaid would run to
    that very day, so only paying it renews the attachment.

    Args:
        installments: Both schedules' installments that concern the person.
        on: The day of bundling.

    Returns:
        The unpaid ones whose effective due date is ``on`` or earlier, earliest first.
    """
    return sorted(
        (i for i in installments if not i.paid and effective_due_date(i.due_on) <= on),
        key=lambda i: (i.due_on, i.schedule),
    )


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
    installments: Iterable[Installment] | None = None,
    program: ProgramFacts | None = None,
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
        unless the next payment is bundled (R7.4). With ``installments`` (both schedules, R7.4) it
        is the earliest unpaid one's due date, moved off a non-business day (R7.5).
      * No letter while an installment of either schedule already due is unpaid (R7.4), none to a
        clinic that left the program (R5.4), none that could not reach the clinic before the policy
        ends (R7.7).

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
        installments: Every installment of both schedules that concern the person, as they stand
            with this payment bundled (R7.4). ``None`` keeps the single-schedule reading of R7.3.
        program: The person's program; its clinic list decides R5.4.

    Returns:
        The plan; turn it into stored facts with ``plan.to_facts(number)``.

    Raises:
        RuleViolation: the person is not registry at ``clinic`` (R6.1), the policy has ended (R7.3),
            an installment already due is unpaid (R7.4), the clinic left the program (R5.4), or the
            letter would reach the clinic only after the policy's end (R7.7).
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
    if program is not None and clinic.id not in program.clinic_ids:
        reason = Reason(
            "R5.4",
            f"{clinic.name} has left the list of {program.label}: no attachment letter goes to it; the person "
            "chooses a replacement clinic of the same category and is served through the console meanwhile",
            {"clinic_id": clinic.id, "program_id": program.id, "insured_id": insured.id},
        )
        raise RuleViolation(reason.message, reasons=(reason,))
    all_installments = tuple(installments) if installments is not None else None
    if all_installments is not None:
        overdue = overdue_installments(all_installments, bundled_on)
        if overdue:
            first = overdue[0]
            reason = Reason(
                "R7.4",
                f"the {first.schedule.replace('_', ' ')} installment {first.reference} due on "
                f"{effective_due_date(first.due_on).isoformat()} is unpaid: no attachment until every installment "
                "due so far is paid",
                {
                    "bundled_on": bundled_on.isoformat(),
                    "insured_id": insured.id,
                    "unpaid": [i.facts() for i in overdue],
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
    if not continued and send_on > policy.ends_on:
        reason = Reason(
            "R7.7",
            f"the letter would reach {clinic.name} on {send_on.isoformat()}, after policy {policy.number} ends on "
            f"{policy.ends_on.isoformat()}: it would attach the person for no day",
            {
                "send_on": send_on.isoformat(),
                "ends_on": policy.ends_on.isoformat(),
                "bundled_on": bundled_on.isoformat(),
            },
        )
        raise RuleViolation(reason.message, reasons=(reason,))
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

    if all_installments is not None:
        # R7.4: the earliest unpaid installment of either schedule ends the attachment.
        scheduled_due = min(
            (i.due_on for i in all_installments if not i.paid and effective_due_date(i.due_on) <= policy.ends_on),
            default=None,
        )
    else:
        after = max(bundled_on, covers_due_on) if covers_due_on is not None else bundled_on
        scheduled_due = next_due_date(policy, after)
    if scheduled_due is None:
        valid_until = policy.ends_on
        if policy.payment_mode is PaymentMode.LUMP_SUM and all_installments is None:
            why = f"until the policy's end on {valid_until.isoformat()} (paid in a lump sum)"
        else:
            why = f"until the policy's end on {valid_until.isoformat()} (no installment left unpaid)"
    else:
        valid_until = min(effective_due_date(scheduled_due), policy.ends_on)
        why = f"until the next installment due on {valid_until.isoformat()}"
        if valid_until != scheduled_due:
            why += f" ({scheduled_due.isoformat()} is not a business day, so the due date moves: R7.5)"
    reasons.append(
        Reason(
            "R7.3",
            f"attaches the person to {clinic.name} {why}",
            {
                "valid_until": valid_until.isoformat(),
                "payment_mode": policy.payment_mode.value,
                "covers_due_on": covers_due_on.isoformat() if covers_due_on else None,
                "scheduled_due_on": scheduled_due.isoformat() if scheduled_due else None,
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


def same_day_letter(
    previous_letters: Iterable[AttachmentLetterFacts], clinic_id: int, bundled_on: date
) -> AttachmentLetterFacts | None:
    """The letter already generated for the person on ``bundled_on``, which a second payment updates (R7.6).

    One payment day gives one attachment letter per registry person, however many schedules are
    settled that day: the policy's premium and an additional-premium installment bundled on the
    same day make one letter, whose validity the later payment extends, not two.

    Args:
        previous_letters: The person's attachment letters.
        clinic_id: The attached clinic.
        bundled_on: The day of bundling.

    Returns:
        That day's letter to the clinic, or ``None`` when a new letter is to be generated.
    """
    same = [
        letter for letter in previous_letters if letter.clinic_id == clinic_id and letter.generated_on == bundled_on
    ]
    return max(same, key=lambda letter: letter.number) if same else None


@dataclass(frozen=True, slots=True)
class DuePayment:
    """A scheduled payment a bundled payment might settle (R7.6).

    Attributes:
        id: The scheduled payment id.
        reference: What names its schedule: the policy number or the additional agreement number.
        amount: Its amount.
        due_on: Its due date.
        paid: Already settled.
    """

    id: int
    reference: str
    amount: Any
    due_on: date
    paid: bool = False


@dataclass(frozen=True, slots=True)
class PaymentMatch:
    """Which scheduled payment a bundled payment settles, or why it waits for an admin (R7.6).

    Attributes:
        scheduled: The matched payment; ``None`` when it is ambiguous or matches nothing.
        reasons: Why.
    """

    scheduled: DuePayment | None
    reasons: tuple[Reason, ...]

    @property
    def matched(self) -> bool:
        """Whether a scheduled payment was found."""
        return self.scheduled is not None


def match_payment(candidates: Iterable[DuePayment], amount: Any, reference: str | None) -> PaymentMatch:
    """Match money received to the scheduled payment it names, never guessing between schedules (R7.6).

    * With a reference (the policy number or an additional agreement number), the earliest unpaid
      payment of that schedule, which must be of that amount: one schedule is paid in order.
    * Without one, the payment is matched only if all the unpaid payments of that amount belong to
      one schedule (the earliest of them); if they belong to several (two persons owing the same
      additional premium, or a premium installment equal to one), it is ambiguous and waits for an
      admin to match it.

    Args:
        candidates: The policy's scheduled payments.
        amount: The money received (already rounded to kopecks).
        reference: The reference the payment carries, if any (case and spaces ignored).

    Returns:
        The match, or no match with the R7.6 reason.
    """
    unpaid = sorted((c for c in candidates if not c.paid), key=lambda c: (c.due_on, c.id))
    facts: dict[str, Any] = {"amount": str(amount), "reference": reference}
    if reference is not None and reference.strip():
        key = " ".join(reference.split()).casefold()
        of_schedule = [c for c in unpaid if " ".join(c.reference.split()).casefold() == key]
        if not of_schedule:
            return PaymentMatch(
                None, (Reason("R7.6", f"no unpaid scheduled payment carries the reference {reference!r}", facts),)
            )
        first = of_schedule[0]
        if first.amount != amount:
            return PaymentMatch(
                None,
                (
                    Reason(
                        "R7.6",
                        f"the next payment due under {first.reference} is {first.amount} (due "
                        f"{first.due_on.isoformat()}), not {amount}: an admin matches it",
                        {**facts, "scheduled_payment_id": first.id, "scheduled_amount": str(first.amount)},
                    ),
                ),
            )
        return PaymentMatch(
            first,
            (
                Reason(
                    "R7.6",
                    f"matched by its reference {first.reference} to the payment due {first.due_on.isoformat()}",
                    {**facts, "scheduled_payment_id": first.id},
                ),
            ),
        )
    same_amount = [c for c in unpaid if c.amount == amount]
    schedules = sorted({c.reference for c in same_amount})
    if not same_amount:
        return PaymentMatch(None, (Reason("R7.6", f"no unpaid scheduled payment of {amount}", facts),))
    if len(schedules) > 1:
        return PaymentMatch(
            None,
            (
                Reason(
                    "R7.6",
                    f"{amount} without a reference could settle payments of {', '.join(schedules)}: it waits for an "
                    "admin to match it",
                    {**facts, "candidates": [c.id for c in same_amount], "references": schedules},
                ),
            ),
        )
    first = same_amount[0]
    return PaymentMatch(
        first,
        (
            Reason(
                "R7.6",
                f"the only schedule with an unpaid payment of {amount} is {first.reference}: matched to the payment "
                f"due {first.due_on.isoformat()}",
                {**facts, "scheduled_payment_id": first.id},
            ),
        ),
    )


def replacement_attachment_letter(
    insured: InsuredFacts,
    policy: PolicyFacts,
    clinic: ClinicFacts,
    on: date,
    previous_letters: Iterable[AttachmentLetterFacts],
) -> AttachmentLetterPlan | None:
    """The attachment letter to the replacement clinic after the attached one left the program (R5.4).

    The premium already paid keeps the person attached as long as the old letter said: the new
    clinic gets a letter for the rest of that time, from the day it receives it (R7.2, R6.2).

    Args:
        insured: The person, already registry at ``clinic`` (the replacement).
        policy: Their policy.
        clinic: The replacement clinic.
        on: The day of the replacement.
        previous_letters: The person's letters to the clinic that left.

    Returns:
        The plan, or ``None`` when no paid time is left to carry over (the next payment makes the
        letter, R7.1) or the letter could not reach the clinic in time.
    """
    if insured.attached_clinic_id != clinic.id:
        raise InvalidInput("attach the replacement clinic first", details={"clinic_id": clinic.id})
    running = [letter for letter in previous_letters if letter.valid_until >= on and letter.clinic_id != clinic.id]
    if not running:
        return None
    last = max(running, key=lambda letter: letter.valid_until)
    send_on = next_business_day(on)
    valid_until = min(last.valid_until, policy.ends_on)
    valid_from = max(send_on, policy.starts_on)
    if valid_from > valid_until:
        return None
    return AttachmentLetterPlan(
        insured_id=insured.id,
        clinic_id=clinic.id,
        generated_on=on,
        send_on=send_on,
        valid_from=valid_from,
        valid_until=valid_until,
        reasons=(
            Reason(
                "R5.4",
                f"{clinic.name} replaces the clinic that left the program for the time already paid, until "
                f"{valid_until.isoformat()} (letter {last.number})",
                {"previous_letter": last.number, "valid_until": valid_until.isoformat(), "clinic_id": clinic.id},
            ),
            Reason(
                "R7.2",
                f"sent to {clinic.name} on {send_on.isoformat()}, the next business day; attached from then",
                {"send_on": send_on.isoformat(), "valid_from": valid_from.isoformat()},
            ),
        ),
    )
