"""Plain, immutable facts the dispatch rules (R1-R10) decide on: programs, clinics, policies, persons, letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Final, TypeVar

from server.domain.decisions import Reason
from server.domain.errors import InvalidInput

PRICE_CATEGORIES: Final[frozenset[int]] = frozenset({1, 2, 3})
KOPECK: Final = Decimal("0.01")

E = TypeVar("E", bound=StrEnum)


class ServiceType(StrEnum):
    """How an insured person reaches clinics (R1.1): through the console or the attached clinic's registry."""

    DISPATCHER = "dispatcher"
    REGISTRY = "registry"


class Component(StrEnum):
    """A program component (R10.1)."""

    OUTPATIENT = "outpatient"
    DENTAL = "dental"
    AMBULANCE = "ambulance"
    INPATIENT = "inpatient"
    TELEMEDICINE = "telemedicine"


class PaymentMode(StrEnum):
    """How the policy premium is paid; decides how long an attachment letter runs (R7.3)."""

    LUMP_SUM = "lump_sum"
    INSTALLMENTS = "installments"


class LetterStatus(StrEnum):
    """Life of a letter of guarantee: only an ``active`` one can authorize a visit (R3)."""

    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class EventStatus(StrEnum):
    """Life of an insured event; ``open`` means treatment is not complete (R3.3)."""

    OPEN = "open"
    CLOSED = "closed"
    REJECTED = "rejected"


def _enum_value(enum: type[E], value: object, rule: str, what: str) -> E:
    """Coerce a wire string into ``enum``, refusing unknown values with the rule that lists them."""
    try:
        return enum(str(value)) if not isinstance(value, enum) else value
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        reason = Reason(rule, f"{what} must be one of {allowed}, not {value!r}", {"value": str(value)})
        raise InvalidInput(f"unknown {what} {value!r}", reasons=(reason,)) from None


def parse_service_type(value: object) -> ServiceType:
    """Read a service type from the wire.

    Args:
        value: ``"dispatcher"`` or ``"registry"`` (or a ``ServiceType``).

    Returns:
        The member; a person has exactly one of the two types (R1.1).

    Raises:
        InvalidInput: for any other value, citing R1.1.
    """
    return _enum_value(ServiceType, value, "R1.1", "service type")


def parse_component(value: object) -> Component:
    """Read a program component from the wire.

    Args:
        value: One of the R10.1 component names.

    Returns:
        The member.

    Raises:
        InvalidInput: for an unknown component, citing R10.1.
    """
    return _enum_value(Component, value, "R10.1", "program component")


def _set(obj: object, name: str, value: object) -> None:
    """Normalize a field of a frozen dataclass during ``__post_init__``."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    """An insurance program: components, price category, tariffs per service type and clinic list.

    Attributes:
        id: Program id.
        components: Covered components (R10.1).
        price_category: 1, 2 or 3; a registry clinic must be of this category (R5.3).
        tariff_dispatcher: Price per person of the dispatcher type.
        tariff_registry: Price per person of the registry type; ``None`` when not offered (R4.1).
        registry_offered: Whether a person may switch to registry (R4.1).
        clinic_ids: The clinics on the program's list (R2.3).
        telemedicine_allowance_per_year: Consultations per person per year (R11).
        name: Display name, for messages only.
    """

    id: int
    components: frozenset[Component]
    price_category: int
    tariff_dispatcher: Decimal
    tariff_registry: Decimal | None
    registry_offered: bool
    clinic_ids: frozenset[int]
    telemedicine_allowance_per_year: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        _set(self, "components", frozenset(parse_component(c) for c in self.components))
        _set(self, "clinic_ids", frozenset(self.clinic_ids))
        if self.price_category not in PRICE_CATEGORIES:
            reason = Reason("R5.3", "price category must be 1, 2 or 3", {"price_category": self.price_category})
            raise InvalidInput(f"invalid price category {self.price_category}", reasons=(reason,))
        if self.tariff_dispatcher < 0:
            raise InvalidInput(
                "a tariff cannot be negative", details={"tariff_dispatcher": str(self.tariff_dispatcher)}
            )
        if self.registry_offered and self.tariff_registry is None:
            reason = Reason("R4.5", "a program offering registry needs a registry tariff", {"program_id": self.id})
            raise InvalidInput("registry offered without a registry tariff", reasons=(reason,))
        if self.tariff_registry is not None and self.tariff_registry <= self.tariff_dispatcher:
            # R8.1: registry removes the console's filter, so it must cost more.
            reason = Reason(
                "R8.1",
                "the registry tariff must be higher than the dispatcher tariff",
                {"tariff_dispatcher": str(self.tariff_dispatcher), "tariff_registry": str(self.tariff_registry)},
            )
            raise InvalidInput("registry tariff not above dispatcher tariff", reasons=(reason,))
        if self.telemedicine_allowance_per_year < 0:
            raise InvalidInput("the telemedicine allowance cannot be negative")

    @property
    def label(self) -> str:
        """The name for messages, falling back to the id."""
        return self.name or f"program {self.id}"


@dataclass(frozen=True, slots=True)
class ClinicFacts:
    """A clinic (health care facility) as the rules see it.

    Attributes:
        id: Clinic id.
        name: Display name.
        city: City, for routing and lists.
        price_category: 1, 2 or 3 (R5.3).
        has_access_system: The clinic issues passes and needs a photo (R6.4).
        address: Street address, told to the person before a visit (R2.6).
        phone: Reception phone, for registry persons booking directly (R6.2).
    """

    id: int
    name: str
    city: str
    price_category: int
    has_access_system: bool = False
    address: str = ""
    phone: str = ""

    def __post_init__(self) -> None:
        if self.price_category not in PRICE_CATEGORIES:
            reason = Reason("R5.3", "price category must be 1, 2 or 3", {"price_category": self.price_category})
            raise InvalidInput(f"invalid price category {self.price_category}", reasons=(reason,))


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """A VHI policy: period (both ends inclusive), program and payment schedule (R7.3).

    Attributes:
        id: Policy id.
        number: Policy number as printed.
        starts_on: First day of cover.
        ends_on: Last day of cover (inclusive).
        payment_mode: Lump sum or installments.
        installment_due_dates: Due dates of the premium schedule, sorted; empty for a lump sum.
        program_id: The program of the policy.
    """

    id: int
    number: str
    starts_on: date
    ends_on: date
    payment_mode: PaymentMode
    installment_due_dates: tuple[date, ...] = ()
    program_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "payment_mode", _enum_value(PaymentMode, self.payment_mode, "R7.3", "payment mode"))
        _set(self, "installment_due_dates", tuple(sorted(set(self.installment_due_dates))))
        if self.ends_on < self.starts_on:
            raise InvalidInput("a policy cannot end before it starts", details={"policy": self.number})

    def is_valid_on(self, on: date) -> bool:
        """Whether ``on`` falls within the policy period (R10.2)."""
        return self.starts_on <= on <= self.ends_on


@dataclass(frozen=True, slots=True)
class InsuredFacts:
    """An insured person as the rules see them.

    Attributes:
        id: Person id.
        service_type: Exactly one type at any moment (R1.1).
        attached_clinic_id: The one registry clinic (R1.3); ``None`` for dispatcher.
        is_active: Still covered by the policy (not removed from it).
        has_pass_photo: A photo for clinic passes is on file (R6.4).
        city: Home city, for routing (R9).
        policy_id: The person's policy.
    """

    id: int
    service_type: ServiceType
    attached_clinic_id: int | None
    is_active: bool = True
    has_pass_photo: bool = False
    city: str = ""
    policy_id: int | None = None

    def __post_init__(self) -> None:
        service_type = parse_service_type(self.service_type)
        _set(self, "service_type", service_type)
        if service_type is ServiceType.REGISTRY and self.attached_clinic_id is None:
            reason = Reason("R1.3", "registry requires exactly one attached clinic", {"insured_id": self.id})
            raise InvalidInput("a registry person needs an attached clinic", reasons=(reason,))
        if service_type is ServiceType.DISPATCHER and self.attached_clinic_id is not None:
            reason = Reason("R1.1", "a dispatcher person has no attached clinic", {"insured_id": self.id})
            raise InvalidInput("a dispatcher person cannot have an attached clinic", reasons=(reason,))


@dataclass(frozen=True, slots=True)
class LetterFacts:
    """A letter of guarantee: the insurer's promise to one clinic to pay for named services (R2.5).

    Attributes:
        number: ``LG-YYYY-NNNNNN``.
        clinic_id: The only clinic the letter promises payment to.
        services: The agreed services.
        issued_on: Day of issue.
        valid_until: Last day of validity (inclusive), by default one month after issue (R3.3).
        status: Active, closed (treatment complete) or cancelled.
        insured_event_id: The insured event it belongs to.
    """

    number: str
    clinic_id: int
    services: frozenset[str]
    issued_on: date
    valid_until: date
    status: LetterStatus = LetterStatus.ACTIVE
    insured_event_id: int | None = None

    def __post_init__(self) -> None:
        _set(self, "services", frozenset(self.services))
        _set(self, "status", _enum_value(LetterStatus, self.status, "R2.5", "letter status"))
        if self.valid_until < self.issued_on:
            raise InvalidInput("a letter cannot expire before it is issued", details={"letter": self.number})

    def is_valid_on(self, on: date) -> bool:
        """Whether the letter is active and within its validity on ``on`` (R3.3)."""
        return self.status is LetterStatus.ACTIVE and self.issued_on <= on <= self.valid_until


@dataclass(frozen=True, slots=True)
class InsuredEventFacts:
    """An insured event (a case): complaints, component and whether treatment is still going on.

    Attributes:
        id: Event id.
        complaints: What the person contacted about (R2.1).
        component: The program component it falls under (R10.2).
        status: Open (treatment not complete), closed or rejected.
        opened_on: Day it was opened.
    """

    id: int
    complaints: str
    component: Component
    status: EventStatus
    opened_on: date

    def __post_init__(self) -> None:
        _set(self, "component", parse_component(self.component))
        _set(self, "status", _enum_value(EventStatus, self.status, "R3.3", "insured event status"))

    @property
    def treatment_complete(self) -> bool:
        """Whether the event is no longer open (R3.3 asks whether treatment is complete)."""
        return self.status is not EventStatus.OPEN


@dataclass(frozen=True, slots=True)
class AttachmentLetterFacts:
    """An attachment letter already generated for a registry person (R6.1, R7).

    Attributes:
        number: ``AL-YYYY-NNNNNN``.
        clinic_id: The attached clinic.
        generated_on: Day the payment was bundled (R7.1).
        send_on: Day it goes to the clinic (R7.2).
        valid_from: First day of attachment.
        valid_until: Last day of attachment (inclusive, R7.3).
    """

    number: str
    clinic_id: int
    generated_on: date
    send_on: date
    valid_from: date
    valid_until: date

    def is_in_force_on(self, on: date) -> bool:
        """Whether the letter attaches the person on ``on``."""
        return self.valid_from <= on <= self.valid_until


def money(value: Decimal | int | str) -> Decimal:
    """Round an amount to kopecks, the unit every schedule is exact in.

    Args:
        value: An amount in roubles.

    Returns:
        The amount with exactly two decimal places, half a kopeck rounded up.
    """
    return Decimal(value).quantize(KOPECK, rounding=ROUND_HALF_UP)
