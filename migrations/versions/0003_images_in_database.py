"""Uploaded images in the database, so that every server process serves them: chat attachment bytes, pass photos

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:20:00

Rows written before this revision keep their file (``chat_attachments.path``,
``pass_requests.photo_path``, ``insured_persons.pass_photo_path``); new uploads have only the bytes.
SQLite cannot drop a NOT NULL in place, so there the two altered tables are copied aside and rebuilt
(see ``_rebuild_on_sqlite``). Downgrading refuses while any image lives only in the database: the old
schema has nowhere to keep it, and dropping medical documentation silently is not an option.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHAT_ATTACHMENT_COLUMNS = (
    "id",
    "consultation_id",
    "uploader_key",
    "mime",
    "size_bytes",
    "sha256",
    "path",
    "created_at",
)
PASS_REQUEST_COLUMNS = (
    "id",
    "insured_person_id",
    "clinic_id",
    "photo_path",
    "photo_mime",
    "photo_width",
    "photo_height",
    "status",
    "created_at",
)


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _create_chat_attachments(*, with_content: bool) -> None:
    content = [sa.Column("content", sa.LargeBinary(), nullable=True)] if with_content else []
    checks = (
        [sa.CheckConstraint("content IS NOT NULL OR path IS NOT NULL", name=op.f("ck_chat_attachments_stored"))]
        if with_content
        else []
    )
    op.create_table(
        "chat_attachments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("consultation_id", BIG_ID, nullable=False),
        sa.Column("uploader_key", sa.String(length=40), nullable=False),
        sa.Column("mime", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        *content,
        sa.Column("path", sa.String(length=400), nullable=with_content),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *checks,
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["consultations.id"], name=op.f("fk_chat_attachments_consultation_id_consultations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_attachments")),
    )
    op.create_index(op.f("ix_chat_attachments_consultation_id"), "chat_attachments", ["consultation_id"], unique=False)


def _create_pass_requests(*, with_photo_id: bool) -> None:
    photo_id = [sa.Column("photo_id", BIG_ID, nullable=True)] if with_photo_id else []
    constraints = (
        [
            sa.CheckConstraint("photo_id IS NOT NULL OR photo_path IS NOT NULL", name=op.f("ck_pass_requests_photo")),
            sa.ForeignKeyConstraint(
                ["photo_id"], ["pass_photos.id"], name=op.f("fk_pass_requests_photo_id_pass_photos")
            ),
        ]
        if with_photo_id
        else []
    )
    op.create_table(
        "pass_requests",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("insured_person_id", BIG_ID, nullable=False),
        sa.Column("clinic_id", BIG_ID, nullable=False),
        *photo_id,
        sa.Column("photo_path", sa.String(length=400), nullable=with_photo_id),
        sa.Column("photo_mime", sa.String(length=40), nullable=False),
        sa.Column("photo_width", sa.Integer(), nullable=False),
        sa.Column("photo_height", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *constraints,
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"], name=op.f("fk_pass_requests_clinic_id_clinics")),
        sa.ForeignKeyConstraint(
            ["insured_person_id"],
            ["insured_persons.id"],
            name=op.f("fk_pass_requests_insured_person_id_insured_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pass_requests")),
    )
    op.create_index(op.f("ix_pass_requests_insured_person_id"), "pass_requests", ["insured_person_id"], unique=False)
    if with_photo_id:
        op.create_index(op.f("ix_pass_requests_photo_id"), "pass_requests", ["photo_id"], unique=False)


def _rebuild_on_sqlite(table: str, create: Callable[[], None], columns: Sequence[str]) -> None:
    """Recreate a SQLite table with a new definition, keeping its rows and every reference to them.

    Alembic's batch mode drops the old table after copying it and renames the copy into place; with
    foreign keys enforced, that drop orphans the rows that refer to the table
    (``consultation_messages.attachment_id``) and SQLite refuses. Here the rows are put aside, the
    table is dropped and created again under its own name, and the rows are inserted back: the
    inserts re-parent the referring rows, so the deferred checks balance out by the commit.
    """
    kept = f"_kept_{table}"
    listed = ", ".join(columns)  # table and column names are this module's constants, never input
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TEMP TABLE {kept} AS SELECT {listed} FROM {table}")  # noqa: S608
    op.drop_table(table)
    create()
    op.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {kept}")  # noqa: S608
    op.execute(f"DROP TABLE {kept}")


def upgrade() -> None:
    op.create_table(
        "pass_photos",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("mime", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pass_photos")),
    )
    if _is_sqlite():
        _rebuild_on_sqlite(
            "chat_attachments", lambda: _create_chat_attachments(with_content=True), CHAT_ATTACHMENT_COLUMNS
        )
        _rebuild_on_sqlite("pass_requests", lambda: _create_pass_requests(with_photo_id=True), PASS_REQUEST_COLUMNS)
        # A nullable column with its reference is one ALTER on SQLite: the large table is not copied.
        op.execute("ALTER TABLE insured_persons ADD COLUMN pass_photo_id INTEGER REFERENCES pass_photos (id)")
        return
    op.add_column("chat_attachments", sa.Column("content", sa.LargeBinary(), nullable=True))
    op.alter_column("chat_attachments", "path", existing_type=sa.String(length=400), nullable=True)
    op.create_check_constraint(
        op.f("ck_chat_attachments_stored"), "chat_attachments", "content IS NOT NULL OR path IS NOT NULL"
    )
    op.add_column("pass_requests", sa.Column("photo_id", BIG_ID, nullable=True))
    op.create_foreign_key(
        op.f("fk_pass_requests_photo_id_pass_photos"), "pass_requests", "pass_photos", ["photo_id"], ["id"]
    )
    op.create_index(op.f("ix_pass_requests_photo_id"), "pass_requests", ["photo_id"], unique=False)
    op.alter_column("pass_requests", "photo_path", existing_type=sa.String(length=400), nullable=True)
    op.create_check_constraint(
        op.f("ck_pass_requests_photo"), "pass_requests", "photo_id IS NOT NULL OR photo_path IS NOT NULL"
    )
    op.add_column("insured_persons", sa.Column("pass_photo_id", BIG_ID, nullable=True))
    op.create_foreign_key(
        op.f("fk_insured_persons_pass_photo_id_pass_photos"),
        "insured_persons",
        "pass_photos",
        ["pass_photo_id"],
        ["id"],
    )


def _refuse_to_lose_images() -> None:
    """Stop the downgrade while images exist only in the database (the old schema cannot hold them)."""
    bind = op.get_bind()
    counts = {
        "chat attachments": "SELECT count(*) FROM chat_attachments WHERE path IS NULL",
        "pass photos": "SELECT count(*) FROM pass_photos",
    }
    found = {what: int(bind.execute(sa.text(sql)).scalar_one()) for what, sql in counts.items()}
    if any(found.values()):
        listed = ", ".join(f"{count} {what}" for what, count in found.items() if count)
        raise RuntimeError(
            f"cannot downgrade below 0003: {listed} exist only in the database and would be lost; "
            "export them (and point their rows at the files) first"
        )


def downgrade() -> None:
    _refuse_to_lose_images()
    if _is_sqlite():
        op.execute("ALTER TABLE insured_persons DROP COLUMN pass_photo_id")
        _rebuild_on_sqlite("pass_requests", lambda: _create_pass_requests(with_photo_id=False), PASS_REQUEST_COLUMNS)
        _rebuild_on_sqlite(
            "chat_attachments", lambda: _create_chat_attachments(with_content=False), CHAT_ATTACHMENT_COLUMNS
        )
    else:
        op.drop_constraint(op.f("fk_insured_persons_pass_photo_id_pass_photos"), "insured_persons", type_="foreignkey")
        op.drop_column("insured_persons", "pass_photo_id")
        op.drop_constraint(op.f("ck_pass_requests_photo"), "pass_requests", type_="check")
        op.alter_column("pass_requests", "photo_path", existing_type=sa.String(length=400), nullable=False)
        op.drop_index(op.f("ix_pass_requests_photo_id"), table_name="pass_requests")
        op.drop_constraint(op.f("fk_pass_requests_photo_id_pass_photos"), "pass_requests", type_="foreignkey")
        op.drop_column("pass_requests", "photo_id")
        op.drop_constraint(op.f("ck_chat_attachments_stored"), "chat_attachments", type_="check")
        op.alter_column("chat_attachments", "path", existing_type=sa.String(length=400), nullable=False)
        op.drop_column("chat_attachments", "content")
    op.drop_table("pass_photos")
