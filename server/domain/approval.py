"""Does a visit need the console's (new) approval? Letters of guarantee, registry exemption (R3, R6.2, R6.3, R7.4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from server.domain.attachment import attachment_effective
from server.domain.coverage_types import (
    AttachmentLetterFacts,
    InsuredFacts,
    LetterFacts,
    LetterStatus,
    ServiceType,
)
from server.domain.decisions import Reason
from server.domain.letters import normalize_services, service_key


class BookingChannel(StrEnum):
    """Where the person books the visit."""

    CLINIC_REGISTRY = "clinic_registry"  # directly with the attached clinic's reception (R6.2)
    CONSOLE = "console"  # through the dispatch console or branch curator (R2)


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """Whether a visit needs a (new) approval, and why.

    Attributes:
        needs_approval: The console must approve before the visit.
        reasons: Which of R3.1-R3.3, or the R6.2 exemption, decided it (plus context: R6.3, R7.4).
        letter: The valid letter of guarantee that authorizes the visit, when one does.
        channel: Where the person books.
    """

    needs_approval: bool
    reasons: tuple[Reason, ...]
    letter: LetterFacts | None = None
    channel: BookingChannel = BookingChannel.CONSOLE

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids cited, in order."""
        return tuple(r.rule for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {
            "needs_approval": self.needs_approval,
            "channel": self.channel.value,
            "letter_number": self.letter.number if self.letter else None,
            "reasons": [r.as_dict() for r in self.reasons],
        }


def _letter_facts(letter: LetterFacts) -> dict[str, Any]:
    return {
        "letter_number": letter.number,
        "clinic_id": letter.clinic_id,
        "issued_on": letter.issued_on.isoformat(),
        "valid_until": letter.valid_until.isoformat(),
        "status": letter.status.value,
    }


def needs_approval(
    insured: InsuredFacts,
    clinic_id: int,
    services: Iterable[str],
    on: date,
    *,
    new_event: bool,
    letters: Iterable[LetterFacts] = (),
    attachment_letters: Iterable[AttachmentLetterFacts] = (),
    attached_clinic_listed: bool = True,
) -> ApprovalDecision:
    """Decide whether a visit or prescribed service needs the console's (new) approval (R3).

    Order, and why:
      1. A registry person at their attached clinic with an attachment in force needs no approval
         at all (R6.2), whatever the event. If the attachment is not in force (letter not yet at the
         clinic, or lapsed for an unpaid installment, R7.4), they are treated as dispatcher.
      2. A registry person at any other clinic is treated as dispatcher (R6.3).
      3. Dispatcher rules: a new insured event needs approval (R3.1). Otherwise one valid letter of
         the event, at this clinic, naming every requested service authorizes the visit. If none
         does: services missing from the valid letter (R3.2), an expired letter while treatment
         goes on (R3.3), or no letter for this clinic at all (R2.5). An expired, closed or cancelled
         letter never authorizes. Services of two letters are not combined: each letter is a
         separate promise, so a visit mixing them is a new approval.

    Args:
        insured: The person.
        clinic_id: The clinic of the visit.
        services: The services requested or prescribed (case and spacing ignored). None means a
            follow-up visit within the letter.
        on: The day of the visit.
        new_event: The visit is for a new disease, exacerbation or complaints (R3.1); the caller
            decides this from the person's open events.
        letters: The letters of guarantee of that insured event (any status; others are ignored).
        attachment_letters: The person's attachment letters (only used for registry persons).
        attached_clinic_listed: Whether the registry person's attached clinic is still on the
            program's list; when it left (R5.4) the person is served through the console until they
            choose a replacement.

    Returns:
        An ``ApprovalDecision``; ``letter`` is set only when a valid letter authorizes the visit.
    """
    wanted = normalize_services(services)
    wanted_keys = {service_key(s) for s in wanted}
    context: list[Reason] = []
    visit_facts = {"insured_id": insured.id, "clinic_id": clinic_id, "on": on.isoformat()}

    if insured.service_type is ServiceType.REGISTRY:
        if not attached_clinic_listed:
            context.append(
                Reason(
                    "R5.4",
                    "the attached clinic has left the program's list: until the person chooses a replacement of the "
                    "same category, every visit goes through the console",
                    {**visit_facts, "attached_clinic_id": insured.attached_clinic_id},
                )
            )
        elif clinic_id == insured.attached_clinic_id:
            attachment = attachment_effective(attachment_letters, on, clinic_id=clinic_id)
            if attachment.allowed:
                return ApprovalDecision(
                    needs_approval=False,
                    reasons=(
                        Reason(
                            "R6.2",
                            "visit to the attached clinic: book directly with its reception, no approval needed",
                            visit_facts,
                        ),
                        *attachment.reasons,
                    ),
                    channel=BookingChannel.CLINIC_REGISTRY,
                )
            context.extend(attachment.reasons)
        else:
            context.append(
                Reason(
                    "R6.3",
                    "this is not the person's attached clinic: the visit goes through the console as for dispatcher",
                    {**visit_facts, "attached_clinic_id": insured.attached_clinic_id},
                )
            )

    if new_event:
        return ApprovalDecision(
            needs_approval=True,
            reasons=(
                *context,
                Reason(
                    "R3.1",
                    "a new insured event (new disease, exacerbation or complaints) needs the console's approval",
                    visit_facts,
                ),
            ),
        )

    event_letters = sorted(letters, key=lambda letter: (letter.issued_on, letter.number))
    here = [letter for letter in event_letters if letter.clinic_id == clinic_id]
    valid_here = [letter for letter in here if letter.is_valid_on(on)]
    for letter in sorted(valid_here, key=lambda x: x.valid_until, reverse=True):
        letter_keys = {service_key(s) for s in letter.services}
        if wanted_keys <= letter_keys:
            services_text = ", ".join(wanted) if wanted else "a follow-up visit"
            return ApprovalDecision(
                needs_approval=False,
                reasons=(
                    *context,
                    Reason(
                        "R3",
                        f"within letter of guarantee {letter.number} (valid until {letter.valid_until.isoformat()}) "
                        f"for {services_text} at its clinic: no new approval needed",
                        {**_letter_facts(letter), "services": list(wanted)},
                    ),
                ),
                letter=letter,
            )

    found: list[Reason] = []
    if valid_here:
        best = max(valid_here, key=lambda x: len(wanted_keys & {service_key(s) for s in x.services}))
        best_keys = {service_key(s) for s in best.services}
        missing = [s for s in wanted if service_key(s) not in best_keys]
        found.append(
            Reason(
                "R3.2",
                f"{', '.join(missing)} not named in the valid letter of guarantee {best.number}: new approval needed",
                {**_letter_facts(best), "missing_services": missing},
            )
        )
    expired_here = [letter for letter in here if letter.status is LetterStatus.ACTIVE and letter.valid_until < on]
    if expired_here and not valid_here:
        last = max(expired_here, key=lambda x: x.valid_until)
        found.append(
            Reason(
                "R3.3",
                f"letter of guarantee {last.number} expired on {last.valid_until.isoformat()}, treatment not "
                "complete: new approval needed",
                _letter_facts(last),
            )
        )
    if not found:
        finished = [letter for letter in here if letter.status is not LetterStatus.ACTIVE]
        not_yet = [letter for letter in here if letter.status is LetterStatus.ACTIVE and letter.issued_on > on]
        elsewhere = sorted({letter.clinic_id for letter in event_letters if letter.clinic_id != clinic_id})
        if finished:
            last = finished[-1]
            message = f"letter of guarantee {last.number} is {last.status.value} and no longer authorizes visits"
            facts = _letter_facts(last)
        elif not_yet:
            first = not_yet[0]
            message = f"letter of guarantee {first.number} is only issued on {first.issued_on.isoformat()}"
            facts = _letter_facts(first)
        elif elsewhere:
            message = "the letters of guarantee of this event are addressed to other clinics"
            facts = {**visit_facts, "letter_clinic_ids": elsewhere}
        else:
            message = "no letter of guarantee has been sent to this clinic for this insured event"
            facts = visit_facts
        found.append(Reason("R2.5", f"{message}: the console must approve the visit", facts))
    return ApprovalDecision(needs_approval=True, reasons=(*context, *found))
