"""Indexes for the dispatcher's person search by phone and by birth date (issue 16, item 6)

A caller is found by the number they ring from or by their birth date; both are equality searches
paged in (name, id) order, so each index carries the name and id and a page is read in order.

Revision ID: 0011_person_search
Revises: 0010_call_back
Create Date: 2026-12-01 20:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_person_search"
down_revision: str | None = "0010_call_back"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_insured_persons_phone", "insured_persons", ["phone", "full_name", "id"])
    op.create_index("ix_insured_persons_birth_name", "insured_persons", ["birth_date", "full_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_insured_persons_birth_name", table_name="insured_persons")
    op.drop_index("ix_insured_persons_phone", table_name="insured_persons")
