"""Frozen monthly snapshots of what corporate HR is shown (R12.5, checklist F2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime


class HrMonthSnapshot(Base):
    """One policyholder's published month: computed once when first asked for, never recomputed.

    Freezing is what makes differencing useless: asking again, later or for an overlapping week
    returns exactly what was published, so no new figure can be subtracted from an old one.
    """

    __tablename__ = "hr_month_snapshots"
    __table_args__ = (UniqueConstraint("policyholder_id", "month", name="uq_hr_month_snapshots_month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    month: Mapped[str] = mapped_column(String(7))
    min_cell: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
