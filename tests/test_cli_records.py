# ruff: noqa: RUF001 (Russian names and departments are Cyrillic on purpose)
"""The back office from the command line: a corporate client from nothing, its list loaded, a new version previewed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import _telemed

HEADER = "ФИО;Дата рождения;Телефон;Город;Подразделение;Программа;Дата начала"
ROWS = [
    "Иванов Иван;17.05.1990;8 916 123-45-67;Москва;Продажи;CLI-STD;01.02.2026",
    "Петров Пётр;02.03.1985;+7 916 765-43-21;Москва;ИТ;CLI-STD;01.02.2026",
]


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.timeout(600)  # eight `telemed` processes, each importing the whole server
async def test_a_client_from_nothing_then_its_list_and_a_dry_run_of_the_next_version(
    tmp_path: Path, database_factory: Any
) -> None:
    url = await database_factory.new_database()
    try:

        def run(*args: str) -> Any:
            return _telemed(*args, data_dir=tmp_path, database_url=url)

        holder = _json(
            run(
                "policyholder-create",
                "--kind",
                "corporate",
                "--name",
                "ООО Ромашка",
                "--department",
                "Продажи",
                "--department",
                "ИТ",
            )
        )
        clinic = _json(
            run(
                "clinic-create",
                "--name",
                "Клиника",
                "--city",
                "Москва",
                "--address",
                "ул. Ленина, 1",
                "--phone",
                "+74950000001",
                "--price-category",
                "2",
            )
        )
        negative = run(
            "program-create",
            "--code",
            "BAD",
            "--name",
            "Bad",
            "--component",
            "outpatient",
            "--price-category",
            "2",
            "--tariff",
            "dispatcher=-5",
        )
        assert negative.returncode == 2 and "negative" in negative.stderr
        program = _json(
            run(
                "program-create",
                "--code",
                "CLI-STD",
                "--name",
                "Стандарт",
                "--component",
                "outpatient",
                "--component",
                "telemedicine",
                "--price-category",
                "2",
                "--tariff",
                "dispatcher=30000",
                "--telemedicine-allowance",
                "12",
                "--clinic",
                str(clinic["id"]),
            )
        )
        policy = _json(
            run(
                "policy-create",
                "--number",
                "VHI-CLI-1",
                "--policyholder-id",
                str(holder["id"]),
                "--program-id",
                str(program["id"]),
                "--starts-on",
                "01.01.2026",
                "--ends-on",
                "31.12.2026",
                "--payment-mode",
                "installments",
                "--premium",
                "60000",
                "--installment",
                "2026-01-01=30000",
                "--installment",
                "2026-07-01=30000",
            )
        )
        assert len(policy["installments"]) == 2

        listing = tmp_path / "staff.csv"
        listing.write_bytes(("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("cp1251"))
        loaded = _json(run("import-insured", str(listing), "--policyholder-id", str(holder["id"]), "--quiet"))
        assert loaded["applied"] and loaded["counts"]["added"] == 2 and loaded["encoding"] == "cp1251"

        listing.write_bytes(("\r\n".join([HEADER, ROWS[0].replace("Продажи", "ИТ")]) + "\r\n").encode("cp1251"))
        preview = _json(
            run("import-insured", str(listing), "--policyholder-id", str(holder["id"]), "--dry-run", "--quiet")
        )
        assert preview["counts"] == {"added": 0, "changed": 1, "removed": 1, "unchanged": 0}
        assert not preview["applied"]

        bad = tmp_path / "bad.csv"
        bad.write_bytes(
            ("\r\n".join([HEADER, "Сидоров;31.02.1990;123;Москва;Склад;CLI-STD;01.02.2026"])).encode("cp1251")
        )
        refused = run("import-insured", str(bad), "--policyholder-id", str(holder["id"]), "--quiet")
        assert refused.returncode == 2
        assert "row 2, birth_date = '31.02.1990'" in refused.stderr and "unknown department" in refused.stderr
    finally:
        await database_factory.drop(url)
