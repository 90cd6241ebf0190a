"""Builders of coverage facts for the dispatch rule tests: sensible defaults, override what the test is about."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from server.domain.coverage_types import (
    AttachmentLetterFacts,
    ClinicFacts,
    Component,
    EventStatus,
    InsuredEventFacts,
    InsuredFacts,
    LetterFacts,
    LetterStatus,
    PaymentMode,
    PolicyFacts,
    ProgramFacts,
    ServiceType,
)

POLICY_START = date(2026, 1, 1)
POLICY_END = date(2026, 12, 31)
QUARTERLY = (date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1))

CLINIC_CAT2 = 10
CLINIC_CAT2_OTHER = 11
CLINIC_CAT1 = 20
CLINIC_CAT3 = 30
CLINIC_PASS = 40  # category 2 with an access system (R6.4)
CLINIC_OFF_LIST = 99


def make_program(
    *,
    id: int = 1,
    components: frozenset[Component] = frozenset(Component),
    price_category: int = 2,
    tariff_dispatcher: Decimal = Decimal("30000.00"),
    tariff_registry: Decimal | None = Decimal("42500.50"),
    registry_offered: bool = True,
    clinic_ids: frozenset[int] = frozenset({CLINIC_CAT2, CLINIC_CAT2_OTHER, CLINIC_CAT1, CLINIC_CAT3, CLINIC_PASS}),
) -> ProgramFacts:
    """A category-2 program covering everything, registry offered."""
    return ProgramFacts(
        id=id,
        components=components,
        price_category=price_category,
        tariff_dispatcher=tariff_dispatcher,
        tariff_registry=tariff_registry,
        registry_offered=registry_offered,
        clinic_ids=clinic_ids,
        telemedicine_allowance_per_year=12,
        name="Doctor Standard",
    )


def make_clinic(id: int = CLINIC_CAT2, *, category: int = 2, access: bool = False, city: str = "Moscow") -> ClinicFacts:
    """A clinic; its name carries its id so messages are easy to assert."""
    return ClinicFacts(
        id=id,
        name=f"Clinic {id}",
        city=city,
        price_category=category,
        has_access_system=access,
        address=f"{id} Tverskaya St",
        phone="+7 495 111-11-11",
    )


CLINICS = {
    CLINIC_CAT2: make_clinic(CLINIC_CAT2),
    CLINIC_CAT2_OTHER: make_clinic(CLINIC_CAT2_OTHER),
    CLINIC_CAT1: make_clinic(CLINIC_CAT1, category=1),
    CLINIC_CAT3: make_clinic(CLINIC_CAT3, category=3),
    CLINIC_PASS: make_clinic(CLINIC_PASS, access=True),
    CLINIC_OFF_LIST: make_clinic(CLINIC_OFF_LIST),
}


def make_policy(
    *,
    mode: PaymentMode = PaymentMode.LUMP_SUM,
    due_dates: tuple[date, ...] = (),
    starts_on: date = POLICY_START,
    ends_on: date = POLICY_END,
) -> PolicyFacts:
    """A calendar-year 2026 policy on program 1."""
    return PolicyFacts(
        id=7,
        number="VHI-2026-0007",
        starts_on=starts_on,
        ends_on=ends_on,
        payment_mode=mode,
        installment_due_dates=due_dates,
        program_id=1,
    )


def quarterly_policy() -> PolicyFacts:
    """The 2026 policy paid in four quarterly installments."""
    return make_policy(mode=PaymentMode.INSTALLMENTS, due_dates=QUARTERLY)


def dispatcher(*, id: int = 100, photo: bool = False, active: bool = True, city: str = "Moscow") -> InsuredFacts:
    """A dispatcher person on policy 7."""
    return InsuredFacts(
        id=id,
        service_type=ServiceType.DISPATCHER,
        attached_clinic_id=None,
        is_active=active,
        has_pass_photo=photo,
        city=city,
        policy_id=7,
    )


def registry(clinic_id: int = CLINIC_CAT2, *, id: int = 101) -> InsuredFacts:
    """A registry person attached to ``clinic_id``, on policy 7."""
    return InsuredFacts(
        id=id,
        service_type=ServiceType.REGISTRY,
        attached_clinic_id=clinic_id,
        city="Moscow",
        policy_id=7,
    )


def make_letter(
    *,
    number: str = "LG-2026-000123",
    clinic_id: int = CLINIC_CAT2,
    services: frozenset[str] = frozenset({"therapist consultation", "blood test"}),
    issued_on: date = date(2026, 3, 2),
    valid_until: date = date(2026, 4, 2),
    status: LetterStatus = LetterStatus.ACTIVE,
    event_id: int = 500,
) -> LetterFacts:
    """An active letter of guarantee to clinic 10, valid March 2 - April 2, 2026."""
    return LetterFacts(
        number=number,
        clinic_id=clinic_id,
        services=services,
        issued_on=issued_on,
        valid_until=valid_until,
        status=status,
        insured_event_id=event_id,
    )


def make_event(
    *, id: int = 500, status: EventStatus = EventStatus.OPEN, component: Component = Component.OUTPATIENT
) -> InsuredEventFacts:
    """An open outpatient insured event."""
    return InsuredEventFacts(
        id=id, complaints="sore throat, fever", component=component, status=status, opened_on=date(2026, 3, 1)
    )


def attachment(
    *,
    number: str = "AL-2026-000001",
    clinic_id: int = CLINIC_CAT2,
    generated_on: date = date(2026, 1, 12),
    send_on: date = date(2026, 1, 13),
    valid_from: date = date(2026, 1, 13),
    valid_until: date = date(2026, 4, 1),
) -> AttachmentLetterFacts:
    """An attachment letter to clinic 10 running until the April installment."""
    return AttachmentLetterFacts(
        number=number,
        clinic_id=clinic_id,
        generated_on=generated_on,
        send_on=send_on,
        valid_from=valid_from,
        valid_until=valid_until,
    )
