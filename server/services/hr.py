"""Corporate HR: usage and health figures of the employer's own staff, under medical secrecy (R12).

Every figure comes from a frozen month snapshot (``hr_month_snapshots``): computed once, the first
time anyone asks for a closed month, suppressed as a whole (server/domain/hr_reports.py), stored,
and never recomputed. Weeks, slices (one department, one age band), trends, CSV and the Health
Passport are all read out of those snapshots, so no request can obtain a figure that was not
already published for that month (checklist F2). HR sees aggregates of its own company only (C3);
every read is audited (D1).
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from server.db.models import HrMonthSnapshot
from server.db.repositories import hr as repo
from server.domain.disclosure import CellCount
from server.domain.errors import Forbidden, InvalidInput
from server.domain.hr_reports import (
    FILTERS,
    TABLES,
    TABLES_BY_NAME,
    IsoWeek,
    Month,
    PublishedMonth,
    parse_period,
    publish_month,
    published_months,
    require_published,
)
from server.domain.icd10_chapters import chapters
from server.services import audit
from server.services.context import ServiceContext
from server.services.hr_charts import bar_chart, line_chart
from server.services.identity import ROLE_HR, Principal

ERR_FILTER_NOT_AVAILABLE: Final = "filter_not_available"
TREND_MONTHS: Final = 6
WAIT_QUANTILES: Final = (0.5, 0.9)
_CSV_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class HrCell:
    """One published cell: its coordinates and its value, or ``None`` where it is suppressed."""

    values: dict[str, str]
    value: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class HrTable:
    """One table of a period, as published."""

    name: str
    dims: list[str]
    rows: list[HrCell]


@dataclass(frozen=True, slots=True)
class HrFigures:
    """Company-wide figures of a month; ``None`` where too few persons are behind them (R12.5)."""

    persons_consulting: int | None
    referrals: int | None
    letters_of_guarantee: int | None
    wait_p50_minutes: float | None
    wait_p90_minutes: float | None
    staff: int | None
    registry_persons: int | None
    dispatcher_persons: int | None
    telemedicine_allowance_pool: int
    telemedicine_used: int | None
    cost_estimate: Decimal | None
    premium_paid: Decimal


@dataclass(frozen=True, slots=True)
class HrPeriodsView:
    """The periods HR may ask for: closed months (newest first) and their ISO weeks."""

    months: list[str]
    weeks: list[str]
    min_cell: int


@dataclass(frozen=True, slots=True)
class HrUsageView:
    """Usage of a month, a week (from its month snapshots) or a slice of a month."""

    period: str
    months: list[str]
    min_cell: int
    filter: dict[str, str] | None
    tables: list[HrTable]
    figures: HrFigures | None
    # Server-side SVG, the same drawings the Health Passport prints (each beside its table).
    charts: dict[str, str]


@dataclass(frozen=True, slots=True)
class HrChapterTrend:
    """Diagnoses of one ICD-10 chapter month by month (``None``: suppressed that month)."""

    chapter: str
    title: str
    by_month: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class HrHealthView:
    """Prevention needs by staff segment and their trend (R12.2, R12.3)."""

    period: str
    min_cell: int
    prevention_needs: HrTable
    diagnoses_by_chapter: HrTable
    trend_months: list[str]
    trends: list[HrChapterTrend]
    chapter_titles: dict[str, str]
    charts: dict[str, str]


@dataclass(frozen=True, slots=True)
class HrAccountManagerView:
    """The client's personal account manager at the insurer (R12.4)."""

    policyholder: str
    account_manager: str | None


@dataclass(frozen=True, slots=True)
class _Company:
    id: int
    name: str
    account_manager: str | None


async def _company(ctx: ServiceContext, principal: Principal, action: str, resource: str) -> _Company:
    """The HR user's own company, audited; anybody else is refused before anything is read (C3)."""
    async with ctx.uow() as uow:
        found = await repo.hr_policyholder_of(uow.session, principal.subject_id) if principal.role == ROLE_HR else None
        company = _Company(found.id, found.name, found.account_manager) if found is not None else None
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action=action,
            resource_type="hr_report",
            resource_id=resource,
            patient_id=None,
            result=audit.RESULT_ALLOWED if company is not None else audit.RESULT_DENIED,
        )
        await uow.commit()
    if company is None:
        raise Forbidden("only HR of a corporate client sees its figures", code="wrong_role")
    return company


def _today(ctx: ServiceContext) -> date:
    return ctx.clock.now().astimezone(repo.REPORTING_ZONE).date()


async def _months_for(ctx: ServiceContext, policyholder_id: int, period: Month | IsoWeek) -> tuple[Month, ...]:
    async with ctx.uow() as uow:
        since = await repo.earliest_policy_start(uow.session, policyholder_id)
    return require_published(period, _today(ctx), since)


async def month_snapshot(ctx: ServiceContext, policyholder_id: int, month: Month) -> dict[str, Any]:
    """The frozen publication of one month, computing and storing it the first time (R12.5).

    The suppression runs in a worker thread: it is CPU work (linear programs) and the event loop
    must keep serving sockets meanwhile.
    """
    async with ctx.uow() as uow:
        existing = await repo.get_snapshot(uow.session, policyholder_id, month.key)
        if existing is not None:
            return existing.payload
        counts = await repo.month_counts(uow.session, policyholder_id, month)
        waits = await repo.wait_percentiles(uow.session, policyholder_id, month, WAIT_QUANTILES)
        money = await repo.money_and_allowance(uow.session, policyholder_id, month)
    k = ctx.settings.hr_min_cell
    published = await asyncio.to_thread(publish_month, counts, k)
    persons = counts.scalars["persons_consulting"].persons
    payload = _encode(published, _figures(ctx, published, persons, waits, money))
    # Which slices may be asked for: those of at least k employees (frozen with the month).
    payload["slices"] = {
        dim: sorted(values[0] for values, n in counts.cubes[f"staff_by_{dim}"].items() if n.persons >= k)
        for dim in FILTERS
    }
    async with ctx.uow() as uow:
        stored = await repo.store_snapshot(
            uow.session,
            HrMonthSnapshot(
                policyholder_id=policyholder_id,
                month=month.key,
                min_cell=k,
                payload=payload,
                computed_at=ctx.clock.now(),
            ),
        )
        return stored.payload


def _figures(
    ctx: ServiceContext,
    published: PublishedMonth,
    persons: int,
    waits: dict[float, float | None],
    money: dict[str, Any],
) -> dict[str, Any]:
    """Company-wide figures, each shown only when at least k persons are behind it."""
    k = published.min_cell
    total = published.tables["consultations"][()]
    staff_by_type = published.tables["staff_by_service_type"]
    visits: CellCount = money["visits"]
    wide_enough = persons >= k

    def minutes(q: float) -> float | None:
        seconds = waits.get(q)
        return round(seconds / 60, 1) if wide_enough and seconds is not None else None

    cost: Decimal | None = None
    if total is not None and (visits.persons == 0 or visits.persons >= k):
        prices = ctx.settings
        cost = Decimal(total) * prices.hr_consultation_price + Decimal(visits.count) * prices.hr_visit_price
    return {
        "persons_consulting": published.scalars["persons_consulting"],
        "referrals": published.scalars["referrals"],
        "letters_of_guarantee": published.scalars["letters_of_guarantee"],
        "wait_p50_minutes": minutes(0.5),
        "wait_p90_minutes": minutes(0.9),
        "staff": published.tables["staff"][()],
        "registry_persons": staff_by_type[("registry",)],
        "dispatcher_persons": staff_by_type[("dispatcher",)],
        "telemedicine_allowance_pool": money["allowance_pool"],
        "telemedicine_used": total,
        "cost_estimate": str(cost) if cost is not None else None,
        "premium_paid": str(money["premium_paid"]),
    }


def _encode(published: PublishedMonth, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "month": published.month.key,
        "min_cell": published.min_cell,
        "domains": {name: list(values) for name, values in published.domains.items()},
        "tables": {
            name: [[*values, value] for values, value in cells.items()] for name, cells in published.tables.items()
        },
        "figures": figures,
    }


def _table(name: str, payload: dict[str, Any], keep: dict[str, str] | None = None, month: str | None = None) -> HrTable:
    spec = TABLES_BY_NAME[name]
    rows = []
    for *values, value in payload["tables"][name]:
        coordinates = dict(zip(spec.dims, values, strict=True))
        if keep and any(coordinates.get(d) != v for d, v in keep.items()):
            continue
        if month is not None:
            coordinates = {"month": month, **coordinates}
        rows.append(HrCell(coordinates, value, value is None))
    dims = (["month"] if month is not None else []) + list(spec.dims)
    return HrTable(name, dims, rows)


def _figures_view(payload: dict[str, Any]) -> HrFigures:
    figures = dict(payload["figures"])
    for money_field in ("cost_estimate", "premium_paid"):
        if figures[money_field] is not None:
            figures[money_field] = Decimal(figures[money_field])
    return HrFigures(**figures)


async def freeze_closed_months(ctx: ServiceContext) -> int:
    """Freeze the newest published month of every corporate client that has not got it yet.

    Run in the background as months close, so that HR's first look at a month is a read of its
    snapshot, not the aggregate queries and the suppression's linear programs. Any process may run
    it; the snapshot's unique key makes the first one to finish the one that counts.

    Returns:
        How many months were frozen in this run.
    """
    today = _today(ctx)
    frozen = 0
    async with ctx.uow() as uow:
        clients = await repo.corporate_clients_since(uow.session)
    for policyholder_id, since in clients:
        months = published_months(today, since)
        if not months:
            continue
        async with ctx.uow() as uow:
            exists = await repo.get_snapshot(uow.session, policyholder_id, months[0].key)
        if exists is None:
            await month_snapshot(ctx, policyholder_id, months[0])
            frozen += 1
    return frozen


async def periods(ctx: ServiceContext, principal: Principal) -> HrPeriodsView:
    """Closed months (and their weeks) since the company's first policy began."""
    company_id = (await _company(ctx, principal, "hr.periods.read", "periods")).id
    async with ctx.uow() as uow:
        since = await repo.earliest_policy_start(uow.session, company_id)
    months = published_months(_today(ctx), since) if since is not None else ()
    weeks: list[str] = []
    for month in months:
        for week in reversed(month.weeks()):
            candidate = parse_period(week)
            assert isinstance(candidate, IsoWeek)
            if week not in weeks and all(m in months for m in candidate.months()):
                weeks.append(week)
    return HrPeriodsView([m.key for m in months], weeks, ctx.settings.hr_min_cell)


async def usage(
    ctx: ServiceContext,
    principal: Principal,
    period_text: str,
    filters: dict[str, str] | None = None,
) -> HrUsageView:
    """A month's usage tables and figures, a week's rows, or one slice of a month (R12.1, R12.5)."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    company_id = (await _company(ctx, principal, "hr.usage.read", period_text[:16])).id
    period = parse_period(period_text)
    if len(filters) > 1 or any(name not in FILTERS for name in filters):
        raise InvalidInput("filter by one of: department, age_band", code="invalid_filter")
    months = await _months_for(ctx, company_id, period)
    snapshots = [await month_snapshot(ctx, company_id, month) for month in months]
    k = snapshots[0]["min_cell"]
    if isinstance(period, IsoWeek):
        tables = [
            _table(name, snapshot, {"week": period.key}, month=snapshot["month"])
            for name in ("consultations_by_week", "consultations_by_week_and_channel")
            for snapshot in snapshots
        ]
        if filters:
            raise InvalidInput("weeks are not sliced further", code="invalid_filter")
        rows = [
            (f"{r.values['month']} {r.values['week']}", r.value)
            for t in tables
            if t.name == "consultations_by_week"
            for r in t.rows
        ]
        charts = {"by_week": bar_chart(f"Consultations, week {period.key}", rows, min_cell=k)}
        return HrUsageView(period.key, [m.key for m in months], k, None, tables, None, charts)
    (snapshot,) = snapshots
    if filters:
        ((dim, value),) = filters.items()
        # The same answer whether the slice does not exist or is too small: neither is revealed.
        if value not in snapshot["slices"][dim]:
            raise InvalidInput(
                f"this slice cannot be shown: a slice needs at least {k} employees",
                code=ERR_FILTER_NOT_AVAILABLE,
            )
        names = [s.name for s in TABLES if dim in s.dims and s.population == "consultations"]
        tables = [_table(name, snapshot, {dim: value}) for name in names]
        return HrUsageView(period.key, [snapshot["month"]], k, {dim: value}, tables, None, {})
    names = [s.name for s in TABLES if s.population in ("consultations", "staff")]
    tables = [_table(name, snapshot) for name in names]
    by_name = {t.name: t for t in tables}
    charts = {
        key: bar_chart(title, [(r.values[dim], r.value) for r in by_name[table].rows], min_cell=k)
        for key, title, table, dim in (
            ("by_channel", "Consultations by channel", "consultations_by_channel", "channel"),
            ("by_week", "Consultations by ISO week", "consultations_by_week", "week"),
            ("by_specialty", "Consultations by specialty", "consultations_by_specialty", "specialty"),
            ("by_department", "Consultations by department", "consultations_by_department", "department"),
            ("by_age_band", "Consultations by age band", "consultations_by_age_band", "age_band"),
        )
    }
    return HrUsageView(period.key, [snapshot["month"]], k, None, tables, _figures_view(snapshot), charts)


async def health(ctx: ServiceContext, principal: Principal, period_text: str) -> HrHealthView:
    """Prevention needs (department x age band x ICD-10 chapter) and chapter trends (R12.2)."""
    company_id = (await _company(ctx, principal, "hr.health.read", period_text[:16])).id
    period = parse_period(period_text)
    if not isinstance(period, Month):
        raise InvalidInput("health figures are monthly", code="invalid_period", details={"field": "period"})
    (month,) = await _months_for(ctx, company_id, period)
    snapshot = await month_snapshot(ctx, company_id, month)
    async with ctx.uow() as uow:
        since = await repo.earliest_policy_start(uow.session, company_id)
    available = set(published_months(_today(ctx), since))
    trend_months = [month]
    while len(trend_months) < TREND_MONTHS and trend_months[-1].previous() in available:
        trend_months.append(trend_months[-1].previous())
    trend_months.reverse()
    by_month = {m.key: await month_snapshot(ctx, company_id, m) for m in trend_months}
    titles = {ch.number: ch.title for ch in chapters()}
    trends = []
    for chapter, title in titles.items():
        series: dict[str, int | None] = {}
        for key, shot in by_month.items():
            values = {row[0]: row[1] for row in shot["tables"]["diagnoses_by_chapter"]}
            series[key] = values.get(chapter, 0)
        trends.append(HrChapterTrend(chapter, title, series))
    k = snapshot["min_cell"]
    by_chapter = _table("diagnoses_by_chapter", snapshot)
    top = sorted(
        (t for t in trends if any(t.by_month.values())), key=lambda t: -sum(v or 0 for v in t.by_month.values())
    )[:5]
    keys = [m.key for m in trend_months]
    charts = {
        "by_chapter": bar_chart(
            "Diagnoses by ICD-10 chapter",
            [(r.values["chapter"], r.value) for r in by_chapter.rows if r.value != 0] or [("-", 0)],
            min_cell=k,
        ),
        "trend": line_chart(
            "Diagnoses by chapter, month by month",
            keys,
            [(t.chapter, [t.by_month[m] for m in keys]) for t in top],
            min_cell=k,
        ),
    }
    return HrHealthView(month.key, k, _table("prevention_needs", snapshot), by_chapter, keys, trends, titles, charts)


async def account_manager(ctx: ServiceContext, principal: Principal) -> HrAccountManagerView:
    """Who looks after the client at the insurer (R12.4)."""
    company = await _company(ctx, principal, "hr.account_manager.read", "account_manager")
    return HrAccountManagerView(company.name, company.account_manager)


def _csv_safe(value: object) -> str:
    """A cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_CSV_FORMULA_PREFIXES) else text


def tables_csv(tables: list[HrTable], period: str, min_cell: int) -> str:
    """Every table as CSV rows: table, period, its coordinates, value, suppressed (same suppression)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "table",
            "period",
            "dimension_1",
            "value_1",
            "dimension_2",
            "value_2",
            "dimension_3",
            "value_3",
            "count",
            "suppressed",
        ]
    )
    for table in tables:
        for row in table.rows:
            coordinates: list[str] = []
            for dim, value in list(row.values.items())[:3]:
                coordinates += [dim, value]
            coordinates += [""] * (6 - len(coordinates))
            writer.writerow(
                [
                    _csv_safe(table.name),
                    period,
                    *(_csv_safe(c) for c in coordinates),
                    "" if row.value is None else row.value,
                    "yes" if row.suppressed else "no",
                ]
            )
    writer.writerow([])
    writer.writerow([f"# cells of 1 to {min_cell - 1} persons, and cells that would reveal them, are suppressed"])
    return out.getvalue()


def generated_at(ctx: ServiceContext) -> datetime:
    """When an export was made (printed on it)."""
    return ctx.clock.now()
