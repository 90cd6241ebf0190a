"""Dispatch requests from a call that stepped down to a call-back request (issue 13, item 6)

Revision ID: 0010_call_back
Revises: 0009_hr
Create Date: 2026-12-01 19:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_call_back"
down_revision: str | None = "0009_hr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "source IN ('insured', 'consultation_referral', 'dispatcher')"
NEW = "source IN ('insured', 'consultation_referral', 'dispatcher', 'call_back')"


def _source_check(condition: str) -> None:
    # batch mode: SQLite rebuilds the table, PostgreSQL alters it in place.
    with op.batch_alter_table("dispatch_requests") as batch:
        batch.drop_constraint(op.f("ck_dispatch_requests_source"), type_="check")
        batch.create_check_constraint(op.f("ck_dispatch_requests_source"), condition)


def upgrade() -> None:
    _source_check(NEW)


def downgrade() -> None:
    op.execute("DELETE FROM dispatch_requests WHERE source = 'call_back'")
    _source_check(OLD)
