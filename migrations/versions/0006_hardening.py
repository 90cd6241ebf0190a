"""Hardening (issue 11): personal insured numbers, per-person/per-address login counts, refresh grace

Revision ID: 0006_hardening
Revises: 0007_calls
Create Date: 2026-12-01 17:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.domain.insured_number import new_insured_number

revision: str = "0006_hardening"
down_revision: str | None = "0007_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a temporary default, filled below: SQLite cannot add the constraint later
    # without rebuilding a table that others reference.
    op.add_column(
        "insured_persons",
        sa.Column("insured_number", sa.String(length=12), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM insured_persons ORDER BY id"))]
    used: set[str] = set()
    for person_id in ids:
        number = new_insured_number()
        while number in used:
            number = new_insured_number()
        used.add(number)
        connection.execute(
            sa.text("UPDATE insured_persons SET insured_number = :number WHERE id = :id"),
            {"number": number, "id": person_id},
        )
    if connection.dialect.name != "sqlite":
        op.alter_column("insured_persons", "insured_number", server_default=None)
    op.create_index("uq_insured_persons_insured_number", "insured_persons", ["insured_number"], unique=True)
    op.add_column("login_challenges", sa.Column("person_key", sa.String(length=80), nullable=True))
    op.create_index("ix_login_challenges_person_created", "login_challenges", ["person_key", "created_at"])
    op.add_column("refresh_tokens", sa.Column("successor_sealed", sa.String(length=128), nullable=True))
    op.create_index("ix_login_failures_address_created", "login_failures", ["client_address", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_address_created", table_name="login_failures")
    op.drop_column("refresh_tokens", "successor_sealed")
    op.drop_index("ix_login_challenges_person_created", table_name="login_challenges")
    op.drop_column("login_challenges", "person_key")
    op.drop_index("uq_insured_persons_insured_number", table_name="insured_persons")
    op.drop_column("insured_persons", "insured_number")
