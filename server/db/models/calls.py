"""Audio and video calls of a consultation (R11.1): the record kept with the consultation; no media."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime


class Call(Base):
    """One call: who is in it, its step-downs and quality summary, how it ended.

    The live part (``legs``, ``away``) is what every server process needs to agree on who is in
    the call and until when an away participant may rejoin; it is changed only under a row lock.
    """

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint("status IN ('ringing', 'active', 'ended')", name="status"),
        CheckConstraint("channel IN ('audio', 'video')", name="channel"),
        Index("ix_calls_consultation_status", "consultation_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"))
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(8))
    end_reason: Mapped[str | None] = mapped_column(String(24))
    legs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    away: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
