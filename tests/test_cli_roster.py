"""``telemed roster-import FILE.csv``: all or nothing, then the coverage check (R11.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from server.db.engine import make_engine, make_session_factory
from server.db.models import DutyShift, StaffAccount
from tests.test_cli import _telemed


async def test_roster_import_from_csv(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            session.add(
                StaffAccount(
                    username="dr.cli",
                    password_hash="x",
                    role="doctor",
                    full_name="Dr. Cli",
                    specialties=["general_practice"],
                    created_at=datetime.now(UTC),
                )
            )
            await session.commit()
        header = "doctor_username,specialty,starts_at,ends_at\n"
        bad = tmp_path / "bad.csv"
        bad.write_text(
            header
            + "dr.cli,general_practice,2030-01-01T08:00:00+03:00,2030-01-01T20:00:00+03:00\n"
            + "dr.nobody,general_practice,2030-01-02T08:00:00+03:00,2030-01-02T20:00:00+03:00\n"
        )
        refused = _telemed("roster-import", str(bad), data_dir=tmp_path, database_url=database_url)
        assert refused.returncode == 2
        assert "row 2" in refused.stderr and "unknown doctor" in refused.stderr

        good = tmp_path / "good.csv"
        good.write_text(header + "dr.cli,general_practice,2030-01-01T08:00:00+03:00,2030-01-01T20:00:00+03:00\n")
        imported = _telemed("roster-import", str(good), data_dir=tmp_path, database_url=database_url)
        assert imported.returncode == 0, imported.stderr
        assert "imported 1 shifts" in imported.stdout
        assert "ALERT (R11.2) general_practice" in imported.stdout  # nobody on duty in the coming weeks

        async with make_session_factory(engine)() as session:
            assert (await session.execute(select(func.count()).select_from(DutyShift))).scalar_one() == 1
    finally:
        await engine.dispose()
