"""Back-office records: a policyholder's departments, import batches, the change history of every
record, one-time set-password tokens and the references of bulk-imported payments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime


class PolicyholderDepartment(Base):
    """A department of a corporate policyholder; an insured list may only name known ones."""

    __tablename__ = "policyholder_departments"
    __table_args__ = (UniqueConstraint("policyholder_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))


class ImportBatch(Base):
    """One applied file (an insured list or a payments CSV): who loaded it, when, and what it changed."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(80))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordChange(Base):
    """One change to a back-office record: who, when, which fields (old -> new), from which file.

    Rows are only ever appended; a person's history is every row with their ``insured_person_id``.
    """

    __tablename__ = "record_changes"
    __table_args__ = (
        Index("ix_record_changes_entity", "entity_type", "entity_id"),
        Index("ix_record_changes_person", "insured_person_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(80))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(BigId)
    insured_person_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(40))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))


class PasswordSetToken(Base):
    """A one-time code with which a staff member sets their own password (no shared passwords, A6)."""

    __tablename__ = "password_set_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ImportedPaymentReference(Base):
    """The bank reference of a payment loaded from a bulk file: the same reference is never bundled twice."""

    __tablename__ = "imported_payment_references"

    reference: Mapped[str] = mapped_column(String(80), primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    import_batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"), index=True)
