"""What corporate HR may be shown: fixed periods, fixed tables, and their suppression (R12, R12.5).

Product decisions (README, "Corporate HR"):
- Periods are calendar months only, published once closed: from the 2nd day after the month's
  end (Moscow time), so that a consultation that started on the last evening has ended. A
  published month is frozen (a snapshot) and never recomputed, so asking again or later reveals
  nothing new (no differencing across dates, checklist F2).
- ISO weeks are a breakdown *inside* a month: a week that spans two months appears in each with
  its days in that month. A week is asked for by its ISO name (``2026-W48``) and answered from the
  frozen snapshots of its month(s), never computed on its own.
- Every table of a month is one publication: its cells are tied by sums (a breakdown adds up to
  the total, a two-way table to both margins, diagnosed consultations are a part of all
  consultations) and suppressed together (server/domain/disclosure.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from server.domain.disclosure import CellCount, CellId, Relation, suppress
from server.domain.errors import InvalidInput

# The U.S. CMS cell-size suppression policy: no cell of 1 to 10 persons (checklist F1).
DEFAULT_MIN_CELL: Final = 11
# Months before this many days after their end are still open.
PUBLICATION_LAG_DAYS: Final = 1
# How far back the dashboard goes: a policy year and the one before it.
MAX_MONTHS_BACK: Final = 24

CHANNELS: Final = ("text", "audio", "video")
SERVICE_TYPES: Final = ("dispatcher", "registry")
# Age on the month's first day.
AGE_BANDS: Final = ("<25", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_BAND_FLOORS: Final = (0, 25, 35, 45, 55, 65)

ERR_INVALID_PERIOD: Final = "invalid_period"
ERR_PERIOD_NOT_PUBLISHED: Final = "period_not_published"

_MONTH: Final = re.compile(r"(\d{4})-(\d{2})")
_WEEK: Final = re.compile(r"(\d{4})-W(\d{2})")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, the only unit HR figures are published in."""

    year: int
    month: int

    @property
    def key(self) -> str:
        """``2026-11``."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        """The month's first day."""
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        """The month's last day."""
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Month:
        """The month after this one."""
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def previous(self) -> Month:
        """The month before this one."""
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def weeks(self) -> tuple[str, ...]:
        """ISO weeks with at least one day in this month, in order (``2026-W44`` ...)."""
        labels: list[str] = []
        day = self.first_day
        while day <= self.last_day:
            label = iso_week_label(day)
            if label not in labels:
                labels.append(label)
            day += timedelta(days=1)
        return tuple(labels)

    @classmethod
    def of(cls, day: date) -> Month:
        """The month a day belongs to."""
        return cls(day.year, day.month)


@dataclass(frozen=True, slots=True)
class IsoWeek:
    """An ISO 8601 week: asked for by name, answered from the month snapshots it falls in."""

    year: int
    week: int

    @property
    def key(self) -> str:
        """``2026-W48``."""
        return f"{self.year:04d}-W{self.week:02d}"

    @property
    def first_day(self) -> date:
        """Its Monday."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def last_day(self) -> date:
        """Its Sunday."""
        return date.fromisocalendar(self.year, self.week, 7)

    def months(self) -> tuple[Month, ...]:
        """The one or two months its days fall in."""
        first, last = Month.of(self.first_day), Month.of(self.last_day)
        return (first,) if first == last else (first, last)


def iso_week_label(day: date) -> str:
    """The ISO week a day belongs to, by name."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def parse_period(text: str) -> Month | IsoWeek:
    """A period as HR may ask for it: ``YYYY-MM`` or ``YYYY-Www``, nothing else (checklist F2).

    Raises:
        InvalidInput: ``invalid_period`` for anything else (date ranges, days, quarters, years).
    """
    if month := _MONTH.fullmatch(text):
        year, number = int(month.group(1)), int(month.group(2))
        if 2000 <= year <= 2100 and 1 <= number <= 12:
            return Month(year, number)
    elif week := _WEEK.fullmatch(text):
        year, number = int(week.group(1)), int(week.group(2))
        if 2000 <= year <= 2100:
            try:
                date.fromisocalendar(year, number, 1)
            except ValueError:
                pass
            else:
                return IsoWeek(year, number)
    raise InvalidInput(
        "a period is a calendar month (2026-11) or an ISO week (2026-W48)",
        code=ERR_INVALID_PERIOD,
        details={"field": "period"},
    )


def published_months(today: date, since: date | None = None) -> tuple[Month, ...]:
    """Months HR may see on ``today``, newest first: closed, within MAX_MONTHS_BACK, from ``since``."""
    latest = Month.of(today).previous()
    if not is_published(latest, today):
        latest = latest.previous()
    months: list[Month] = []
    month = latest
    while len(months) < MAX_MONTHS_BACK and (since is None or month.last_day >= since):
        months.append(month)
        month = month.previous()
    return tuple(months)


def is_published(month: Month, today: date) -> bool:
    """A month is shown from PUBLICATION_LAG_DAYS + 1 days after its end (so it is frozen complete)."""
    return today > month.last_day + timedelta(days=PUBLICATION_LAG_DAYS)


def require_published(period: Month | IsoWeek, today: date, since: date | None = None) -> tuple[Month, ...]:
    """The month snapshots that answer ``period``, or a 4xx that says only that it is not available.

    Raises:
        InvalidInput: ``period_not_published`` (open, in the future, or older than the dashboard keeps).
    """
    months = (period,) if isinstance(period, Month) else period.months()
    allowed = set(published_months(today, since))
    if not all(month in allowed for month in months):
        raise InvalidInput(
            "this period is not published: months are shown once closed, for the last 24 months",
            code=ERR_PERIOD_NOT_PUBLISHED,
            details={"field": "period"},
        )
    return months


def age_band(birth_date: date, on: date) -> str:
    """The age band of a person on a day."""
    age = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    band = AGE_BANDS[0]
    for name, floor in zip(AGE_BANDS, _AGE_BAND_FLOORS, strict=True):
        if age >= floor:
            band = name
    return band


def age_band_birth_ranges(on: date) -> tuple[tuple[str, date | None, date | None], ...]:
    """Each age band as a birth-date range on ``on``: (band, born after, born on or before).

    Lets the database put people into bands with a plain CASE on the birth date.
    """
    ranges: list[tuple[str, date | None, date | None]] = []
    for i, name in enumerate(AGE_BANDS):
        floor = _AGE_BAND_FLOORS[i]
        latest_birth = _years_before(on, floor)  # aged at least `floor` on `on`
        ceiling = _AGE_BAND_FLOORS[i + 1] if i + 1 < len(AGE_BANDS) else None
        born_after = _years_before(on, ceiling) if ceiling is not None else None
        ranges.append((name, born_after, latest_birth))
    return tuple(ranges)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# --- The tables of a month ---------------------------------------------------------------------

Dims = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One published table: a population counted by some dimensions."""

    name: str
    population: str  # consultations | diagnoses | staff
    dims: Dims


TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec("consultations", "consultations", ()),
    TableSpec("consultations_by_channel", "consultations", ("channel",)),
    TableSpec("consultations_by_specialty", "consultations", ("specialty",)),
    TableSpec("consultations_by_department", "consultations", ("department",)),
    TableSpec("consultations_by_age_band", "consultations", ("age_band",)),
    TableSpec("consultations_by_week", "consultations", ("week",)),
    TableSpec("consultations_by_week_and_channel", "consultations", ("week", "channel")),
    TableSpec("consultations_by_department_and_channel", "consultations", ("department", "channel")),
    TableSpec("consultations_by_department_and_specialty", "consultations", ("department", "specialty")),
    TableSpec("consultations_by_age_band_and_channel", "consultations", ("age_band", "channel")),
    TableSpec("consultations_by_age_band_and_specialty", "consultations", ("age_band", "specialty")),
    TableSpec("diagnoses", "diagnoses", ()),
    TableSpec("diagnoses_by_chapter", "diagnoses", ("chapter",)),
    TableSpec("prevention_needs", "diagnoses", ("department", "age_band", "chapter")),
    TableSpec("staff", "staff", ()),
    TableSpec("staff_by_service_type", "staff", ("service_type",)),
    TableSpec("staff_by_department", "staff", ("department",)),
    TableSpec("staff_by_age_band", "staff", ("age_band",)),
)
TABLES_BY_NAME: Final = {spec.name: spec for spec in TABLES}
# Company-wide figures that are parts of a population total (each <= it).
SCALARS: Final = {
    "persons_consulting": "consultations",
    "referrals": "consultations",
    "letters_of_guarantee": "consultations",
}
# Filters HR may apply (a fixed list, checklist F2); each slice is a row of the two-way tables.
FILTERS: Final = ("department", "age_band")
# Employees with no department on the insurer's list are counted under this label.
NO_DEPARTMENT: Final = "(no department)"


@dataclass(frozen=True, slots=True)
class MonthCounts:
    """A month's true counts, as the repository computes them (never shown as they are).

    ``cubes[table_name][values]`` holds the count and persons of one cell; a missing cell is 0.
    ``domains`` lists every value of each dimension (so that zeros are cells too).
    """

    month: Month
    domains: Mapping[str, tuple[str, ...]]
    cubes: Mapping[str, Mapping[tuple[str, ...], CellCount]]
    scalars: Mapping[str, CellCount]


@dataclass(frozen=True, slots=True)
class PublishedMonth:
    """A month's tables after suppression: ``None`` marks a hidden cell."""

    month: Month
    min_cell: int
    domains: Mapping[str, tuple[str, ...]]
    tables: Mapping[str, Mapping[tuple[str, ...], int | None]]
    scalars: Mapping[str, int | None]


def cell_id(table: str, values: tuple[str, ...]) -> CellId:
    """The identity of one cell in the disclosure model."""
    return (table, *values)


def month_relations(domains: Mapping[str, tuple[str, ...]]) -> tuple[Relation, ...]:
    """Every sum a reader knows holds between the month's tables and figures.

    Within a population, each table adds up to every coarser table (a two-way table to both of
    its margins and to the total). Diagnosed consultations are a part of all consultations
    (department by department and age band by age band), and the company-wide figures are parts
    of the consultation total.
    """
    relations: list[Relation] = []
    for fine, coarse in itertools.permutations(TABLES, 2):
        if fine.population != coarse.population or not set(coarse.dims) < set(fine.dims):
            continue
        for coarse_values in _combinations(coarse.dims, domains):
            fixed = dict(zip(coarse.dims, coarse_values, strict=True))
            parts = tuple(
                cell_id(fine.name, values)
                for values in _combinations(fine.dims, domains)
                if all(fixed[d] == v for d, v in zip(fine.dims, values, strict=True) if d in fixed)
            )
            relations.append(Relation(cell_id(coarse.name, coarse_values), parts))
    needs = TABLES_BY_NAME["prevention_needs"]
    for dim in ("department", "age_band"):
        by = TABLES_BY_NAME[f"consultations_by_{dim}"]
        position = needs.dims.index(dim)
        for value in domains[dim]:
            parts = tuple(
                cell_id(needs.name, values)
                for values in _combinations(needs.dims, domains)
                if values[position] == value
            )
            relations.append(Relation(cell_id(by.name, (value,)), parts, "le"))
    relations.append(Relation(cell_id("consultations", ()), (cell_id("diagnoses", ()),), "le"))
    for scalar, population in SCALARS.items():
        relations.append(Relation(cell_id(population, ()), (cell_id(scalar, ()),), "le"))
    return tuple(relations)


def _combinations(dims: Dims, domains: Mapping[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(values) for values in itertools.product(*(domains[d] for d in dims))]


def publish_month(counts: MonthCounts, min_cell: int = DEFAULT_MIN_CELL) -> PublishedMonth:
    """Suppress a month's tables together so that no group of 1..k-1 persons can be seen (R12.5).

    Args:
        counts: The true counts.
        min_cell: k (DEFAULT_MIN_CELL or more).

    Returns:
        The publishable month: the same cells, some hidden.
    """
    if min_cell < DEFAULT_MIN_CELL:
        raise ValueError(f"the smallest cell shown is at least {DEFAULT_MIN_CELL} persons")
    cells: dict[CellId, CellCount] = {}
    for spec in TABLES:
        cube = counts.cubes.get(spec.name, {})
        for values in _combinations(spec.dims, counts.domains):
            cells[cell_id(spec.name, values)] = cube.get(values, CellCount(0, 0))
    for name in SCALARS:
        cells[cell_id(name, ())] = counts.scalars.get(name, CellCount(0, 0))
    headline = [cell_id(spec.name, ()) for spec in TABLES if not spec.dims]
    decided = suppress(cells, month_relations(counts.domains), min_cell, last_resort=headline)
    tables = {
        spec.name: {values: decided[cell_id(spec.name, values)] for values in _combinations(spec.dims, counts.domains)}
        for spec in TABLES
    }
    scalars = {name: decided[cell_id(name, ())] for name in SCALARS}
    return PublishedMonth(counts.month, min_cell, dict(counts.domains), tables, scalars)
