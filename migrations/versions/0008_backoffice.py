"""Back office: departments, import batches, the change history, set-password tokens, payment references

Revision ID: 0008_backoffice
Revises: 0003
Create Date: 2026-12-01 16:40:00

New columns are nullable or have a server default, so existing rows need no rewrite and SQLite adds them in
place (plain columns, no constraint, so SQLite can drop them again on downgrade).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_backoffice"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("insured_persons", sa.Column("starts_on", sa.Date(), nullable=True))
    op.add_column("insured_persons", sa.Column("removed_on", sa.Date(), nullable=True))
    op.add_column(
        "staff_accounts",
        sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("staff_accounts", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "policyholder_departments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("policyholder_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_policyholder_departments_policyholder_id_policyholders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policyholder_departments")),
        sa.UniqueConstraint("policyholder_id", "name", name=op.f("uq_policyholder_departments_policyholder_id_name")),
    )
    op.create_table(
        "import_batches",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("policyholder_id", BIG_ID, nullable=True),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policyholder_id"], ["policyholders.id"], name=op.f("fk_import_batches_policyholder_id_policyholders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_index(op.f("ix_import_batches_policyholder_id"), "import_batches", ["policyholder_id"], unique=False)
    op.create_table(
        "record_changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", BIG_ID, nullable=False),
        sa.Column("insured_person_id", BIG_ID, nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("import_batch_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["import_batch_id"], ["import_batches.id"], name=op.f("fk_record_changes_import_batch_id_import_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_changes")),
    )
    op.create_index("ix_record_changes_entity", "record_changes", ["entity_type", "entity_id"], unique=False)
    op.create_index("ix_record_changes_person", "record_changes", ["insured_person_id", "id"], unique=False)
    op.create_table(
        "password_set_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_account_id", BIG_ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_account_id"],
            ["staff_accounts.id"],
            name=op.f("fk_password_set_tokens_staff_account_id_staff_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_password_set_tokens")),
    )
    op.create_index(
        op.f("ix_password_set_tokens_staff_account_id"), "password_set_tokens", ["staff_account_id"], unique=False
    )
    op.create_table(
        "imported_payment_references",
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("payment_id", BIG_ID, nullable=False),
        sa.Column("import_batch_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["import_batch_id"],
            ["import_batches.id"],
            name=op.f("fk_imported_payment_references_import_batch_id_import_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_imported_payment_references_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_imported_payment_references")),
    )
    op.create_index(
        op.f("ix_imported_payment_references_import_batch_id"),
        "imported_payment_references",
        ["import_batch_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_imported_payment_references_payment_id"), "imported_payment_references", ["payment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("imported_payment_references")
    op.drop_table("password_set_tokens")
    op.drop_table("record_changes")
    op.drop_table("import_batches")
    op.drop_table("policyholder_departments")
    op.drop_column("staff_accounts", "timezone")
    op.drop_column("staff_accounts", "must_change_password")
    op.drop_column("insured_persons", "removed_on")
    op.drop_column("insured_persons", "starts_on")
