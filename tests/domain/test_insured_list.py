# ruff: noqa: RUF001 (Russian names, cities and departments are Cyrillic on purpose)
"""The employer's list: every row checked, problems reported by row/column/value/reason, versions compared."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from server.domain.coverage_types import ServiceType
from server.domain.insured_list import (
    ExistingPerson,
    ListContext,
    PolicyOption,
    diff_list,
    map_header,
    normalise_phone,
    parse_day,
    person_key,
    validate_rows,
)

TODAY = date(2026, 6, 10)
POLICY = PolicyOption(
    id=7,
    number="POL-1",
    program_code="CORP-STD",
    starts_on=date(2026, 1, 1),
    ends_on=date(2026, 12, 31),
    registry_offered=True,
    clinic_ids=frozenset({3}),
)
CONTEXT = ListContext(
    today=TODAY,
    departments=frozenset({"Sales", "IT"}),
    policies=[POLICY],
    other_policy_numbers=frozenset({"POL-OTHER"}),
)
HEADER = ["ФИО", "Дата рождения", "Телефон", "Город", "Подразделение", "Программа", "Дата начала"]


def _row(
    name: str = "Иванов Иван Иванович",
    birth: str = "17.05.1990",
    phone: str = "8 (916) 123-45-67",
    city: str = "Москва",
    department: str = "Sales",
    program: str = "CORP-STD",
    start: str = "01.02.2026",
) -> list[str]:
    return [name, birth, phone, city, department, program, start]


def _validate(*rows: list[str], header: list[str] = HEADER) -> tuple[list, list]:  # type: ignore[type-arg]
    columns, problems = map_header(header)
    assert problems == []
    return validate_rows([(i + 2, r) for i, r in enumerate(rows)], columns, CONTEXT)


def test_russian_headers_dates_and_phones_are_read_and_the_phone_is_normalised_to_e164() -> None:
    entries, problems = _validate(_row())
    assert problems == []
    (entry,) = entries
    assert entry.phone == "+79161234567"
    assert entry.birth_date == date(1990, 5, 17)
    assert entry.starts_on == date(2026, 2, 1)
    assert entry.policy_id == POLICY.id
    assert entry.service_type is ServiceType.DISPATCHER


def test_each_problem_names_row_column_value_and_reason() -> None:
    _, problems = _validate(
        _row(birth="01.01.2030"),
        _row(name="Петров Пётр", phone="12345"),
        _row(name="Сидоров Сидор", department="Marketing"),
        _row(name="Кузнецов Кузьма", program="GOLD"),
        _row(name="Смирнов Семён", birth="31.02.1990"),
    )
    found = {(p.row, p.column, p.value, p.reason) for p in problems}
    assert (2, "birth_date", "01.01.2030", "in the future") in found
    assert (3, "phone", "12345", "not a valid phone number") in found
    assert (4, "department", "Marketing", "unknown department of this policyholder") in found
    assert (5, "program", "GOLD", "no policy of this policyholder has this program") in found
    assert (6, "birth_date", "31.02.1990", "not a date (dd.mm.yyyy)") in found


def test_the_same_person_twice_in_the_file_is_reported_on_the_second_row() -> None:
    _, problems = _validate(_row(), _row(name="  иванов   иван  иванович ", phone="+79160000000"))
    assert [(p.row, p.column) for p in problems] == [(3, "full_name")]
    assert "row 2" in problems[0].reason


def test_a_formula_is_not_a_name_and_stays_text_elsewhere() -> None:
    entries, problems = _validate(_row(name='=HYPERLINK("http://x","Иванов")'), _row(city='=HYPERLINK("http://x")'))
    assert [(p.row, p.column) for p in problems] == [(2, "full_name")]
    assert entries[0].city == '=HYPERLINK("http://x")'


def test_a_policy_of_another_policyholder_is_refused_per_row() -> None:
    header = [*HEADER, "policy"]
    _, problems = _validate([*_row(), "POL-OTHER"], header=header)
    assert [(p.column, p.reason) for p in problems] == [("policy", "the policy belongs to another policyholder")]


def test_registry_needs_one_clinic_of_the_program_r1_3_r2_3() -> None:
    header = [*HEADER, "service_type", "clinic"]
    _, problems = _validate([*_row(), "registry", ""], [*_row(name="Петров Пётр"), "registry", "99"], header=header)
    reasons = [p.reason for p in problems]
    assert any(r.startswith("R1.3") for r in reasons)
    assert any(r.startswith("R2.3") for r in reasons)


def test_a_start_outside_every_policy_period_is_refused() -> None:
    _, problems = _validate(_row(start="01.01.2027"))
    assert problems[0].column == "starts_on"


def test_a_missing_required_column_is_reported_on_the_header() -> None:
    _, problems = map_header(["ФИО", "Телефон"])
    assert {p.column for p in problems} >= {"birth_date", "city", "program", "starts_on"}
    assert all(p.row == 1 for p in problems)


def test_dates_in_both_spellings_and_impossible_days() -> None:
    assert parse_day("05.01.2026") == date(2026, 1, 5)
    assert parse_day("2026-01-05") == date(2026, 1, 5)
    assert parse_day("29.02.2025") is None
    assert parse_day("2026/01/05") is None


def test_phone_normalisation() -> None:
    assert normalise_phone("+7 916 123-45-67") == "+79161234567"
    assert normalise_phone("89161234567") == "+79161234567"
    assert normalise_phone("not a phone") is None


def _existing(person_id: int, name: str, **overrides: object) -> ExistingPerson:
    values: dict[str, object] = {
        "id": person_id,
        "full_name": name,
        "birth_date": date(1990, 5, 17),
        "phone": "+79161234567",
        "city": "Москва",
        "department": "Sales",
        "policy_id": POLICY.id,
        "service_type": "dispatcher",
        "starts_on": date(2026, 2, 1),
        "removed_on": None,
    }
    values.update(overrides)
    return ExistingPerson(**values)  # type: ignore[arg-type]


def test_the_same_list_again_changes_nothing() -> None:
    entries, _ = _validate(_row())
    diff = diff_list(entries, [_existing(1, "Иванов Иван Иванович")], removal_date=TODAY)
    assert diff.is_empty and diff.unchanged == 1


def test_a_new_version_adds_changes_and_removes() -> None:
    entries, _ = _validate(_row(department="IT"), _row(name="Новиков Николай", phone="+79165550000"))
    existing = [_existing(1, "Иванов Иван Иванович"), _existing(2, "Уволенный Ушёл", phone="+79167770000")]
    diff = diff_list(entries, existing, removal_date=TODAY)
    assert [e.full_name for e in diff.added] == ["Новиков Николай"]
    assert [(c.person.id, c.changes) for c in diff.changed] == [(1, {"department": ("Sales", "IT")})]
    assert [p.id for p in diff.removed] == [2]


def test_a_removal_date_before_the_persons_start_is_refused() -> None:
    diff = diff_list([], [_existing(2, "Уволенный Ушёл", starts_on=date(2026, 7, 1))], removal_date=TODAY)
    assert diff.removed == []
    assert diff.problems[0].column == "removal_date"


def test_a_service_type_change_goes_through_an_application_r4_2() -> None:
    entries, _ = _validate(_row())
    diff = diff_list(entries, [_existing(1, "Иванов Иван Иванович", service_type="registry")], removal_date=TODAY)
    assert diff.problems and diff.problems[0].reason.startswith("R4.2")


@given(st.text(alphabet=st.sampled_from("АбвгдЁё -"), min_size=1, max_size=20))
def test_person_key_ignores_case_spacing_and_yo(name: str) -> None:
    birth = date(1990, 1, 1)
    assert person_key(name.upper(), birth) == person_key("  " + name.lower().replace("ё", "е") + " ", birth)
