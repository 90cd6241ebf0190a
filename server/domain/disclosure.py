"""Statistical disclosure control for what employers see (R12.5, checklist F1-F3).

A *publication* is a set of counts tied together by linear relations that anybody reading it
knows: the rows of a table add up to its total (``eq``), a sub-population is never larger than
its population (``le``). Hiding the small cells is not enough: the relations let a reader work a
hidden cell out from its neighbours, or narrow it to a few values. So a hidden cell counts as
protected only when, given every published value and every relation, it could still be anything
from 0 to k. That range is computed exactly, as two linear programs per hidden cell (HiGHS through
the highspy package), after each round of suppression; while a cell is exposed, one more cell next to it is
hidden and the audit runs again. The loop ends because every round hides at least one more cell,
and a publication with everything hidden reveals only that counts are not negative.

This is the classical audit of cell suppression (as in tau-Argus); choosing the fewest extra cells
optimally is NP-hard, so the choice here is greedy (the smallest visible cell that shares a
relation with the exposed one) and the audit, not the heuristic, is what guarantees protection.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import highspy
import numpy as np

CellId = tuple[str, ...]

# LP answers are floats: a bound within this of 0 or k counts as reaching it.
_TOLERANCE: Final = 1e-6


@dataclass(frozen=True, slots=True)
class Relation:
    """``sum(parts) == total`` (``eq``) or ``sum(parts) <= total`` (``le``), known to every reader."""

    total: CellId
    parts: tuple[CellId, ...]
    kind: Literal["eq", "le"] = "eq"

    def cells(self) -> tuple[CellId, ...]:
        """Every cell the relation mentions."""
        return (self.total, *self.parts)


@dataclass(frozen=True, slots=True)
class CellCount:
    """What a cell would publish (``count``) and how many distinct persons are behind it."""

    count: int
    persons: int


@dataclass(frozen=True, slots=True)
class Exposure:
    """A hidden cell whose possible values, from what is published, do not reach both 0 and k."""

    cell: CellId
    low: float
    high: float


def protection_ranges(
    published: Mapping[CellId, int],
    unknown: Iterable[CellId],
    relations: Iterable[Relation],
    targets: Iterable[CellId] | None = None,
    sides: Mapping[CellId, tuple[bool, bool]] | None = None,
) -> dict[CellId, tuple[float, float]]:
    """The range of values each target cell can take, given what is published.

    Args:
        published: Cells whose values a reader sees.
        unknown: Cells a reader does not see (hidden, or never published); each is >= 0.
        relations: The linear relations a reader knows.
        targets: Cells whose range is wanted (default: every unknown cell).
        sides: Per target, whether its (lowest, highest) is wanted; a side not wanted is
            reported as 0 (lowest) or ``inf`` (highest) without solving for it.

    Returns:
        ``{cell: (lowest, highest)}``; ``highest`` is ``inf`` when nothing bounds the cell.
    """
    unknown_set = set(unknown)
    rels = [r for r in relations if any(c in unknown_set for c in r.cells())]
    wanted = list(unknown_set if targets is None else targets)
    # Split the unknowns into independent groups: one small LP per group instead of one large one.
    parent: dict[CellId, CellId] = {cell: cell for cell in unknown_set}

    def find(cell: CellId) -> CellId:
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = parent[cell]
        return cell

    for relation in rels:
        members = [c for c in relation.cells() if c in unknown_set]
        for other in members[1:]:
            root_a, root_b = find(members[0]), find(other)
            if root_a != root_b:
                parent[root_a] = root_b
    groups: dict[CellId, list[CellId]] = defaultdict(list)
    for cell in unknown_set:
        groups[find(cell)].append(cell)
    group_relations: dict[CellId, list[Relation]] = defaultdict(list)
    for relation in rels:
        first = next(c for c in relation.cells() if c in unknown_set)
        group_relations[find(first)].append(relation)

    ranges: dict[CellId, tuple[float, float]] = {}
    by_group: dict[CellId, list[CellId]] = defaultdict(list)
    for cell in wanted:
        if cell not in unknown_set:
            raise ValueError(f"{cell} is not an unknown cell")
        by_group[find(cell)].append(cell)
    for root, cells in by_group.items():
        ranges.update(_group_ranges(groups[root], group_relations[root], published, cells, sides or {}))
    return ranges


def _group_ranges(
    variables: list[CellId],
    relations: list[Relation],
    published: Mapping[CellId, int],
    targets: list[CellId],
    sides: Mapping[CellId, tuple[bool, bool]],
) -> dict[CellId, tuple[float, float]]:
    if not relations:
        return {cell: (0.0, float("inf")) for cell in targets}
    index = {cell: i for i, cell in enumerate(variables)}
    starts: list[int] = [0]
    columns: list[int] = []
    values: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    for relation in relations:
        row: dict[int, float] = defaultdict(float)
        constant = 0.0
        for part in relation.parts:
            if part in index:
                row[index[part]] += 1.0
            else:
                constant += published[part]
        if relation.total in index:
            row[index[relation.total]] -= 1.0
        else:
            constant -= published[relation.total]
        # sum(parts) - total + constant  {== 0 | <= 0}
        for column, value in row.items():
            if value:
                columns.append(column)
                values.append(value)
        starts.append(len(columns))
        lower.append(-constant if relation.kind == "eq" else -highspy.kHighsInf)
        upper.append(-constant)
    # One model per group; each target only changes the objective, so HiGHS warm-starts from the
    # previous basis (two solves per hidden cell would otherwise dominate the run time).
    lp = highspy.HighsLp()
    lp.num_col_ = len(variables)
    lp.num_row_ = len(relations)
    lp.col_cost_ = np.zeros(len(variables))
    lp.col_lower_ = np.zeros(len(variables))
    lp.col_upper_ = np.full(len(variables), highspy.kHighsInf)
    lp.row_lower_ = np.array(lower)
    lp.row_upper_ = np.array(upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(columns, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(values)
    solver = _new_solver()
    solver.setOptionValue("presolve", "off")
    solver.passModel(lp)
    result: dict[CellId, tuple[float, float]] = {}
    for cell in targets:
        column = index[cell]
        want_low, want_high = sides.get(cell, (True, True))
        solver.changeColCost(column, 1.0)
        low = _optimum(solver, highspy.ObjSense.kMinimize) if want_low else 0.0
        high = _optimum(solver, highspy.ObjSense.kMaximize) if want_high else float("inf")
        solver.changeColCost(column, 0.0)
        result[cell] = (low, high)
    return result


_banner_shown = False


def _new_solver() -> highspy.Highs:
    """A silent HiGHS instance.

    HiGHS prints a copyright banner on the process's standard output the first time an instance
    is made, before any option can turn output off; the first one is made with that descriptor
    pointed at /dev/null so that the server's structured logs stay clean.
    """
    global _banner_shown  # noqa: PLW0603 - a once-per-process fact about the C++ library
    if _banner_shown:
        solver = highspy.Highs()  # type: ignore[no-untyped-call]
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            solver = highspy.Highs()  # type: ignore[no-untyped-call]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_shown = True
    solver.setOptionValue("output_flag", False)
    return solver


def _optimum(solver: highspy.Highs, sense: highspy.ObjSense) -> float:
    """The objective's optimum in the given sense; ``inf`` when a maximum is unbounded."""
    solver.changeObjectiveSense(sense)
    solver.run()
    status = solver.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return float(solver.getInfo().objective_function_value)
    if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return float("inf")
    # The true figures satisfy every relation, so an infeasible system is a programming error.
    raise ValueError(f"disclosure audit: linear program failed ({solver.modelStatusToString(status)})")


def audit(
    published: Mapping[CellId, int],
    hidden: Iterable[CellId],
    latent: Iterable[CellId],
    relations: Iterable[Relation],
    min_size: int,
    sensitive: Iterable[CellId] | None = None,
) -> list[Exposure]:
    """Every sensitive hidden cell whose possible values do not cover 0 to ``min_size`` (R12.5).

    A sensitive cell describes 1 to k-1 persons; it is protected when a reader can conclude
    neither that somebody is in it (its range reaches 0) nor that fewer than k are (it reaches k).
    Complementary cells describe larger groups: they are hidden only to cover the sensitive ones,
    and narrowing them singles nobody out.

    Args:
        published: Cells shown, with their values.
        hidden: Cells suppressed.
        latent: Cells that exist in the relations but are never published (not audited).
        relations: What a reader knows ties the cells together.
        min_size: k: the smallest group that may be shown.
        sensitive: The hidden cells that must stay protected (default: every hidden cell).
    """
    hidden_list = list(hidden)
    targets = hidden_list if sensitive is None else [c for c in sensitive if c in set(hidden_list)]
    ranges = protection_ranges(published, [*hidden_list, *latent], relations, targets=targets)
    return [
        Exposure(cell, low, high)
        for cell, (low, high) in ranges.items()
        if low > _TOLERANCE or high < min_size - _TOLERANCE
    ]


def suppress(
    cells: Mapping[CellId, CellCount],
    relations: Iterable[Relation],
    min_size: int,
    latent: Iterable[CellId] = (),
    last_resort: Iterable[CellId] = (),
) -> dict[CellId, int | None]:
    """Decide what to publish: every cell of 1..k-1 persons hidden, plus enough others (R12.5).

    Every cell of fewer than ``min_size`` persons is hidden, zeros included (primary suppression):
    were zeros shown, a hidden cell would say "somebody is here", and in a small segment that is
    already a statement about a person. Then more cells are hidden until :func:`audit` finds no
    exposed sensitive cell, one of 1 to k-1 persons (complementary suppression). Hidden zeros need
    no protection of their own (a zero may be known); they are the cover for the small ones.

    Args:
        cells: Every cell of the publication with its count and its number of persons.
        relations: The relations between the cells (and latent cells) that readers know.
        min_size: k.
        latent: Cells in the relations that are never published.
        last_resort: Cells hidden as complements only when nothing else near is left (the
            headline totals, so that suppression costs detail before it costs the big picture).

    Returns:
        Each cell's published value, or ``None`` where it is hidden.
    """
    if min_size < 1:
        raise ValueError("min_size is at least 1")
    relations = tuple(relations)
    latent_set = frozenset(latent)
    avoid = frozenset(last_resort)
    sensitive = {cell for cell, value in cells.items() if 0 < value.persons < min_size}
    hidden = {cell for cell, value in cells.items() if value.persons < min_size}
    neighbours: dict[CellId, list[Relation]] = defaultdict(list)
    for relation in relations:
        for cell in relation.cells():
            neighbours[cell].append(relation)
    # Hiding one more cell only ever widens every range (a fixed value becomes free), so a cell
    # found protected stays protected: each round re-examines only what was exposed, side by side.
    pending: dict[CellId, tuple[bool, bool]] = dict.fromkeys(sensitive, (True, True))
    while pending:
        # Hidden zeros enter the audit as known zeros: the audit then knows more than any reader,
        # so what it finds protected is protected (and the linear programs stay small).
        known = {cell: value.count for cell, value in cells.items() if cell not in hidden or value.count == 0}
        unknown = [cell for cell in hidden if cells[cell].count > 0]
        ranges = protection_ranges(known, [*unknown, *latent_set], relations, targets=pending, sides=pending)
        exposed: dict[CellId, tuple[bool, bool]] = {}
        for cell, (low, high) in ranges.items():
            want_low, want_high = pending[cell]
            low_open, high_open = want_low and low > _TOLERANCE, want_high and high < min_size - _TOLERANCE
            if low_open or high_open:
                exposed[cell] = (low_open, high_open)
        added: set[CellId] = set()
        for cell in sorted(exposed):
            # One complement per neighbourhood per round: a cell hidden for one exposure often
            # covers the next one too, and hiding both would cost detail for nothing.
            near = {c for relation in neighbours.get(cell, ()) for c in relation.cells()}
            if near & added:
                continue
            complement = _complement_for(cell, cells, hidden, neighbours, avoid)
            if complement is not None:
                hidden.add(complement)
                added.add(complement)
        if exposed and not added:
            # Nothing near the exposed cells is left to hide: hide everything (always safe).
            hidden = set(cells)
            break
        pending = exposed
    return {cell: None if cell in hidden else value.count for cell, value in cells.items()}


def _complement_for(
    exposed: CellId,
    cells: Mapping[CellId, CellCount],
    hidden: set[CellId],
    neighbours: Mapping[CellId, list[Relation]],
    avoid: frozenset[CellId],
) -> CellId | None:
    """The smallest visible cell that shares a relation with the exposed one (widening if none).

    Zeros are never chosen: a hidden zero adds no one to hide among. Cells in ``avoid`` are taken
    only when no other candidate is reachable at all.
    """
    frontier = {exposed}
    seen = {exposed}
    fallback: set[CellId] = set()
    while frontier:
        candidates: set[CellId] = set()
        next_frontier: set[CellId] = set()
        for cell in frontier:
            for relation in neighbours.get(cell, ()):
                for other in relation.cells():
                    if other in seen:
                        continue
                    seen.add(other)
                    if other in cells and other not in hidden and cells[other].count > 0:
                        (fallback if other in avoid else candidates).add(other)
                    else:
                        next_frontier.add(other)
        if candidates:
            return min(candidates, key=lambda c: (cells[c].count, c))
        frontier = next_frontier
    return min(fallback, key=lambda c: (cells[c].count, c)) if fallback else None
