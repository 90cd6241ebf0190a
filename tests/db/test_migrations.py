"""The schema is made only by Alembic: migrations and models agree, and downgrade works."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import FixedClock
from server.db.engine import make_engine
from server.db.migrate import downgrade, upgrade
from server.db.models import Base, ChatAttachment, ConsultationMessage, InsuredPerson, PassRequest
from tests.backends import DatabaseFactory
from tests.factories import Factories


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_head_on_an_empty_database_gives_exactly_the_models_schema(
    database_factory: DatabaseFactory,
) -> None:
    """Autogenerate must find nothing to do: no table, column, index, type or constraint differs."""
    url = await database_factory.new_database(migrated=False)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                differences = await connection.run_sync(_differences)
                tables = await connection.run_sync(_tables)
        finally:
            await engine.dispose()
        assert differences == []
        assert tables == set(Base.metadata.tables)
    finally:
        await database_factory.drop(url)


async def test_downgrade_base_removes_everything_and_upgrade_again_works(database_factory: DatabaseFactory) -> None:
    url = await database_factory.new_database(migrated=False)
    try:
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(downgrade, url, "base")
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                assert await connection.run_sync(_tables) == set()
        finally:
            await engine.dispose()
        await asyncio.to_thread(upgrade, url)
    finally:
        await database_factory.drop(url)


async def _integrity(engine: AsyncEngine) -> dict[str, Any]:
    """The legacy rows as 0003 must keep them, and (SQLite) any dangling reference."""
    async with engine.connect() as connection:
        linked = (
            await connection.execute(
                text(
                    "SELECT a.path, m.body FROM consultation_messages m"
                    " JOIN chat_attachments a ON a.id = m.attachment_id"
                )
            )
        ).all()
        passes = (await connection.execute(text("SELECT photo_path, photo_width FROM pass_requests"))).all()
        person_photo = (await connection.execute(text("SELECT pass_photo_path FROM insured_persons"))).scalars().all()
        dangling: list[Any] = []
        if engine.dialect.name == "sqlite":
            dangling = list((await connection.execute(text("PRAGMA foreign_key_check"))).all())
    return {"linked": linked, "passes": passes, "person_photo": person_photo, "dangling": dangling}


async def test_0003_keeps_file_backed_rows_and_references_both_ways_and_refuses_to_drop_stored_images(
    database_url: str, engine: AsyncEngine, factories: Factories, clock: FixedClock
) -> None:
    """SQLite rebuilds chat_attachments, which messages refer to: every row and reference must survive, in both
    directions; a downgrade that would lose images kept only in the database is refused."""
    patient = await factories.insured()
    consultation = await factories.consultation(patient, await factories.staff("doctor"))
    clinic = await factories.clinic(has_access_system=True)
    legacy = ChatAttachment(
        consultation_id=consultation.id,
        uploader_key=f"insured:{patient.id}",
        mime="image/jpeg",
        size_bytes=3,
        sha256="0" * 64,
        path=f"chat/{consultation.id}/legacy.jpg",
        created_at=clock.now(),
    )
    await factories.add(legacy)
    await factories.add(
        ConsultationMessage(
            consultation_id=consultation.id,
            seq=1,
            sender_key=f"insured:{patient.id}",
            sender_role="patient",
            client_message_id="m1",
            kind="attachment",
            body="my rash",
            attachment_id=legacy.id,
            created_at=clock.now(),
        ),
        PassRequest(
            insured_person_id=patient.id,
            clinic_id=clinic.id,
            photo_path="passes/legacy-300x400.jpg",
            photo_mime="image/jpeg",
            photo_width=300,
            photo_height=400,
            status="submitted",
            created_at=clock.now(),
        ),
    )
    async with factories.session_factory() as session:
        person = await session.get(InsuredPerson, patient.id)
        assert person is not None
        person.pass_photo_path = "passes/legacy-300x400.jpg"
        await session.commit()
    await engine.dispose()
    expected = {
        "linked": [(f"chat/{consultation.id}/legacy.jpg", "my rash")],
        "passes": [("passes/legacy-300x400.jpg", 300)],
        "person_photo": ["passes/legacy-300x400.jpg"],
        "dangling": [],
    }
    assert await _integrity(engine) == expected
    await asyncio.to_thread(downgrade, database_url, "0002")
    assert await _integrity(engine) == expected
    await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)
    assert await _integrity(engine) == expected
    # An image kept only in the database cannot go back to the old schema: the downgrade stops, nothing changes.
    await factories.add(
        ChatAttachment(
            consultation_id=consultation.id,
            uploader_key=f"insured:{patient.id}",
            mime="image/png",
            size_bytes=3,
            sha256="1" * 64,
            content=b"png",
            created_at=clock.now(),
        )
    )
    await engine.dispose()
    # Later revisions go down first (they are not what this test is about), then 0003 refuses.
    await asyncio.to_thread(downgrade, database_url, "0003")
    with pytest.raises(RuntimeError, match="1 chat attachments exist only in the database"):
        await asyncio.to_thread(downgrade, database_url, "0002")
    # Later revisions may have stepped down before 0003 refused (SQLite commits DDL as it goes); up again is clean.
    await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM chat_attachments"))).scalar_one() == 2
        assert await connection.run_sync(_differences) == []
