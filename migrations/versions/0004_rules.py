"""Dispatch rules second pass: payments carry the reference they name and wait unmatched (R7.6), a replacement
clinic's attachment letter beside the old one (R5.4), the employer's approval of an application (R4.2)

Revision ID: 0004_rules
Revises: 0006_hardening
Create Date: 2026-12-01 17:00:00

``attachment_letters`` was unique per (person, payment); a replacement clinic (R5.4) gets a letter for
time already paid by the same payment, so the key becomes (person, payment, clinic): still one letter
per payment and clinic, never two identical ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_rules"
down_revision: str | None = "0006_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("reference", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("match_reasons", sa.JSON(), nullable=True))
    with op.batch_alter_table("attachment_letters") as batch:
        batch.drop_constraint("uq_attachment_letters_insured_person_id_payment_id", type_="unique")
        batch.create_unique_constraint(
            "uq_attachment_letters_insured_person_id_payment_id_clinic_id",
            ["insured_person_id", "payment_id", "clinic_id"],
        )
    with op.batch_alter_table("program_change_applications") as batch:
        batch.add_column(sa.Column("approved_by", BIG_ID, nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            "fk_program_change_applications_approved_by_staff_accounts",
            "staff_accounts",
            ["approved_by"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("program_change_applications") as batch:
        batch.drop_constraint("fk_program_change_applications_approved_by_staff_accounts", type_="foreignkey")
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
    with op.batch_alter_table("attachment_letters") as batch:
        batch.drop_constraint("uq_attachment_letters_insured_person_id_payment_id_clinic_id", type_="unique")
        batch.create_unique_constraint(
            "uq_attachment_letters_insured_person_id_payment_id", ["insured_person_id", "payment_id"]
        )
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("match_reasons")
        batch.drop_column("reference")
