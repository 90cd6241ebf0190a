# ruff: noqa: RUF001, RUF002 (Russian column headers and names are Cyrillic on purpose)
"""An employer's list of insured persons: validating its rows and comparing it with the records.

Pure functions on plain data. The service reads the file (CSV or XLSX) into rows of strings, loads
what it needs from the database (departments, the policyholder's policies, the persons already on
them) and passes everything here; nothing is written until the whole list validates, and the
report names each problem by row, column, value and reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Final

import phonenumbers

from server.domain.coverage_types import ServiceType

MAX_PROBLEMS: Final = 1000
"""The report lists at most this many problems (a wholly wrong file would otherwise list every cell)."""

# Canonical column -> the headers employers use for it (Russian and English, case-insensitive).
COLUMN_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "full_name": ("full_name", "full name", "name", "фио", "ф.и.о.", "сотрудник"),
    "birth_date": ("birth_date", "birth date", "date of birth", "дата рождения", "д.р."),
    "phone": ("phone", "phone number", "телефон", "моб. телефон", "мобильный телефон"),
    "city": ("city", "город"),
    "department": ("department", "подразделение", "отдел"),
    "program": ("program", "программа", "программа страхования"),
    "service_type": ("service_type", "service type", "тип обслуживания", "обслуживание"),
    "starts_on": ("starts_on", "start date", "start", "дата начала", "дата прикрепления"),
    "clinic": ("clinic", "clinic_id", "клиника", "поликлиника"),
    "policy": ("policy", "policy_number", "полис", "номер полиса"),
}
REQUIRED_COLUMNS: Final = ("full_name", "birth_date", "phone", "city", "program", "starts_on")
OPTIONAL_COLUMNS: Final = ("department", "service_type", "clinic", "policy")

SERVICE_TYPE_WORDS: Final[Mapping[str, ServiceType]] = {
    "dispatcher": ServiceType.DISPATCHER,
    "диспетчер": ServiceType.DISPATCHER,
    "пульт": ServiceType.DISPATCHER,
    "registry": ServiceType.REGISTRY,
    "регистратура": ServiceType.REGISTRY,
}

_NAME: Final = re.compile(r"[^\W\d_]+(?:[ '\-.][^\W\d_]*)*", re.UNICODE)
_RU_DATE: Final = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_ISO_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_SPACES: Final = re.compile(r"\s+")
_PHONE_PUNCTUATION: Final = re.compile(r"[\s()\-.]")
_RU_PHONE: Final = re.compile(r"(?:\+7|8|7)(\d{10})")
CHANGE_FIELDS: Final = ("phone", "city", "department", "policy_id", "starts_on")
"""What a new version of the list may change about a person (the service type changes only by R4)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one cell (or row) of the file cannot be loaded. ``row`` is the file's line (header = 1)."""

    row: int
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        """JSON form of the report line."""
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PolicyOption:
    """A policy of the policyholder that list rows may land on, found by its program's code."""

    id: int
    number: str
    program_code: str
    starts_on: date
    ends_on: date
    registry_offered: bool
    clinic_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One valid row: a person as the employer describes them, normalised (phone in E.164)."""

    row: int
    full_name: str
    birth_date: date
    phone: str
    city: str
    department: str | None
    policy_id: int
    service_type: ServiceType
    starts_on: date
    clinic_id: int | None

    @property
    def key(self) -> PersonKey:
        """Who this is, for comparing list versions."""
        return person_key(self.full_name, self.birth_date)


@dataclass(frozen=True, slots=True)
class ExistingPerson:
    """A person already on one of the policyholder's policies, as the comparison needs them."""

    id: int
    full_name: str
    birth_date: date
    phone: str
    city: str
    department: str | None
    policy_id: int
    service_type: str
    starts_on: date | None
    removed_on: date | None

    @property
    def key(self) -> PersonKey:
        """Who this is, for comparing list versions."""
        return person_key(self.full_name, self.birth_date)


PersonKey = tuple[str, date]


@dataclass(frozen=True, slots=True)
class PersonChange:
    """A person the new list describes differently: field -> (old, new)."""

    person: ExistingPerson
    entry: ListEntry
    changes: dict[str, tuple[object, object]]


@dataclass(frozen=True, slots=True)
class ListDiff:
    """What applying a list would do."""

    added: list[ListEntry] = field(default_factory=list)
    changed: list[PersonChange] = field(default_factory=list)
    removed: list[ExistingPerson] = field(default_factory=list)
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """Nothing to write: the same list again."""
        return not (self.added or self.changed or self.removed)


def person_key(full_name: str, birth_date: date) -> PersonKey:
    """The same person whatever the spacing, case or ё/е spelling of their name."""
    # str.split() and the regex's \s are the same Unicode whitespace; splitting is the faster of the two.
    name = " ".join(unicodedata.normalize("NFC", full_name).split()).casefold().replace("ё", "е")
    return name, birth_date


def map_header(header: Sequence[str]) -> tuple[dict[str, int], list[RowProblem]]:
    """Find the canonical columns in the header row.

    Returns:
        column -> index, and the problems (a missing required column, an unknown or repeated one).
    """
    lookup = {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
    found: dict[str, int] = {}
    problems: list[RowProblem] = []
    for index, raw in enumerate(header):
        title = _SPACES.sub(" ", raw.strip().lstrip("\ufeff")).casefold()
        if not title:
            continue
        column = lookup.get(title)
        if column is None:
            problems.append(RowProblem(1, raw, raw, "unknown column"))
        elif column in found:
            problems.append(RowProblem(1, raw, raw, f"column {column} appears twice"))
        else:
            found[column] = index
    for column in REQUIRED_COLUMNS:
        if column not in found:
            problems.append(RowProblem(1, column, "", "required column is missing"))
    return found, problems


def parse_day(raw: str) -> date | None:
    """``dd.mm.yyyy`` (Russian offices) or ISO ``yyyy-mm-dd``; ``None`` when it is neither or no such day."""
    text = raw.strip()
    match = _RU_DATE.fullmatch(text)
    try:
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
        match = _ISO_DATE.fullmatch(text[:10]) if len(text) in (10, 19) else None
        if match and (len(text) == 10 or text[10] in " T"):
            return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return None


def normalise_phone(raw: str, region: str = "RU") -> str | None:
    """The number in E.164 (``+79161234567``), or ``None`` when it is not a valid number.

    The common Russian spellings (``8 (916) 123-45-67``, ``+7 916 1234567``) skip the general parser (the
    slow part); their validity is decided by the library's own RU patterns, compiled once
    (``_ru_valid``), and anything those do not accept goes through ``phonenumbers.is_valid_number``.
    Everything else is parsed in full.
    """
    compact = _PHONE_PUNCTUATION.sub("", raw)
    match = _RU_PHONE.fullmatch(compact) if region == "RU" else None
    if match is not None:
        national = str(int(match[1]))
        if _ru_valid(national):
            return "+7" + national
        number = phonenumbers.PhoneNumber(country_code=7, national_number=int(national))
    else:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _compile_ru_validity() -> Callable[[str], bool]:
    """``phonenumbers.is_valid_number`` for +7 numbers of the RU region, from the library's metadata.

    The library calls a +7 number Russian when it starts with RU's leading digits (or, without them, when
    it has an RU type), and valid when it matches RU's general pattern and the pattern of any number type.
    The same test on patterns compiled once is some twenty times faster than the library's walk through
    its types. It only ever says "valid" where the library does (tests/domain compare the two on random
    numbers); anything else is left to the library.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("RU")
    if metadata is None or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(7, ("",))[0] != "RU":
        return lambda _national: False
    general = metadata.general_desc
    types = [
        metadata.mobile,  # first: nearly every listed phone is a mobile one
        metadata.fixed_line,
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    ]
    if general is None or not general.national_number_pattern:
        return lambda _national: False

    def compiled(desc: phonenumbers.PhoneNumberDesc) -> tuple[frozenset[int], re.Pattern[str]]:
        return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern or "")

    general_lengths, general_pattern = compiled(general)
    patterns = [compiled(desc) for desc in types if desc is not None and desc.national_number_pattern]
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None

    def valid(national: str) -> bool:
        if leading is not None and leading.match(national) is None:
            return False
        if general_lengths and len(national) not in general_lengths:
            return False
        if general_pattern.fullmatch(national) is None:
            return False
        size = len(national)
        return any((not lengths or size in lengths) and pattern.fullmatch(national) for lengths, pattern in patterns)

    return valid


_ru_valid: Final = _compile_ru_validity()


def clean_text(raw: str) -> str:
    """A cell as text: control characters dropped, spaces collapsed. Formulas stay the text they are."""
    if raw.isprintable():  # the usual cell: no control characters to drop (checked in C, fast)
        text = raw.strip()
        return _SPACES.sub(" ", text) if "  " in text else text
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C" or ch == " ")
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True, slots=True)
class ListContext:
    """What validation compares rows with."""

    today: date
    departments: frozenset[str]
    policies: Sequence[PolicyOption]
    other_policy_numbers: frozenset[str] = frozenset()
    """Policy numbers that exist but belong to another policyholder (a row naming one is refused)."""


def validate_rows(
    rows: Iterable[tuple[int, Sequence[str]]], columns: Mapping[str, int], context: ListContext
) -> tuple[list[ListEntry], list[RowProblem]]:
    """Check every row; collect every problem rather than stopping at the first.

    One pass of plain Python per row (a list holds 100,000): dates, phones and the policy a row lands
    on repeat across rows and are worked out once per distinct value (local caches, so nothing is kept
    between imports).

    Args:
        rows: ``(file line number, cells)``.
        columns: From ``map_header``.
        context: Departments, policies and today.

    Returns:
        The valid entries and the problems; the list may be applied only when there are none.
    """
    by_code: dict[str, list[PolicyOption]] = {}
    for option in context.policies:
        by_code.setdefault(option.program_code.casefold(), []).append(option)
    by_number = {option.number: option for option in context.policies}
    departments = {name.casefold(): name for name in context.departments}
    entries: list[ListEntry] = []
    problems: list[RowProblem] = []
    first_row: dict[PersonKey, int] = {}
    days: dict[str, date | None] = {}
    phones: dict[str, str | None] = {}
    policies: dict[tuple[str, str, date | None], tuple[PolicyOption | None, list[tuple[str, str, str]]]] = {}
    today = context.today
    i_name, i_birth, i_phone, i_city = (columns.get(c, -1) for c in ("full_name", "birth_date", "phone", "city"))
    i_department, i_start, i_type = (columns.get(c, -1) for c in ("department", "starts_on", "service_type"))
    i_program, i_policy, i_clinic = (columns.get(c, -1) for c in ("program", "policy", "clinic"))
    dispatcher, registry = ServiceType.DISPATCHER, ServiceType.REGISTRY

    for line, raw_cells in rows:
        joined = "".join(raw_cells)
        if not joined.strip():
            continue
        # The usual row has no control characters: one C-level check for the row, then only strips.
        if joined.isprintable():
            cells = [c.strip() if "  " not in c else " ".join(c.split()) for c in raw_cells]
        else:
            cells = [clean_text(c) for c in raw_cells]
        width = len(cells)

        def cell(index: int) -> str:
            return cells[index] if 0 <= index < width else ""  # noqa: B023

        row_problems: list[RowProblem] = []
        bad = row_problems.append

        full_name = cell(i_name)
        if not full_name:
            bad(RowProblem(line, "full_name", full_name, "required"))
        elif len(full_name) > 300 or _NAME.fullmatch(full_name) is None:
            bad(
                RowProblem(
                    line, "full_name", full_name, "not a person's name (letters, spaces, hyphens, apostrophes only)"
                )
            )

        raw_birth = cell(i_birth)
        birth = days.get(raw_birth, _MISSING_DAY)
        if birth is _MISSING_DAY:
            birth = days[raw_birth] = parse_day(raw_birth)
        if not raw_birth:
            bad(RowProblem(line, "birth_date", raw_birth, "required"))
        elif birth is None:
            bad(RowProblem(line, "birth_date", raw_birth, "not a date (dd.mm.yyyy)"))
        elif birth > today:
            bad(RowProblem(line, "birth_date", raw_birth, "in the future"))
        elif birth.year < 1900:
            bad(RowProblem(line, "birth_date", raw_birth, "before 1900"))

        raw_phone = cell(i_phone)
        phone: str | None = None
        if not raw_phone:
            bad(RowProblem(line, "phone", raw_phone, "required"))
        else:
            phone = phones.get(raw_phone, _MISSING_PHONE)
            if phone is _MISSING_PHONE:
                phone = phones[raw_phone] = normalise_phone(raw_phone)
            if phone is None:
                bad(RowProblem(line, "phone", raw_phone, "not a valid phone number"))

        city = cell(i_city)
        if not city:
            bad(RowProblem(line, "city", city, "required"))
        elif len(city) > 100:
            bad(RowProblem(line, "city", city, "longer than 100 characters"))

        raw_department = cell(i_department)
        department: str | None = None
        if raw_department:
            department = departments.get(raw_department.casefold())
            if department is None:
                bad(RowProblem(line, "department", raw_department, "unknown department of this policyholder"))

        raw_start = cell(i_start)
        starts_on = days.get(raw_start, _MISSING_DAY)
        if starts_on is _MISSING_DAY:
            starts_on = days[raw_start] = parse_day(raw_start)
        if not raw_start:
            bad(RowProblem(line, "starts_on", raw_start, "required"))
        elif starts_on is None:
            bad(RowProblem(line, "starts_on", raw_start, "not a date (dd.mm.yyyy)"))

        raw_type = cell(i_type)
        service_type = SERVICE_TYPE_WORDS.get(raw_type.casefold()) if raw_type else dispatcher
        if service_type is None:
            bad(RowProblem(line, "service_type", raw_type, "not a service type (dispatcher or registry)"))

        program, policy_number = cell(i_program), cell(i_policy)
        known = policies.get((program, policy_number, starts_on))
        if known is None:
            found: list[tuple[str, str, str]] = []
            chosen = _policy_of_row(
                program,
                policy_number,
                starts_on,
                by_code,
                by_number,
                context,
                lambda column, value, reason: found.append((column, value, reason)),  # noqa: B023
            )
            known = policies[(program, policy_number, starts_on)] = (chosen, found)
        policy, policy_problems = known
        for column, value, reason in policy_problems:
            bad(RowProblem(line, column, value, reason))

        clinic_id: int | None = None
        raw_clinic = cell(i_clinic)
        if raw_clinic:
            if not raw_clinic.isdigit() or len(raw_clinic) > 18:
                bad(RowProblem(line, "clinic", raw_clinic, "not a clinic id"))
            else:
                clinic_id = int(raw_clinic)
                if policy is not None and clinic_id not in policy.clinic_ids:
                    bad(RowProblem(line, "clinic", raw_clinic, "R2.3: the clinic is not on the program's list"))
        if service_type is registry and policy is not None:
            if not policy.registry_offered:
                bad(RowProblem(line, "service_type", raw_type, "the program does not offer registry service"))
            elif clinic_id is None:
                bad(RowProblem(line, "clinic", raw_clinic, "R1.3: registry service needs exactly one attached clinic"))

        if birth is not None and full_name and not row_problems:
            key = person_key(full_name, birth)
            earlier = first_row.get(key)
            if earlier is not None:
                bad(
                    RowProblem(
                        line,
                        "full_name",
                        full_name,
                        f"the same person (name and birth date) is already on row {earlier}",
                    )
                )
            else:
                first_row[key] = line

        if row_problems:
            problems.extend(row_problems)
            continue
        assert birth is not None and phone is not None and starts_on is not None
        assert service_type is not None and policy is not None
        entries.append(
            ListEntry(
                row=line,
                full_name=full_name,
                birth_date=birth,
                phone=phone,
                city=city,
                department=department,
                policy_id=policy.id,
                service_type=service_type,
                starts_on=starts_on,
                clinic_id=clinic_id,
            )
        )
    return entries, problems


_MISSING_DAY: Final = date.min  # cache sentinels (never a parsed value: parse_day refuses years before 1900 later)
_MISSING_PHONE: Final = ""


def _policy_of_row(
    program: str,
    policy_number: str,
    starts_on: date | None,
    by_code: Mapping[str, list[PolicyOption]],
    by_number: Mapping[str, PolicyOption],
    context: ListContext,
    bad: Callable[[str, str, str], None],
) -> PolicyOption | None:
    """The policy a row lands on: the named one, else this program's policy in force on the start date."""
    if not program:
        bad("program", program, "required")
        return None
    options = by_code.get(program.casefold())
    if not options:
        bad("program", program, "no policy of this policyholder has this program")
        return None
    if policy_number:
        if policy_number in context.other_policy_numbers:
            bad("policy", policy_number, "the policy belongs to another policyholder")
            return None
        chosen = by_number.get(policy_number)
        if chosen is None:
            bad("policy", policy_number, "no such policy")
            return None
        if chosen.program_code.casefold() != program.casefold():
            bad("program", program, f"policy {policy_number} has program {chosen.program_code}")
            return None
        candidates = [chosen]
    else:
        candidates = options
    if starts_on is None:
        return None
    for option in candidates:
        if option.starts_on <= starts_on <= option.ends_on:
            return option
    periods = ", ".join(f"{o.number} {o.starts_on.isoformat()}..{o.ends_on.isoformat()}" for o in candidates)
    bad("starts_on", starts_on.strftime("%d.%m.%Y"), f"outside every policy period of the program ({periods})")
    return None


def diff_list(
    entries: Sequence[ListEntry],
    existing: Iterable[ExistingPerson],
    *,
    removal_date: date,
    policy_ids: frozenset[int] | None = None,
) -> ListDiff:
    """Compare a valid list with the persons on the policyholder's policies.

    A person in the records but not in the list is removed on ``removal_date``; one removed earlier
    and listed again comes back. Changing the service type is refused (it goes through R4.2).

    Args:
        entries: From ``validate_rows`` (no problems).
        existing: Persons on the policyholder's policies (removed ones included).
        removal_date: The day cover ends for those no longer listed.
        policy_ids: Only persons on these policies are compared (``None``: all of ``existing``).
    """
    current: dict[PersonKey, ExistingPerson] = {}
    for record in existing:
        if policy_ids is not None and record.policy_id not in policy_ids:
            continue
        known = current.get(record.key)
        # With several records of one person (e.g. removed and re-added), compare with the newest.
        if known is None or record.id > known.id:
            current[record.key] = record
    diff = ListDiff()
    seen: set[PersonKey] = set()
    unchanged = 0
    for entry in entries:
        seen.add(entry.key)
        person = current.get(entry.key)
        if person is None:
            diff.added.append(entry)
            continue
        if person.service_type != entry.service_type.value and person.removed_on is None:
            diff.problems.append(
                RowProblem(
                    entry.row,
                    "service_type",
                    entry.service_type.value,
                    f"R4.2: the service type is {person.service_type}; it changes only by an application "
                    "and additional agreement",
                )
            )
            continue
        changes = _changes(person, entry)
        if person.removed_on is not None:
            changes["removed_on"] = (person.removed_on, None)
            if person.service_type != entry.service_type.value:
                changes["service_type"] = (person.service_type, entry.service_type.value)
        if changes:
            diff.changed.append(PersonChange(person, entry, changes))
        else:
            unchanged += 1
    for key, person in current.items():
        if key in seen or person.removed_on is not None:
            continue
        if person.starts_on is not None and removal_date < person.starts_on:
            diff.problems.append(
                RowProblem(
                    0,
                    "removal_date",
                    removal_date.strftime("%d.%m.%Y"),
                    f"before {person.full_name}'s cover starts on {person.starts_on.strftime('%d.%m.%Y')}",
                )
            )
            continue
        diff.removed.append(person)
    return ListDiff(diff.added, diff.changed, diff.removed, unchanged, diff.problems)


def _changes(person: ExistingPerson, entry: ListEntry) -> dict[str, tuple[object, object]]:
    changes: dict[str, tuple[object, object]] = {}
    for name in CHANGE_FIELDS:
        old = getattr(person, name)
        new = getattr(entry, name)
        if old != new:
            changes[name] = (old, new)
    return changes


def jsonable(value: object) -> object:
    """Dates as ISO strings and money as strings, for the change history (a JSON column)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def removed_by(removed_on: date | None, today: date) -> bool:
    """Whether a person removed from the employer's list on ``removed_on`` is without cover on ``today``."""
    return removed_on is not None and removed_on <= today
