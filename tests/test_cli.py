"""The ``telemed`` command: migrate + seed are idempotent, the outbox is readable, logins printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from server.db.engine import make_engine, make_session_factory
from server.db.models import DutyShift, InsuredPerson, Policy, StaffAccount


def _telemed(*args: str, data_dir: Path, database_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TELEMED_DATA_DIR": str(data_dir), "TELEMED_DATABASE_URL": database_url}
    env.pop("TELEMED_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        check=False,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_seed_twice_creates_the_demo_once_and_prints_logins(tmp_path: Path, database_factory) -> None:
    url = await database_factory.new_database(migrated=False)
    try:
        first = _telemed("seed", "--insured", "40", data_dir=tmp_path, database_url=url)
        assert first.returncode == 0, first.stderr
        assert "demo data created" in first.stdout
        assert "VHI-CORP-0001" in first.stdout and "dispatcher" in first.stdout
        second = _telemed("seed", "--insured", "40", data_dir=tmp_path, database_url=url)
        assert second.returncode == 0, second.stderr
        assert "already present" in second.stdout

        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                persons = (await session.execute(select(func.count()).select_from(InsuredPerson))).scalar_one()
                policies = (await session.execute(select(func.count()).select_from(Policy))).scalar_one()
                doctors = (
                    await session.execute(
                        select(func.count()).select_from(StaffAccount).where(StaffAccount.role == "doctor")
                    )
                ).scalar_one()
                specialties = set((await session.execute(select(DutyShift.specialty).distinct())).scalars())
                service_types = set((await session.execute(select(InsuredPerson.service_type).distinct())).scalars())
        finally:
            await engine.dispose()
        assert persons == 44  # 40 employees + 4 individual policies, not doubled by the second run
        assert policies == 5
        assert doctors >= 20
        assert "general_practice" in specialties and len(specialties - {"general_practice"}) >= 5
        assert service_types == {"dispatcher", "registry"}
    finally:
        await database_factory.drop(url)


def test_outbox_command_on_an_empty_outbox(tmp_path: Path) -> None:
    result = _telemed("outbox", data_dir=tmp_path, database_url="sqlite+aiosqlite:///" + str(tmp_path / "x.db"))
    assert result.returncode == 0
    assert "empty" in result.stdout


async def test_users_create_prints_a_one_time_code_and_never_takes_a_password(tmp_path: Path, database_factory) -> None:
    """Checklist A6: no shared or fixed passwords; the person sets their own with the printed code."""
    url = await database_factory.new_database()
    try:
        created = _telemed(
            "users-create",
            "nurse",
            "--role",
            "dispatcher",
            data_dir=tmp_path,
            database_url=url,
            stdin="a-long-password-1\n",
        )
        assert created.returncode == 0, created.stderr
        assert "one-time set-password code" in created.stdout
        code = created.stdout.split("shown once):", 1)[1].split()[0]
        assert len(code) >= 40 and "a-long-password-1" not in created.stdout
        hr_without_company = _telemed("users-create", "hr2", "--role", "hr", data_dir=tmp_path, database_url=url)
        assert hr_without_company.returncode == 2
        assert "hr_policyholder_id" in hr_without_company.stderr
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                account = (await session.scalars(select(StaffAccount).where(StaffAccount.username == "nurse"))).one()
        finally:
            await engine.dispose()
        assert account.must_change_password and account.is_active
    finally:
        await database_factory.drop(url)


def test_data_dir_option_is_honoured(tmp_path: Path) -> None:
    """`--data-dir` (not only TELEMED_DATA_DIR) selects the outbox that `telemed outbox` reads."""
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "outbox.jsonl").write_text('{"at": "x", "to": "+7", "text": "code 123456"}\n')
    result = _telemed(
        "outbox", "--data-dir", str(tmp_path / "other"), data_dir=tmp_path, database_url="sqlite+aiosqlite:///x"
    )
    assert result.returncode == 0, result.stderr
    assert "123456" in result.stdout


async def test_seed_prints_an_insured_login_by_the_number_on_the_card(tmp_path: Path, database_factory) -> None:
    """The printed insured login names one person even where birth dates are shared (issue 11)."""
    url = await database_factory.new_database(migrated=False)
    try:
        seeded = _telemed("seed", "--insured", "300", data_dir=tmp_path, database_url=url)
        assert seeded.returncode == 0, seeded.stderr
        found = re.search(
            r"insured number (\d{4} \d{4} \d{4}) \(on the card\), birth date (\d{4}-\d{2}-\d{2})", seeded.stdout
        )
        assert found, seeded.stdout
        number, born = found.group(1).replace(" ", ""), date.fromisoformat(found.group(2))
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                matches = (
                    await session.execute(select(InsuredPerson).where(InsuredPerson.insured_number == number))
                ).scalars().all()
                numbers = (await session.execute(select(InsuredPerson.insured_number))).scalars().all()
                same_day = (
                    await session.execute(
                        select(func.count()).select_from(InsuredPerson).where(InsuredPerson.birth_date == born)
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        assert [p.birth_date for p in matches] == [born]
        assert len(set(numbers)) == len(numbers) == 304  # every person their own number
        assert same_day >= 2  # the demo's corporate policy really has such a pair
    finally:
        await database_factory.drop(url)


async def test_demo_refuses_production_D9(tmp_path: Path, database_factory) -> None:
    url = await database_factory.new_database(migrated=False)
    try:
        env_extra = {"TELEMED_ENVIRONMENT": "production"}
        os.environ.update(env_extra)
        try:
            refused = _telemed("demo", "--port", "0", data_dir=tmp_path, database_url=url)
        finally:
            os.environ.pop("TELEMED_ENVIRONMENT")
        assert refused.returncode != 0
        assert "serving on" not in refused.stdout
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
        finally:
            await engine.dispose()
        assert "staff_accounts" not in tables  # nothing migrated, no demo accounts
    finally:
        await database_factory.drop(url)
