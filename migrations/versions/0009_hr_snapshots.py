"""Corporate HR: frozen monthly snapshots of the published figures; consultations indexed by start day

Revision ID: 0009_hr
Revises: 0004_rules
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_hr"
down_revision: str | None = "0004_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hr_month_snapshots",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("policyholder_id", BIG_ID, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("min_cell", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policyholder_id"], ["policyholders.id"], name=op.f("fk_hr_month_snapshots_policyholder_id_policyholders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hr_month_snapshots")),
        sa.UniqueConstraint("policyholder_id", "month", name="uq_hr_month_snapshots_month"),
    )
    op.create_index("ix_consultations_policyholder_accepted", "consultations", ["policyholder_id", "accepted_at"])


def downgrade() -> None:
    op.drop_index("ix_consultations_policyholder_accepted", table_name="consultations")
    op.drop_table("hr_month_snapshots")
