"""Clinical safety records of consultations: hand-overs, addenda, duty alerts, consents, doctor connections.

R11.6-R11.9 and checklist E1. Addenda and hand-overs are append-only (database triggers refuse
``UPDATE``/``DELETE``), as are the audit checkpoints that pin the audit chain's head (D2).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime


class ConsultationHandover(Base):
    """A consultation changed hands (R11.8): to a named colleague with a note, or back to the queue."""

    __tablename__ = "consultation_handovers"
    __table_args__ = (CheckConstraint("kind IN ('doctor', 'disconnect')", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    from_doctor_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    to_doctor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsultationAddendum(Base):
    """A dated addition to a completed consultation's record by its treating doctor (R11.9)."""

    __tablename__ = "consultation_addenda"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DutyAlert(Base):
    """Something the dispatchers and admins on duty must see now (R11.2, R11.6-R11.8).

    Kinds: ``red_flag`` (an urgent request), ``emergency`` (completed with outcome emergency),
    ``escalation`` (a request nobody takes), ``no_doctor`` (nobody of a specialty on duty),
    ``doctor_disconnected`` (a consultation lost its doctor and nobody else is there).
    """

    __tablename__ = "duty_alerts"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('red_flag', 'emergency', 'escalation', 'no_doctor', 'doctor_disconnected')", name="kind"
        ),
        Index("ix_duty_alerts_open_created", "acknowledged_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(32))
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id"), index=True)
    insured_person_id: Mapped[int | None] = mapped_column(ForeignKey("insured_persons.id"))
    specialty: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))


class PatientConsent(Base):
    """A patient's consent to one versioned text (checklist E1): who, when, which version, from where."""

    __tablename__ = "patient_consents"
    __table_args__ = (
        CheckConstraint("kind IN ('telemedicine', 'health_data')", name="kind"),
        Index("ix_patient_consents_person_kind", "insured_person_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    insured_person_id: Mapped[int] = mapped_column(ForeignKey("insured_persons.id"))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(2))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    given_from: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_from: Mapped[str | None] = mapped_column(String(64))


class DoctorConnection(Base):
    """One live client socket of a doctor, so every process knows who is connected (R11.7, R11.8).

    ``seen_at`` is renewed while the socket lives; a row whose process died stops being renewed and
    counts as closed once stale. ``closed_at`` is when the socket ended.
    """

    __tablename__ = "doctor_connections"

    socket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditCheckpoint(Base):
    """The audit chain's head at one moment (checklist D2): deleting the newest rows no longer goes unseen."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigId)
    last_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
