"""Telemedicine consultations: state machine, completion, allowance, wait and write-back to coverage (R11)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from server.domain.consultation_coverage import PolicyYear
from server.domain.decisions import Decision, Reason
from server.domain.errors import Conflict, InvalidInput
from server.domain.icd10 import validate_icd10
from server.domain.record import require_meaningful
from server.domain.roster import get_specialty, require_utc

MAX_NOTES_CHARS: Final = 10_000
MAX_COMPLAINTS_CHARS: Final = 2_000
MAX_REFERRAL_SERVICES: Final = 20
MAX_REFERRAL_SERVICE_CHARS: Final = 200
MAX_CANCEL_REASON_CHARS: Final = 200
DEFAULT_CONSULTATION_MINUTES: Final = 15.0
MATCH_WINDOW: Final = timedelta(days=30)
MIN_COMPLAINT_OVERLAP: Final = 0.5

SERVICE_TYPE_DISPATCHER: Final = "dispatcher"
SERVICE_TYPE_REGISTRY: Final = "registry"

ERR_INVALID_TRANSITION: Final = "invalid_transition"
ERR_NOT_OFFERED_TO_YOU: Final = "not_offered_to_you"
ERR_NOT_YOUR_CONSULTATION: Final = "not_your_consultation"
ERR_OFFER_EXPIRED: Final = "offer_expired"
ERR_OFFER_NOT_EXPIRED: Final = "offer_not_expired"
ERR_DOCTOR_SKIPPED: Final = "doctor_skipped"


class Status(StrEnum):
    """Where a consultation is in its life."""

    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    """How patient and doctor talk (R11.1)."""

    TEXT = "text"
    AUDIO = "audio"
    VIDEO = "video"


class Outcome(StrEnum):
    """What the doctor concluded."""

    ADVICE = "advice"
    REFERRAL = "referral"
    EMERGENCY = "emergency"


class CancelledBy(StrEnum):
    """Who ended a consultation before completion."""

    PATIENT = "patient"
    SYSTEM = "system"


class RouteKind(StrEnum):
    """Where a referral sends the insured person next (R11.3)."""

    DISPATCHER_REQUEST = "dispatcher_request"
    ATTACHED_CLINIC = "attached_clinic"


OPEN_STATUSES: Final[frozenset[Status]] = frozenset({Status.QUEUED, Status.OFFERED, Status.ACTIVE})
WAITING_STATUSES: Final[frozenset[Status]] = frozenset({Status.QUEUED, Status.OFFERED})
TERMINAL_STATUSES: Final[frozenset[Status]] = frozenset({Status.COMPLETED, Status.CANCELLED})

# Every legal move; active -> queued is the handover when a doctor's shift ends.
TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    Status.QUEUED: frozenset({Status.OFFERED, Status.CANCELLED}),
    Status.OFFERED: frozenset({Status.ACTIVE, Status.QUEUED, Status.CANCELLED}),
    Status.ACTIVE: frozenset({Status.COMPLETED, Status.QUEUED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ConsultationState:
    """The part of a consultation that the state machine reads and changes.

    Attributes:
        id: The consultation id.
        status: The current status.
        doctor_id: The doctor holding it (``active``; kept on ``completed``/``cancelled``).
        offered_to_id: The doctor it is offered to (``offered`` only).
        offer_expires_at: When the offer lapses (``offered`` only).
        skipped_doctor_ids: Doctors who declined, let an offer lapse or handed it over; never offered it again.
    """

    id: int
    status: Status
    doctor_id: int | None = None
    offered_to_id: int | None = None
    offer_expires_at: datetime | None = None
    skipped_doctor_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        offered = self.status is Status.OFFERED
        if offered != (self.offered_to_id is not None) or offered != (self.offer_expires_at is not None):
            raise ValueError("offered_to_id and offer_expires_at are set exactly when the status is offered")
        if self.status is Status.ACTIVE and self.doctor_id is None:
            raise ValueError("an active consultation has a doctor")


@dataclass(frozen=True, slots=True)
class ConsultationRequest:
    """A patient's validated request for a consultation."""

    complaints: str
    specialty: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class Completion:
    """What the doctor records when completing a consultation (written back to coverage, R11.3)."""

    notes: str
    icd10_code: str
    outcome: Outcome
    referral_specialty: str | None = None
    referral_services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """The queue place and estimated wait shown to a waiting patient.

    ``minutes`` is ``None`` when nobody of the specialty is on duty: no honest estimate exists
    (and the roster alarm, R11.2, is already raised).
    """

    position: int
    minutes: int | None


@dataclass(frozen=True, slots=True)
class ReferralRoute:
    """Where a referral goes next, and why (R11.3).

    Attributes:
        kind: ``dispatcher_request`` (the console approves, R2/R3) or ``attached_clinic`` (R6.2).
        clinic_id: The attached clinic for ``attached_clinic``; ``None`` otherwise.
        reasons: The rules that decided it.
    """

    kind: RouteKind
    clinic_id: int | None
    reasons: tuple[Reason, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids cited, in order."""
        return tuple(r.rule for r in self.reasons)


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """An open insured event of the person, as far as matching a consultation to it needs (R3.1)."""

    id: int
    complaints: str
    opened_at: datetime
    specialty: str | None = None


# ----------------------------------------------------------------------------- parsing


def parse_channel(value: str) -> Channel:
    """The channel named on the wire.

    Raises:
        InvalidInput: ``invalid_channel`` for anything but text, audio or video.
    """
    try:
        return Channel(value)
    except ValueError:
        raise InvalidInput(
            "channel must be one of text, audio, video", code="invalid_channel", details={"channel": value}
        ) from None


def parse_outcome(value: str) -> Outcome:
    """The outcome named on the wire.

    Raises:
        InvalidInput: ``invalid_outcome`` for anything but advice, referral or emergency.
    """
    try:
        return Outcome(value)
    except ValueError:
        raise InvalidInput(
            "outcome must be one of advice, referral, emergency", code="invalid_outcome", details={"outcome": value}
        ) from None


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in text)


def _checked_text(value: str, field: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty", code=f"{field}_required")
    if len(text) > limit:
        raise InvalidInput(
            f"{field} may be at most {limit} characters", code=f"{field}_too_long", details={"limit": limit}
        )
    if _has_control_chars(text):
        raise InvalidInput(f"{field} contains control characters", code=f"invalid_{field}")
    return text


def validate_request(complaints: str, specialty: str, channel: str) -> ConsultationRequest:
    """Check a patient's request before it is queued; the complaints open or match an insured event (R2.1).

    Args:
        complaints: What the patient complains of.
        specialty: One of the telemedicine specialties (R11.1).
        channel: ``text``, ``audio`` or ``video``.

    Returns:
        The request with complaints stripped.

    Raises:
        InvalidInput: empty or over-long complaints, unknown specialty or channel.
    """
    text = _checked_text(complaints, "complaints", MAX_COMPLAINTS_CHARS)
    return ConsultationRequest(text, get_specialty(specialty).code, parse_channel(channel))


# ----------------------------------------------------------------------------- state machine


def can_transition(current: Status, target: Status) -> bool:
    """Whether the state machine allows ``current -> target``."""
    return target in TRANSITIONS[current]


def _refuse(state: ConsultationState, verb: str, allowed: Iterable[Status]) -> Conflict:
    wanted = " or ".join(sorted(s.value for s in allowed))
    article = "an" if wanted[0] in "aeiou" else "a"
    return Conflict(
        f"cannot {verb} consultation {state.id}: it is {state.status.value}, "
        f"and only {article} {wanted} consultation can be {_PAST[verb]}",
        code=ERR_INVALID_TRANSITION,
        details={"consultation_id": state.id, "status": state.status.value, "action": verb},
    )


_PAST: Final = {
    "offer": "offered",
    "accept": "accepted",
    "decline": "declined",
    "expire the offer of": "expired",
    "hand over": "handed over",
    "complete": "completed",
    "cancel": "cancelled",
}


def _require(state: ConsultationState, verb: str, *allowed: Status) -> None:
    if state.status not in allowed:
        raise _refuse(state, verb, allowed)


def offer(state: ConsultationState, doctor_id: int, now: datetime, expires_at: datetime) -> ConsultationState:
    """Offer a queued consultation to one doctor until ``expires_at``.

    Raises:
        Conflict: not queued (``invalid_transition``), or the doctor was skipped for it (``doctor_skipped``).
        ValueError: the deadline is not after ``now`` (see ``assignment.offer_deadline``).
    """
    require_utc(now)
    require_utc(expires_at, "expires_at")
    _require(state, "offer", Status.QUEUED)
    if doctor_id in state.skipped_doctor_ids:
        raise Conflict(
            f"doctor {doctor_id} already passed on consultation {state.id}",
            code=ERR_DOCTOR_SKIPPED,
            details={"consultation_id": state.id, "doctor_id": doctor_id},
        )
    if expires_at <= now:
        raise ValueError("an offer deadline must be in the future")
    return replace(state, status=Status.OFFERED, offered_to_id=doctor_id, offer_expires_at=expires_at)


def offer_expired(state: ConsultationState, now: datetime) -> bool:
    """Whether an offer has lapsed at ``now`` (the deadline itself is already too late)."""
    return state.status is Status.OFFERED and state.offer_expires_at is not None and now >= state.offer_expires_at


def _require_offered_to(state: ConsultationState, doctor_id: int) -> None:
    if state.offered_to_id != doctor_id:
        raise Conflict(
            f"consultation {state.id} is not offered to you",
            code=ERR_NOT_OFFERED_TO_YOU,
            details={"consultation_id": state.id},
        )


def _require_doctor(state: ConsultationState, doctor_id: int) -> None:
    if state.doctor_id != doctor_id:
        raise Conflict(
            f"consultation {state.id} is not yours",
            code=ERR_NOT_YOUR_CONSULTATION,
            details={"consultation_id": state.id},
        )


def accept(state: ConsultationState, doctor_id: int, now: datetime) -> ConsultationState:
    """The offered doctor takes the consultation: offered -> active.

    Raises:
        Conflict: not offered, offered to someone else, or the offer lapsed (``offer_expired``).
    """
    require_utc(now)
    _require(state, "accept", Status.OFFERED)
    _require_offered_to(state, doctor_id)
    if offer_expired(state, now):
        raise Conflict(
            f"the offer of consultation {state.id} has expired",
            code=ERR_OFFER_EXPIRED,
            details={"consultation_id": state.id},
        )
    return replace(state, status=Status.ACTIVE, doctor_id=doctor_id, offered_to_id=None, offer_expires_at=None)


def _back_to_queue(state: ConsultationState, skipped: int) -> ConsultationState:
    return replace(
        state,
        status=Status.QUEUED,
        doctor_id=None,
        offered_to_id=None,
        offer_expires_at=None,
        skipped_doctor_ids=state.skipped_doctor_ids | {skipped},
    )


def decline(state: ConsultationState, doctor_id: int) -> ConsultationState:
    """The offered doctor passes: back to the queue, and that doctor is skipped for it.

    Raises:
        Conflict: not offered, or offered to someone else.
    """
    _require(state, "decline", Status.OFFERED)
    _require_offered_to(state, doctor_id)
    return _back_to_queue(state, doctor_id)


def expire_offer(state: ConsultationState, now: datetime) -> ConsultationState:
    """A lapsed offer goes back to the queue; the silent doctor is skipped for it.

    Raises:
        Conflict: not offered, or the offer has not lapsed yet (``offer_not_expired``).
    """
    require_utc(now)
    _require(state, "expire the offer of", Status.OFFERED)
    if not offer_expired(state, now):
        raise Conflict(
            f"the offer of consultation {state.id} is still open",
            code=ERR_OFFER_NOT_EXPIRED,
            details={"consultation_id": state.id},
        )
    assert state.offered_to_id is not None  # guaranteed by ConsultationState's invariant
    return _back_to_queue(state, state.offered_to_id)


def hand_over(state: ConsultationState, doctor_id: int) -> ConsultationState:
    """The doctor's shift ends: the active consultation goes back to the queue for another doctor.

    The chat stays with the consultation; the leaving doctor is skipped so it is not offered back.

    Raises:
        Conflict: not active, or held by another doctor.
    """
    _require(state, "hand over", Status.ACTIVE)
    _require_doctor(state, doctor_id)
    return _back_to_queue(state, doctor_id)


def complete(state: ConsultationState, doctor_id: int) -> ConsultationState:
    """The doctor closes the consultation: active -> completed (validate the Completion first).

    Raises:
        Conflict: not active (e.g. still queued), or held by another doctor.
    """
    _require(state, "complete", Status.ACTIVE)
    _require_doctor(state, doctor_id)
    return replace(state, status=Status.COMPLETED)


def cancel(state: ConsultationState) -> ConsultationState:
    """End a consultation before completion, by the patient or the system (the caller records which, CancelledBy).

    Raises:
        Conflict: already completed or cancelled.
    """
    _require(state, "cancel", Status.QUEUED, Status.OFFERED, Status.ACTIVE)
    return replace(state, status=Status.CANCELLED, offered_to_id=None, offer_expires_at=None)


def validate_cancel_reason(reason: str) -> str:
    """A short free-text reason for cancelling, stripped.

    Raises:
        InvalidInput: empty, over 200 characters, or with control characters.
    """
    return _checked_text(reason, "cancel_reason", MAX_CANCEL_REASON_CHARS)


# ----------------------------------------------------------------------------- completion

_SPECIALTY_CODE: Final = re.compile(r"[a-z][a-z_]{1,39}")


def _meaningful_notes(notes: str) -> str:
    """Notes with content (R11.9: the record is what stays); "." is not notes."""
    return require_meaningful(notes, "notes", MAX_NOTES_CHARS)


def validate_completion(completion: Completion) -> Completion:
    """Check what the doctor records, because it feeds coverage and the dispatch rules (R11.3).

    A referral names the specialty the person is referred to (any in-person specialty, not only
    telemedicine ones) and optionally the services (tests) requested; advice and emergency carry
    no referral fields. The diagnosis must be a WHO ICD-10 category or subcategory.

    Returns:
        The completion with notes and services stripped and the ICD-10 code in canonical form.

    Raises:
        InvalidInput: ``notes_required``, ``notes_not_meaningful``, ``notes_too_long``, ``invalid_icd10``,
            ``referral_specialty_required``, ``invalid_referral_specialty``, ``invalid_referral_services``,
            ``referral_fields_not_allowed``.
    """
    notes = _meaningful_notes(completion.notes)
    code = validate_icd10(completion.icd10_code).code
    outcome = parse_outcome(completion.outcome)
    if outcome is not Outcome.REFERRAL:
        if completion.referral_specialty is not None or completion.referral_services:
            raise InvalidInput(
                f"an outcome of {outcome.value} carries no referral specialty or services",
                code="referral_fields_not_allowed",
            )
        return Completion(notes, code, outcome)
    referral = (completion.referral_specialty or "").strip()
    if not referral:
        raise InvalidInput("a referral names the specialty referred to", code="referral_specialty_required")
    if _SPECIALTY_CODE.fullmatch(referral) is None:
        raise InvalidInput(
            "a referral specialty is a lower-case code such as 'cardiology'",
            code="invalid_referral_specialty",
            details={"referral_specialty": referral},
        )
    services: list[str] = []
    for item in completion.referral_services:
        service = item.strip()
        if not service or len(service) > MAX_REFERRAL_SERVICE_CHARS or _has_control_chars(service):
            raise InvalidInput(
                f"each referred service is 1-{MAX_REFERRAL_SERVICE_CHARS} characters of text",
                code="invalid_referral_services",
            )
        if service not in services:
            services.append(service)
    if len(services) > MAX_REFERRAL_SERVICES:
        raise InvalidInput(f"at most {MAX_REFERRAL_SERVICES} services per referral", code="invalid_referral_services")
    return Completion(notes, code, outcome, referral, tuple(services))


# ----------------------------------------------------------------------------- allowance and queue


def check_allowance(
    used_this_year: int,
    allowance_per_year: int | None,
    *,
    year: int | None = None,
    period: PolicyYear | None = None,
    pending: int = 0,
) -> Decision:
    """Whether one more consultation fits the telemedicine allowance of the policy year (R10.2, R11.3, R11.4).

    Each consultation is counted as a telemedicine service used (R11.3); the program's component
    covers only its yearly allowance (R10.2), and "yearly" means per policy year (R11.4).

    Args:
        used_this_year: Telemedicine services already used in the period counted.
        allowance_per_year: Consultations per year the program covers; ``None`` for no limit.
        year: A calendar year label (callers that have not moved to ``period`` yet).
        period: The policy year counted (R11.4); its dates go into the message and facts.
        pending: The person's consultations still open, which will use the allowance too.

    Returns:
        An explained decision; refused as "telemedicine allowance of 12 consultations for 2026 used up".
    """
    if used_this_year < 0 or pending < 0 or (allowance_per_year is not None and allowance_per_year < 0):
        raise ValueError("counts and the allowance are never negative")
    if period is not None:
        year_text = f"the policy year {period.label}"
    elif year is not None:
        year_text = str(year)
    else:
        raise ValueError("say which year is counted")
    facts: dict[str, Any] = {
        "year": year,
        "policy_year": period.as_dict() if period is not None else None,
        "used": used_this_year,
        "pending": pending,
        "allowance": allowance_per_year,
    }
    if allowance_per_year is None:
        return Decision.allow(Reason("R11.3", f"telemedicine consultations are not limited in {year_text}", facts))
    taken = used_this_year + pending
    if taken >= allowance_per_year:
        return Decision.deny(
            Reason(
                "R10.2",
                f"telemedicine allowance of {allowance_per_year} consultations for {year_text} used up",
                facts,
            ),
            Reason("R11.3", f"{used_this_year} used and {pending} open of {allowance_per_year}", facts),
        )
    return Decision.allow(
        Reason(
            "R11.3",
            f"{allowance_per_year - taken} of {allowance_per_year} telemedicine consultations left for {year_text}",
            facts,
        )
    )


def estimate_wait(position: int, doctors_on_duty: int, avg_minutes: float | None) -> WaitEstimate:
    """The wait shown to a patient: those ahead, shared among the doctors on duty, times the mean length.

    The model is deliberately simple: ``ceil((position - 1) * avg_minutes / doctors_on_duty)``.
    Position 1 is next in line (0 minutes); with nobody on duty there is no estimate.

    Args:
        position: 1-based place in the specialty's queue.
        doctors_on_duty: Doctors of the specialty on duty now.
        avg_minutes: Mean consultation length; ``None`` (no history yet) uses 15 minutes.

    Raises:
        ValueError: position below 1, negative doctors, or a non-positive mean.
    """
    if position < 1 or doctors_on_duty < 0:
        raise ValueError("position starts at 1 and doctors are never negative")
    mean = DEFAULT_CONSULTATION_MINUTES if avg_minutes is None else avg_minutes
    if not mean > 0:
        raise ValueError("the mean consultation length is positive")
    if doctors_on_duty == 0:
        return WaitEstimate(position, None)
    return WaitEstimate(position, math.ceil((position - 1) * mean / doctors_on_duty))


# ----------------------------------------------------------------------------- write-back (R11.3)


def referral_route(
    service_type: str,
    attached_clinic_id: int | None,
    *,
    attachment_effective: bool,
    referral_specialty: str | None = None,
    attachment_reasons: Sequence[Reason] = (),
) -> ReferralRoute:
    """Where a referral from a consultation sends the person, so the dispatch rules take over (R11.3).

    A ``dispatcher`` person's referral opens a request to the console, which approves it (R2,
    R3.2: services not in any letter of guarantee). A ``registry`` person books directly with the
    attached clinic (R6.2) - but only while the attachment is in force; an unpaid installment
    ends it, and the person then has dispatcher access (R7.4). A registry person without an
    attached clinic (which R1.3 forbids) is sent to the console rather than nowhere.

    Args:
        service_type: ``"dispatcher"`` or ``"registry"`` (a StrEnum with these values works too).
        attached_clinic_id: The person's attached clinic, if any.
        attachment_effective: Whether the attachment letter is in force today (R7.3, R7.4).
        referral_specialty: The specialty referred to, for the messages and facts.
        attachment_reasons: Why the attachment is not in force (``attachment_effective``'s reasons):
            the letter is still on its way to the clinic (R7.2), there is no letter at all (R6.1), the
            clinic left the program (R5.4) or an installment is unpaid (R7.4). The referral says which.

    Raises:
        InvalidInput: ``invalid_service_type`` for any other service type.
    """
    target = f" to {referral_specialty}" if referral_specialty else ""
    facts: dict[str, Any] = {
        "service_type": str(service_type),
        "attached_clinic_id": attached_clinic_id,
        "attachment_effective": attachment_effective,
        "referral_specialty": referral_specialty,
    }
    approval = (
        Reason("R11.3", f"the referral{target} opens the dispatch console's approval path", facts),
        Reason("R3.2", "the referred services are in no letter of guarantee yet, so the console approves them (R2)"),
    )
    if service_type == SERVICE_TYPE_DISPATCHER:
        return ReferralRoute(RouteKind.DISPATCHER_REQUEST, None, approval)
    if service_type != SERVICE_TYPE_REGISTRY:
        raise InvalidInput(
            f"unknown service type {service_type!r}",
            code="invalid_service_type",
            details={"service_type": str(service_type)},
        )
    if attached_clinic_id is None:
        return ReferralRoute(
            RouteKind.DISPATCHER_REQUEST,
            None,
            (Reason("R1.3", "the registry person has no attached clinic on record", facts), *approval),
        )
    if not attachment_effective and attachment_reasons:
        return ReferralRoute(
            RouteKind.DISPATCHER_REQUEST,
            None,
            (
                *(
                    Reason(r.rule, f"{r.message} (so the person has dispatcher access)", {**facts, **r.facts})
                    for r in attachment_reasons
                ),
                *approval,
            ),
        )
    if not attachment_effective:
        return ReferralRoute(
            RouteKind.DISPATCHER_REQUEST,
            None,
            (
                Reason(
                    "R7.4",
                    "the attachment to the clinic is not in force (an installment is unpaid), "
                    "so the person has dispatcher access until it is paid",
                    facts,
                ),
                *approval,
            ),
        )
    return ReferralRoute(
        RouteKind.ATTACHED_CLINIC,
        attached_clinic_id,
        (
            Reason("R11.3", f"the referral{target} points the registry person to the attached clinic", facts),
            Reason("R6.2", "book directly with the attached clinic's reception; no approval is needed there", facts),
        ),
    )


# Words that carry no complaint; tokens shorter than 3 characters are dropped as well.
_STOPWORDS: Final = frozenset(
    {
        "and", "the", "with", "for", "from", "since", "have", "has", "had", "was", "are", "not", "very",
        "also", "after", "days", "day", "week", "weeks", "some", "feel", "feeling", "there",
        "для", "при", "уже", "очень", "есть", "как", "что", "это", "был", "была", "было", "были",
        "дня", "дней", "день", "неделю", "недели", "после", "меня", "нет", "так", "тоже", "еще", "ещё",
    }
)  # fmt: skip
_WORD: Final = re.compile(r"\w+")
_STEM_CHARS: Final = 5


def complaint_stems(complaints: str) -> frozenset[str]:
    """The complaint's words reduced to comparable stems.

    Case- and whitespace-insensitive: words are case-folded, stop words and words under 3
    characters dropped, and each cut to its first 5 characters - a crude stem that makes Russian
    and English inflections meet ("температура"/"температурой", "headache"/"headaches").
    """
    return frozenset(
        word[:_STEM_CHARS]
        for word in _WORD.findall(complaints.casefold())
        if len(word) >= 3 and word not in _STOPWORDS and not word.isdigit()
    )


def complaint_overlap(first: str, second: str) -> float:
    """How alike two complaints are: shared stems over the smaller set's size (0.0 to 1.0)."""
    a, b = complaint_stems(first), complaint_stems(second)
    if not a or not b:
        return 1.0 if " ".join(first.casefold().split()) == " ".join(second.casefold().split()) else 0.0
    return len(a & b) / min(len(a), len(b))


def match_open_event(
    open_events: Iterable[OpenEvent],
    complaints: str,
    specialty: str | None,
    now: datetime,
    *,
    window: timedelta = MATCH_WINDOW,
    min_overlap: float = MIN_COMPLAINT_OVERLAP,
) -> OpenEvent | None:
    """The open insured event a consultation belongs to, or ``None`` for a new one (R3.1, R11.3).

    An event matches when it was opened within ``window`` before ``now`` and its complaints share
    at least ``min_overlap`` of their stems with the new ones (see ``complaint_overlap``). The best
    overlap wins; ties go to an event of the same specialty, then the newest, then the higher id.

    Args:
        open_events: The person's open insured events.
        complaints: The consultation's complaints.
        specialty: The consultation's specialty (only breaks ties: one complaint may see
            several specialists within one event).
        now: The instant, aware UTC.
        window: How old an event may be.
        min_overlap: The least overlap that counts as "the same complaints".
    """
    require_utc(now)
    best: tuple[float, bool, datetime, int] | None = None
    chosen: OpenEvent | None = None
    for event in open_events:
        if event.opened_at < now - window:
            continue
        score = complaint_overlap(complaints, event.complaints)
        if score < min_overlap:
            continue
        key = (score, event.specialty is not None and event.specialty == specialty, event.opened_at, event.id)
        if best is None or key > best:
            best, chosen = key, event
    return chosen


def insured_event_reason(matched: OpenEvent | None) -> Reason:
    """Why the consultation joins an open insured event or opens a new one, for the audit trail (R3.1, R11.3)."""
    if matched is None:
        return Reason("R3.1", "new complaints: the consultation opens a new insured event")
    return Reason(
        "R11.3",
        f"the same complaints as open insured event {matched.id}: the consultation belongs to it",
        {"insured_event_id": matched.id},
    )
