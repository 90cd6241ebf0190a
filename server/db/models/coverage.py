"""Coverage records: policyholders, programs, clinics, policies, insured persons, dispatch points."""

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
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db.base import Base, BigId, UTCDateTime
from server.domain.insured_number import new_insured_number

Money = Numeric(14, 2)


class Policyholder(Base):
    """Who buys and pays the policy: a company (corporate) or a person (individual)."""

    __tablename__ = "policyholders"
    __table_args__ = (CheckConstraint("kind IN ('corporate', 'individual')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(300))
    tax_id: Mapped[str | None] = mapped_column(String(20))
    account_manager: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Program(Base):
    """An insurance program: components (R10.1), price category (R5.3), tariffs per service type (R4.5)."""

    __tablename__ = "programs"
    __table_args__ = (CheckConstraint("price_category BETWEEN 1 AND 3", name="price_category"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    components: Mapped[list[str]] = mapped_column(JSON)
    price_category: Mapped[int] = mapped_column(Integer)
    tariff_dispatcher: Mapped[Decimal] = mapped_column(Money)
    tariff_registry: Mapped[Decimal | None] = mapped_column(Money)
    registry_offered: Mapped[bool] = mapped_column(Boolean)
    telemedicine_allowance_per_year: Mapped[int] = mapped_column(Integer)

    clinics: Mapped[list[Clinic]] = relationship(secondary="program_clinics", lazy="raise")


class Clinic(Base):
    """A health care facility listed in programs; ``has_access_system`` marks R6.4 pass clinics."""

    __tablename__ = "clinics"
    __table_args__ = (CheckConstraint("price_category BETWEEN 1 AND 3", name="price_category"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(400))
    phone: Mapped[str] = mapped_column(String(40))
    price_category: Mapped[int] = mapped_column(Integer)
    has_access_system: Mapped[bool] = mapped_column(Boolean, default=False)


class ProgramClinic(Base):
    """A clinic on a program's list (R2.3)."""

    __tablename__ = "program_clinics"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id", ondelete="CASCADE"), primary_key=True)


class Policy(Base):
    """A VHI policy: number, period, program, payment mode and its schedule (R7.3)."""

    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint("payment_mode IN ('lump_sum', 'installments')", name="payment_mode"),
        CheckConstraint("ends_on >= starts_on", name="period"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    payment_mode: Mapped[str] = mapped_column(String(16))
    premium: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    policyholder: Mapped[Policyholder] = relationship(lazy="raise")
    program: Mapped[Program] = relationship(lazy="raise")


class ScheduledPayment(Base):
    """One due payment of a policy's schedule, or of an additional agreement's (R4.4, R7.3)."""

    __tablename__ = "scheduled_payments"
    __table_args__ = (CheckConstraint("purpose IN ('premium', 'additional_premium')", name="purpose"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"), index=True)
    due_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    purpose: Mapped[str] = mapped_column(String(20))
    additional_agreement_id: Mapped[int | None] = mapped_column(
        ForeignKey("additional_agreements.id", ondelete="CASCADE"), index=True
    )


class InsuredPerson(Base):
    """A person covered by a policy, with their service type (R1) and attached clinic (R1.3)."""

    __tablename__ = "insured_persons"
    __table_args__ = (
        CheckConstraint("service_type IN ('dispatcher', 'registry')", name="service_type"),
        Index("ix_insured_persons_policy_birth", "policy_id", "birth_date"),
        Index("uq_insured_persons_insured_number", "insured_number", unique=True),
        # The dispatcher's search by phone or birth date, a page in (name, id) order (migration 0011).
        Index("ix_insured_persons_phone", "phone", "full_name", "id"),
        Index("ix_insured_persons_birth_name", "birth_date", "full_name", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    # Printed on the card and used at login (issue 11): one's own, where the policy number is shared.
    insured_number: Mapped[str] = mapped_column(String(12), default=new_insured_number)
    full_name: Mapped[str] = mapped_column(String(300))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(200))
    service_type: Mapped[str] = mapped_column(String(16), default="dispatcher")
    attached_clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The pass photo (R6.4); a photo uploaded before migration 0003 is a file named by pass_photo_path.
    pass_photo_id: Mapped[int | None] = mapped_column(ForeignKey("pass_photos.id"))
    pass_photo_path: Mapped[str | None] = mapped_column(String(400))
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # From the employer's list: when the person's cover starts, and the day it ends when removed.
    starts_on: Mapped[date | None] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    policy: Mapped[Policy] = relationship(lazy="raise")
    attached_clinic: Mapped[Clinic | None] = relationship(lazy="raise")

    @property
    def has_pass_photo(self) -> bool:
        """A photo for clinic passes is on file (R6.4), stored in the database or, from before 0003, as a file."""
        return self.pass_photo_id is not None or bool(self.pass_photo_path)


class DispatchPoint(Base):
    """A dispatch console, a branch curator or the federal line, with local hours (R9)."""

    __tablename__ = "dispatch_points"
    __table_args__ = (CheckConstraint("kind IN ('console', 'branch_curator', 'federal_line')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    timezone: Mapped[str] = mapped_column(String(64))
    # {"0": ["08:00", "20:00"], ..., "6": null}; {"always": true} for 24/7 points.
    hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
