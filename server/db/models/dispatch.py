"""Dispatch records: insured events, requests to the console, letters of guarantee, visits,
program changes, payments, attachment letters, pass photos and requests, and the decision audit trail."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime
from server.db.models.coverage import Money


class InsuredEvent(Base):
    """One episode of care the insurer approves (a "case"), with its complaints (R2.1, R3.1)."""

    __tablename__ = "insured_events"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed', 'rejected')", name="status"),
        Index("ix_insured_events_person_status", "insured_person_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"))
    component: Mapped[str] = mapped_column(String(20))
    complaints: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    source: Mapped[str] = mapped_column(String(20))
    covered: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opened_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))


class DispatchRequest(Base):
    """An item in the dispatcher's queue: from an insured person, a consultation referral, or a call-back request."""

    __tablename__ = "dispatch_requests"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'in_progress', 'done', 'cancelled')", name="status"),
        CheckConstraint("source IN ('insured', 'consultation_referral', 'dispatcher', 'call_back')", name="source"),
        Index("ix_dispatch_requests_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    insured_event_id: Mapped[int | None] = mapped_column(ForeignKey("insured_events.id"))
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id"))
    source: Mapped[str] = mapped_column(String(24))
    complaints: Mapped[str] = mapped_column(Text)
    requested_specialty: Mapped[str | None] = mapped_column(String(40))
    requested_services: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    assigned_dispatcher_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LetterOfGuarantee(Base):
    """The insurer's promise to a clinic to pay for named services (R2.5); valid one month (R3.3)."""

    __tablename__ = "letters_of_guarantee"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'closed', 'cancelled')", name="status"),
        Index("ix_letters_person_status", "insured_person_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    insured_event_id: Mapped[int] = mapped_column(ForeignKey("insured_events.id"), index=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    services: Mapped[list[str]] = mapped_column(JSON)
    issued_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    sent_to_clinic_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Visit(Base):
    """Visit details told to the insured person (R2.6): clinic, doctor, time, services, letter."""

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_event_id: Mapped[int] = mapped_column(ForeignKey("insured_events.id"), index=True)
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters_of_guarantee.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    doctor_name: Mapped[str] = mapped_column(String(300))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    services: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))


class ProgramChangeApplication(Base):
    """The policyholder's application to change dispatcher -> registry naming one clinic (R4.2)."""

    __tablename__ = "program_change_applications"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'agreement_issued', 'effective', 'rejected', 'withdrawn')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    status: Mapped[str] = mapped_column(String(20))
    additional_premium: Mapped[Decimal] = mapped_column(Money)
    # At most one application in flight per person: a concurrent double submission hits this.
    pending_key: Mapped[int | None] = mapped_column(BigId, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # R4.2: for a corporate policy the employer's representative (role hr) approves and signs.
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdditionalAgreement(Base):
    """The additional agreement to the policy (R4.3), whose schedule sets the extra premium (R4.4)."""

    __tablename__ = "additional_agreements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("program_change_applications.id"), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    premium: Mapped[Decimal] = mapped_column(Money)
    agreed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Payment(Base):
    """Money received and bundled (matched) with the policy (R4.6, R7.1)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), index=True)
    scheduled_payment_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_payments.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    bundled_on: Mapped[date] = mapped_column(Date)
    bundled_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # R7.6: the schedule the payment names; with no scheduled payment it waits for an admin, and why.
    reference: Mapped[str | None] = mapped_column(String(80))
    match_reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class AttachmentLetter(Base):
    """The letter that attaches a registry person to their clinic (R6.1, R7.1-R7.3)."""

    __tablename__ = "attachment_letters"
    # One letter per person, payment and clinic: a replacement clinic (R5.4) may get one for the same payment.
    __table_args__ = (UniqueConstraint("insured_person_id", "payment_id", "clinic_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    generated_on: Mapped[date] = mapped_column(Date)
    send_on: Mapped[date] = mapped_column(Date)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)


class PassPhoto(Base):
    """A person's photo for clinic passes (R6.4): a JPEG re-encoded without metadata.

    Kept in the database so that every server process can send it. A photo belongs to the one
    person whose ``pass_photo_id`` or whose pass requests' ``photo_id`` name it.
    """

    __tablename__ = "pass_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    mime: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PassRequest(Base):
    """A request for a clinic pass with the person's photo (R6.4).

    The photo is ``photo_id``; requests made before migration 0003 name a file (``photo_path``) instead.
    """

    __tablename__ = "pass_requests"
    __table_args__ = (CheckConstraint("photo_id IS NOT NULL OR photo_path IS NOT NULL", name="photo"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("pass_photos.id"), index=True)
    photo_path: Mapped[str | None] = mapped_column(String(400))
    photo_mime: Mapped[str] = mapped_column(String(40))
    photo_width: Mapped[int] = mapped_column(Integer)
    photo_height: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CoverageDecisionRecord(Base):
    """Audit trail: every decision that changes coverage, with who, when and why (rule reasons)."""

    __tablename__ = "coverage_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int | None] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    subject: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceUsed(Base):
    """A service used under a program component, e.g. a telemedicine consultation (R11.3)."""

    __tablename__ = "services_used"
    __table_args__ = (Index("ix_services_used_person_component_on", "insured_person_id", "component", "used_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"))
    insured_event_id: Mapped[int | None] = mapped_column(ForeignKey("insured_events.id"))
    component: Mapped[str] = mapped_column(String(20))
    service: Mapped[str] = mapped_column(String(80))
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id"), unique=True)
    used_on: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
