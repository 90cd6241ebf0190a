"""Audio and video calls of a consultation: the call record (no media)

Revision ID: 0007_calls
Revises: 0005_clinical
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_calls"
down_revision: str | None = "0005_clinical"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("consultation_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=8), nullable=True),
        sa.Column("end_reason", sa.String(length=24), nullable=True),
        sa.Column("legs", sa.JSON(), nullable=False),
        sa.Column("away", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.CheckConstraint("status IN ('ringing', 'active', 'ended')", name=op.f("ck_calls_status")),
        sa.CheckConstraint("channel IN ('audio', 'video')", name=op.f("ck_calls_channel")),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], name=op.f("fk_calls_consultation_id_consultations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index("ix_calls_consultation_status", "calls", ["consultation_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_calls_consultation_status", table_name="calls")
    op.drop_table("calls")
