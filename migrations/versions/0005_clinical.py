"""Clinical safety of consultations: red flags, offer rounds and escalation, hand-overs, addenda, duty alerts, consents, doctor connections, audit checkpoints; doctors' time zone

Revision ID: 0005_clinical
Revises: 0008_backoffice
Create Date: 2026-12-01 16:40:00

R11.6-R11.9 and checklist E1/D2. Addenda, hand-overs and audit checkpoints are append-only: the
database refuses ``UPDATE`` and ``DELETE`` (and ``TRUNCATE`` on PostgreSQL) on them, like the audit trail.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_clinical"
down_revision: str | None = "0008_backoffice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("consultation_addenda", "consultation_handovers", "audit_checkpoints")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite >= 3.35 has both): no table rebuild, so references stay intact.
    op.add_column("consultations", sa.Column("red_flags", sa.JSON(), nullable=True))
    op.add_column("consultations", sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("consultations", sa.Column("lapses", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("consultations", sa.Column("round_ended_at", TS, nullable=True))
    op.add_column("consultations", sa.Column("escalated_at", TS, nullable=True))
    op.add_column("consultations", sa.Column("escalation_reason", sa.String(length=32), nullable=True))
    op.add_column("staff_accounts", sa.Column("time_zone", sa.String(length=64), nullable=True))

    op.create_table(
        "consultation_handovers",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("consultation_id", BIG_ID, nullable=False),
        sa.Column("from_doctor_id", BIG_ID, nullable=False),
        sa.Column("to_doctor_id", BIG_ID, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('doctor', 'disconnect')", name=op.f("ck_consultation_handovers_kind")),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_consultation_handovers_consultation_id_consultations"),
        ),
        sa.ForeignKeyConstraint(
            ["from_doctor_id"],
            ["staff_accounts.id"],
            name=op.f("fk_consultation_handovers_from_doctor_id_staff_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["to_doctor_id"], ["staff_accounts.id"], name=op.f("fk_consultation_handovers_to_doctor_id_staff_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_handovers")),
    )
    op.create_index(
        op.f("ix_consultation_handovers_consultation_id"), "consultation_handovers", ["consultation_id"], unique=False
    )
    op.create_table(
        "consultation_addenda",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("consultation_id", BIG_ID, nullable=False),
        sa.Column("author_id", BIG_ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_consultation_addenda_consultation_id_consultations"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["staff_accounts.id"], name=op.f("fk_consultation_addenda_author_id_staff_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_addenda")),
    )
    op.create_index(
        op.f("ix_consultation_addenda_consultation_id"), "consultation_addenda", ["consultation_id"], unique=False
    )
    op.create_table(
        "duty_alerts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("consultation_id", BIG_ID, nullable=True),
        sa.Column("insured_person_id", BIG_ID, nullable=True),
        sa.Column("specialty", sa.String(length=40), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by_id", BIG_ID, nullable=True),
        sa.CheckConstraint(
            "kind IN ('red_flag', 'emergency', 'escalation', 'no_doctor', 'doctor_disconnected')",
            name=op.f("ck_duty_alerts_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["consultations.id"], name=op.f("fk_duty_alerts_consultation_id_consultations")
        ),
        sa.ForeignKeyConstraint(
            ["insured_person_id"], ["insured_persons.id"], name=op.f("fk_duty_alerts_insured_person_id_insured_persons")
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"], ["staff_accounts.id"], name=op.f("fk_duty_alerts_acknowledged_by_id_staff_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_alerts")),
    )
    op.create_index(op.f("ix_duty_alerts_consultation_id"), "duty_alerts", ["consultation_id"], unique=False)
    op.create_index("ix_duty_alerts_open_created", "duty_alerts", ["acknowledged_at", "created_at"], unique=False)
    op.create_table(
        "patient_consents",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("insured_person_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("given_at", TS, nullable=False),
        sa.Column("given_from", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("withdrawn_at", TS, nullable=True),
        sa.Column("withdrawn_from", sa.String(length=64), nullable=True),
        sa.CheckConstraint("kind IN ('telemedicine', 'health_data')", name=op.f("ck_patient_consents_kind")),
        sa.ForeignKeyConstraint(
            ["insured_person_id"],
            ["insured_persons.id"],
            name=op.f("fk_patient_consents_insured_person_id_insured_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_consents")),
    )
    op.create_index("ix_patient_consents_person_kind", "patient_consents", ["insured_person_id", "kind"], unique=False)
    op.create_table(
        "doctor_connections",
        sa.Column("socket_id", sa.String(length=64), nullable=False),
        sa.Column("doctor_id", BIG_ID, nullable=False),
        sa.Column("connected_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["staff_accounts.id"], name=op.f("fk_doctor_connections_doctor_id_staff_accounts")
        ),
        sa.PrimaryKeyConstraint("socket_id", name=op.f("pk_doctor_connections")),
    )
    op.create_index(op.f("ix_doctor_connections_doctor_id"), "doctor_connections", ["doctor_id"], unique=False)
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("last_event_id", BIG_ID, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    for table in APPEND_ONLY:
        _append_only(table)


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``table`` in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{table} is append-only';
            END;
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.drop_table("audit_checkpoints")
    op.drop_index(op.f("ix_doctor_connections_doctor_id"), table_name="doctor_connections")
    op.drop_table("doctor_connections")
    op.drop_index("ix_patient_consents_person_kind", table_name="patient_consents")
    op.drop_table("patient_consents")
    op.drop_index("ix_duty_alerts_open_created", table_name="duty_alerts")
    op.drop_index(op.f("ix_duty_alerts_consultation_id"), table_name="duty_alerts")
    op.drop_table("duty_alerts")
    op.drop_index(op.f("ix_consultation_addenda_consultation_id"), table_name="consultation_addenda")
    op.drop_table("consultation_addenda")
    op.drop_index(op.f("ix_consultation_handovers_consultation_id"), table_name="consultation_handovers")
    op.drop_table("consultation_handovers")
    op.drop_column("staff_accounts", "time_zone")
    for column in ("escalation_reason", "escalated_at", "round_ended_at", "lapses", "urgent", "red_flags"):
        op.drop_column("consultations", column)
