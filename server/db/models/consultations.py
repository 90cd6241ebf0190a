"""Telemedicine records: duty shifts, consultations, chat messages, attachments and read marks.

Every consultation row carries what HR aggregates need (policyholder, department, channel,
specialty, timings, outcome) so dashboards never have to read clinical content (R12.5).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
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


class DutyShift(Base):
    """A doctor on duty for one specialty between two UTC instants (R11.2)."""

    __tablename__ = "duty_shifts"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period"),
        Index("ix_duty_shifts_period", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    specialty: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consultation(Base):
    """One telemedicine consultation from request to completion (R11)."""

    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'offered', 'active', 'completed', 'cancelled')", name="status"),
        CheckConstraint("channel IN ('text', 'audio', 'video')", name="channel"),
        Index("ix_consultations_status_requested", "status", "requested_at"),
        Index("ix_consultations_doctor_status", "doctor_id", "status"),
        Index("ix_consultations_policyholder_requested", "policyholder_id", "requested_at"),
        # HR monthly figures count consultations by the day they started (R11.4, R12.5).
        Index("ix_consultations_policyholder_accepted", "policyholder_id", "accepted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"), index=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    department: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(8))
    specialty: Mapped[str] = mapped_column(String(40))
    complaints: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    offered_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    skipped_doctor_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    insured_event_id: Mapped[int | None] = mapped_column(ForeignKey("insured_events.id"))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(16))
    icd10_code: Mapped[str | None] = mapped_column(String(8))
    notes: Mapped[str | None] = mapped_column(Text)
    referral_specialty: Mapped[str | None] = mapped_column(String(40))
    referral_services: Mapped[list[str]] = mapped_column(JSON, default=list)
    referral_route: Mapped[str | None] = mapped_column(String(24))
    dispatch_request_id: Mapped[int | None] = mapped_column(BigId)
    # R11.6: the red-flag answers; any "yes" makes the request urgent (ahead of the queue).
    red_flags: Mapped[dict[str, bool] | None] = mapped_column(JSON)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # R11.7: offer rounds and escalation.
    lapses: Mapped[int] = mapped_column(Integer, default=0)
    round_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation_reason: Mapped[str | None] = mapped_column(String(32))


class ConsultationMessage(Base):
    """A chat message, numbered per consultation; stored before it is acknowledged.

    ``(consultation_id, sender_key, client_message_id)`` is unique so that a resent message
    is recognised, not duplicated.
    """

    __tablename__ = "consultation_messages"
    __table_args__ = (
        UniqueConstraint("consultation_id", "seq"),
        UniqueConstraint("consultation_id", "sender_key", "client_message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_key: Mapped[str] = mapped_column(String(40))
    sender_role: Mapped[str] = mapped_column(String(16))
    client_message_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("chat_attachments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatAttachment(Base):
    """An uploaded image for a consultation (e.g. a photo of a rash), re-encoded without metadata.

    The bytes are in ``content`` so that every server process can serve them. Rows written before
    migration 0003 have only ``path``: a file under the uploads folder of the process that took it.
    """

    __tablename__ = "chat_attachments"
    __table_args__ = (CheckConstraint("content IS NOT NULL OR path IS NOT NULL", name="stored"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    uploader_key: Mapped[str] = mapped_column(String(40))
    mime: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReadMark(Base):
    """How far a participant has read a consultation's chat (read receipts)."""

    __tablename__ = "read_marks"

    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), primary_key=True)
    reader_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_read_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RosterAlert(Base):
    """A detected roster gap (R11.2): raised, visible to admins, never a silent queue."""

    __tablename__ = "roster_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    specialty: Mapped[str] = mapped_column(String(40))
    gap_start: Mapped[datetime] = mapped_column(UTCDateTime())
    gap_end: Mapped[datetime] = mapped_column(UTCDateTime())
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
