"""The audit trail of access to medical data: append-only and hash-chained (checklist D1, D2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime


class AuditEvent(Base):
    """Who did what to which medical record, when, with what result, under which request id.

    Rows are never updated or deleted (a database trigger refuses it); each row's ``hash``
    covers its content and the previous row's hash, so an edit anywhere breaks the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_patient_occurred", "patient_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(60))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[int | None] = mapped_column(BigId)
    result: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
