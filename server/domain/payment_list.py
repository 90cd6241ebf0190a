"""A bank's file of received payments: each row checked before anything is bundled (R7.1).

Pure: rows of text in, entries and per-row problems out; the service bundles the entries through the
payments use case and adds its refusals (wrong amount, policy ended: R7.3) to the same report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final

from server.domain.insured_list import RowProblem, clean_text, parse_day

PAYMENT_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "policy_number": ("policy_number", "policy", "номер полиса", "полис"),
    "amount": ("amount", "sum", "сумма"),
    "date": ("date", "paid_on", "bundled_on", "дата", "дата платежа"),
    "reference": ("reference", "payment_reference", "референс", "номер платежа", "номер платёжного поручения"),
}
OPTIONAL_PAYMENT_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    # What the payment says it pays for: the policy number or an additional agreement's number (R7.6).
    "pays_for": ("pays_for", "purpose", "schedule", "назначение", "назначение платежа"),
}
_AMOUNT: Final = re.compile(r"\d{1,12}(?:[.,]\d{1,2})?")
_REFERENCE: Final = re.compile(r"[\w./#-]{1,80}", re.UNICODE)


@dataclass(frozen=True, slots=True)
class PaymentEntry:
    """One valid row: money for a policy, paid on a day, under the bank's reference."""

    row: int
    policy_number: str
    amount: Decimal
    paid_on: date
    reference: str
    pays_for: str | None = None


def map_payment_header(header: Sequence[str]) -> tuple[dict[str, int], list[RowProblem]]:
    """Find the four columns; each is required."""
    known = {**PAYMENT_COLUMNS, **OPTIONAL_PAYMENT_COLUMNS}
    lookup = {alias: column for column, aliases in known.items() for alias in aliases}
    found: dict[str, int] = {}
    problems: list[RowProblem] = []
    for index, raw in enumerate(header):
        column = lookup.get(" ".join(raw.strip().lstrip("\ufeff").split()).casefold())
        if column is not None and column not in found:
            found[column] = index
        elif raw.strip():
            problems.append(RowProblem(1, raw, raw, "unknown or repeated column"))
    problems += [RowProblem(1, c, "", "required column is missing") for c in PAYMENT_COLUMNS if c not in found]
    return found, problems


def parse_amount(raw: str) -> Decimal | None:
    """Roubles with up to two decimals; ``1 234,50`` and ``1234.50`` both read; not zero."""
    text = raw.replace("\u00a0", "").replace(" ", "")
    if _AMOUNT.fullmatch(text) is None:
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return amount if amount > 0 else None


def validate_payment_rows(
    rows: Iterable[tuple[int, Sequence[str]]], columns: Mapping[str, int], *, today: date
) -> tuple[list[PaymentEntry], list[RowProblem]]:
    """Check every row: amount, day (not in the future), a reference that appears once in the file."""
    entries: list[PaymentEntry] = []
    problems: list[RowProblem] = []
    first: dict[str, int] = {}
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue

        def cell(column: str) -> str:
            index = columns.get(column)
            return clean_text(cells[index]) if index is not None and index < len(cells) else ""  # noqa: B023

        found: list[RowProblem] = []
        number, raw_amount, raw_day, reference = cell("policy_number"), cell("amount"), cell("date"), cell("reference")
        if not number:
            found.append(RowProblem(line, "policy_number", number, "required"))
        amount = parse_amount(raw_amount)
        if amount is None:
            found.append(RowProblem(line, "amount", raw_amount, "not a positive amount of roubles"))
        day = parse_day(raw_day)
        if day is None:
            found.append(RowProblem(line, "date", raw_day, "not a date (dd.mm.yyyy)"))
        elif day > today:
            found.append(RowProblem(line, "date", raw_day, "in the future"))
        if _REFERENCE.fullmatch(reference) is None:
            found.append(RowProblem(line, "reference", reference, "required: 1-80 letters, digits or ./#-_"))
        elif reference in first:
            found.append(
                RowProblem(line, "reference", reference, f"the same reference is already on row {first[reference]}")
            )
        else:
            first[reference] = line
        if found:
            problems += found
            continue
        assert amount is not None and day is not None
        entries.append(PaymentEntry(line, number, amount, day, reference, cell("pays_for") or None))
    return entries, problems
