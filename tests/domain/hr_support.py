"""Synthetic companies for the HR disclosure tests, and an independent re-identification audit.

The audit is written from the published tables alone, with scipy's ``linprog``: it does not use
server/domain/disclosure.py, so a mistake there cannot hide itself (R12.5).
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from server.domain.disclosure import CellCount
from server.domain.hr_reports import (
    AGE_BANDS,
    CHANNELS,
    SCALARS,
    SERVICE_TYPES,
    TABLES,
    Month,
    MonthCounts,
    PublishedMonth,
)

SPECIALTIES = ("general_practice", "cardiology", "dermatology")
CHAPTERS = ("IX", "X", "XI", "XIII")


@dataclass(frozen=True)
class Record:
    """One consultation as the tests generate it."""

    person: int
    department: str
    age_band: str
    channel: str
    specialty: str
    week: str
    chapter: str | None
    referral: bool


def company(
    seed: int, persons: int, consultations: int, departments: tuple[str, ...]
) -> tuple[MonthCounts, list[Record]]:
    """A random company-month: its true counts and the records they come from."""
    rng = random.Random(seed)
    month = Month(2026, 11)
    staff = [(i, rng.choice(departments), rng.choice(AGE_BANDS), rng.choice(SERVICE_TYPES)) for i in range(persons)]
    records = []
    for _ in range(consultations):
        person, department, band, _ = rng.choice(staff)
        records.append(
            Record(
                person,
                department,
                band,
                rng.choice(CHANNELS),
                rng.choice(SPECIALTIES),
                rng.choice(month.weeks()),
                rng.choice(CHAPTERS) if rng.random() < 0.8 else None,
                rng.random() < 0.2,
            )
        )
    return counts_of(month, departments, staff, records), records


def counts_of(
    month: Month,
    departments: tuple[str, ...],
    staff: list[tuple[int, str, str, str]],
    records: list[Record],
) -> MonthCounts:
    """What the repository would compute, computed here from the records directly."""
    domains = {
        "channel": CHANNELS,
        "specialty": SPECIALTIES,
        "department": departments,
        "age_band": AGE_BANDS,
        "week": month.weeks(),
        "chapter": CHAPTERS,
        "service_type": SERVICE_TYPES,
    }
    cubes: dict[str, dict[tuple[str, ...], CellCount]] = {}
    for spec in TABLES:
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        if spec.population == "staff":
            for person, department, band, service_type in staff:
                row = {"department": department, "age_band": band, "service_type": service_type}
                groups[tuple(row[d] for d in spec.dims)].append(person)
        else:
            for record in records:
                if spec.population == "diagnoses" and record.chapter is None:
                    continue
                groups[tuple(getattr(record, d) for d in spec.dims)].append(record.person)
        cubes[spec.name] = {key: CellCount(len(people), len(set(people))) for key, people in groups.items()}
    consulting = {r.person for r in records}
    referred = [r.person for r in records if r.referral]
    scalars = {
        "persons_consulting": CellCount(len(consulting), len(consulting)),
        "referrals": CellCount(len(referred), len(set(referred))),
        "letters_of_guarantee": CellCount(len(referred) // 2, len(set(referred[: len(referred) // 2]))),
    }
    return MonthCounts(month, domains, cubes, scalars)


def independent_audit(published: PublishedMonth, k: int, truth: MonthCounts) -> list[tuple[Any, float, float]]:
    """Every hidden cell of 1..k-1 persons whose feasible range, from the published figures alone,
    misses 0 or k (``truth`` says which hidden cells are those; the reader never sees it).

    The constraints are what a reader knows: each table adds up to each coarser table of the same
    population, diagnosed consultations are part of consultations (by department, by age band,
    in total), company-wide figures are at most the consultation total, and nothing is negative.
    """
    domains = published.domains
    cells: dict[tuple[Any, ...], int | None] = {}
    for spec in TABLES:
        for values, value in published.tables[spec.name].items():
            cells[(spec.name, *values)] = value
    for name, value in published.scalars.items():
        cells[(name,)] = value
    unknown = [cell for cell, value in cells.items() if value is None]
    column = {cell: i for i, cell in enumerate(unknown)}
    eq_rows: list[tuple[dict[int, float], float]] = []
    ub_rows: list[tuple[dict[int, float], float]] = []

    def add(total: tuple[Any, ...], parts: list[tuple[Any, ...]], equal: bool) -> None:
        row: dict[int, float] = defaultdict(float)
        rhs = 0.0
        for cell, sign in [(total, -1.0)] + [(p, 1.0) for p in parts]:
            if cells[cell] is None:
                row[column[cell]] += sign
            else:
                rhs -= sign * cells[cell]  # type: ignore[operator]
        if row:
            (eq_rows if equal else ub_rows).append((row, rhs))

    for fine in TABLES:
        for coarse in TABLES:
            if fine.population != coarse.population or not set(coarse.dims) < set(fine.dims):
                continue
            for coarse_values in itertools.product(*(domains[d] for d in coarse.dims)):
                fixed = dict(zip(coarse.dims, coarse_values, strict=True))
                parts = [
                    (fine.name, *values)
                    for values in itertools.product(*(domains[d] for d in fine.dims))
                    if all(fixed.get(d, v) == v for d, v in zip(fine.dims, values, strict=True))
                ]
                add((coarse.name, *coarse_values), parts, True)
    needs_dims = ("department", "age_band", "chapter")
    for position, dim in enumerate(needs_dims[:2]):
        for value in domains[dim]:
            parts = [
                ("prevention_needs", *values)
                for values in itertools.product(*(domains[d] for d in needs_dims))
                if values[position] == value
            ]
            add((f"consultations_by_{dim}", value), parts, False)
    add(("consultations",), [("diagnoses",)], False)
    for name in SCALARS:
        add(("consultations",), [(name,)], False)

    def matrix(rows: list[tuple[dict[int, float], float]]) -> tuple[Any, Any]:
        if not rows:
            return None, None
        data, row_index, col_index = [], [], []
        for i, (row, _) in enumerate(rows):
            for j, value in row.items():
                data.append(value)
                row_index.append(i)
                col_index.append(j)
        sparse = csr_matrix((data, (row_index, col_index)), shape=(len(rows), len(unknown)))
        return sparse, [rhs for _, rhs in rows]

    a_eq, b_eq = matrix(eq_rows)
    a_ub, b_ub = matrix(ub_rows)
    sensitive = set()
    for spec in TABLES:
        for values, count in truth.cubes.get(spec.name, {}).items():
            if 0 < count.persons < k:
                sensitive.add((spec.name, *values))
    for name, count in truth.scalars.items():
        if 0 < count.persons < k:
            sensitive.add((name,))
    persons = {
        (spec.name, *values): n.persons for spec in TABLES for values, n in truth.cubes.get(spec.name, {}).items()
    }
    persons.update({(name,): n.persons for name, n in truth.scalars.items()})
    small = [cell for cell, value in cells.items() if value is not None and persons.get(cell, 0) < k]
    assert not small, f"cells of fewer than {k} persons (zeros included) published: {small[:5]}"
    exposed = []
    for cell in unknown:
        if cell not in sensitive:
            continue
        objective = [0.0] * len(unknown)
        objective[column[cell]] = 1.0
        low = linprog(objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        objective[column[cell]] = -1.0
        high = linprog(objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        assert low.status == 0, low.message
        low_value = low.fun
        high_value = float("inf") if high.status == 3 else -high.fun
        if low_value > 1e-6 or high_value < k - 1e-6:
            exposed.append((cell, low_value, high_value))
    return exposed
