"""The company Health Passport (R12.3): one or two printed pages of aggregate staff health figures.

Built from the same frozen month snapshot and the same SVG charts as the HR page, rendered to
PDF by WeasyPrint (it needs Debian's pango and harfbuzz-subset libraries, which .ci/run installs).
Everything in it already passed the month's suppression: the PDF shows nothing the API does not.
"""

from __future__ import annotations

from html import escape
from typing import Final

from server.services.hr import HrHealthView, HrTable, HrUsageView
from server.services.hr_charts import bar_chart, line_chart

_PAGE_CSS: Final = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: counter(page) " / " counter(pages);
        font-size: 9pt; color: #6b7280; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 10pt; color: #1f2937; }
h1 { font-size: 18pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; }
.meta { color: #6b7280; margin-bottom: 4mm; }
.figures { display: flex; flex-wrap: wrap; gap: 3mm; }
.figure { border: 1px solid #d1d5db; border-radius: 2mm; padding: 2mm 3mm; width: 40mm; }
.figure b { display: block; font-size: 13pt; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; margin-top: 2mm; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 1mm 2mm; text-align: left; }
td.n { text-align: right; } .note { color: #6b7280; font-size: 8.5pt; }
svg { max-width: 100%; }
"""


def _shown(value: object, min_cell: int) -> str:
    return f"&lt; {min_cell}" if value is None else escape(str(value))


def _rows(table: HrTable, min_cell: int, dims: list[str]) -> str:
    """The shown rows of a table; withheld ones are counted in a closing line, not listed."""
    body = []
    withheld = 0
    for row in table.rows:
        if row.value is None:
            withheld += 1
            continue
        cells = "".join(f"<td>{escape(row.values[d])}</td>" for d in dims)
        body.append(f'<tr>{cells}<td class="n">{_shown(row.value, min_cell)}</td></tr>')
    if withheld:
        body.append(
            f'<tr><td colspan="{len(dims) + 1}" class="note">{withheld} segments withheld '
            f"(fewer than {min_cell} persons, or they would let such a figure be worked out)</td></tr>"
        )
    return "".join(body)


def passport_html(company: str, usage: HrUsageView, health: HrHealthView) -> str:
    """The passport as one self-contained HTML page (no scripts, no external resources)."""
    k = usage.min_cell
    tables = {t.name: t for t in usage.tables}
    figures = usage.figures
    by_channel = [(r.values["channel"], r.value) for r in tables["consultations_by_channel"].rows]
    chapters = [
        (f"{r.values['chapter']} {health.chapter_titles[r.values['chapter']]}", r.value)
        for r in health.diagnoses_by_chapter.rows
        if r.value is not None
    ]
    top_trends = sorted(health.trends, key=lambda t: -sum(v or 0 for v in t.by_month.values()))[:5]
    trend_svg = line_chart(
        "Diagnoses by ICD-10 chapter, month by month",
        health.trend_months,
        [(t.chapter, [t.by_month[m] for m in health.trend_months]) for t in top_trends],
        min_cell=k,
    )
    figure_cells = []
    if figures is not None:
        for label, value in (
            ("Consultations", tables["consultations"].rows[0].value),
            ("Employees who consulted", figures.persons_consulting),
            ("Wait for a doctor, median (min)", figures.wait_p50_minutes),
            ("Wait, 90th percentile (min)", figures.wait_p90_minutes),
            ("Referrals to in-person care", figures.referrals),
            ("Letters of guarantee that followed", figures.letters_of_guarantee),
            ("Employees on the policy", figures.staff),
            ("Registry service", figures.registry_persons),
        ):
            figure_cells.append(f'<div class="figure">{escape(label)}<b>{_shown(value, k)}</b></div>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Health Passport {escape(usage.period)}</title>
<style>{_PAGE_CSS}</style></head><body>
<h1>Company Health Passport</h1>
<div class="meta">{escape(company)} · {escape(usage.period)} · aggregate figures of the staff; no figure describes
fewer than {k} persons (medical secrecy, 323-FZ art. 13)</div>
<div class="figures">{"".join(figure_cells)}</div>
{bar_chart("Consultations by channel", by_channel, min_cell=k)}
{bar_chart("Diagnoses by ICD-10 chapter", chapters or [("—", 0)], min_cell=k)}
{trend_svg}
<h2>Prevention needs by staff segment</h2>
<table><thead><tr><th>Department</th><th>Age band</th><th>ICD-10 chapter</th><th>Diagnoses</th></tr></thead>
<tbody>{_rows(health.prevention_needs, k, ["department", "age_band", "chapter"])}</tbody></table>
<p class="note">"&lt; {k}" marks a figure withheld because it would describe fewer than {k} persons, or would let
such a figure be worked out from the others; zeros are withheld too, so that a withheld figure never
says that somebody is there. Chapters with every figure withheld are not drawn.</p>
</body></html>"""


def passport_pdf(company: str, usage: HrUsageView, health: HrHealthView) -> bytes:
    """The passport as PDF bytes (CPU work: call it from a worker thread)."""
    from weasyprint import HTML

    pdf = HTML(string=passport_html(company, usage, health)).write_pdf()
    assert pdf is not None
    return bytes(pdf)
