"""Server-side SVG charts of HR figures, drawn once and shared by the page and the PDF (R12.5).

Only drawing attributes are used (no ``style=``), so the pages' content security policy holds;
every chart has a ``<title>`` and ``<desc>`` and is shown next to its data table for screen
readers. A suppressed value is drawn as an empty outlined bar labelled "< k", never as a guess.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape

_INK: Final = "#1f2937"
_MUTED: Final = "#6b7280"
_BAR: Final = "#2563eb"
_PALETTE: Final = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2")


def _text(value: object) -> str:
    return escape(str(value), {'"': "&quot;"})


def _short(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _ids(title: str) -> tuple[str, str]:
    """Element ids unique per chart, so that several charts can share one page."""
    digest = hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"chart-{digest}-title", f"chart-{digest}-desc"


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, int | None]],
    *,
    min_cell: int,
    width: int = 560,
    bar_height: int = 22,
) -> str:
    """Horizontal bars, one per label; ``None`` values are drawn as suppressed."""
    title_id, desc_id = _ids(title)
    label_width = 230
    top = 34
    height = top + max(1, len(rows)) * (bar_height + 8) + 10
    largest = max([v for _, v in rows if v is not None] or [1]) or 1
    plot = width - label_width - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{title_id} {desc_id}">',
        f'<title id="{title_id}">{_text(title)}</title>',
        f'<desc id="{desc_id}">{_text(title)}; suppressed values (fewer than {min_cell} persons) are marked.</desc>',
        f'<text x="0" y="18" font-family="sans-serif" font-size="15" font-weight="bold" fill="{_INK}">'
        f"{_text(title)}</text>",
    ]
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_height + 8)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar_height - 6}" text-anchor="end" font-family="sans-serif" '
            f'font-size="12" fill="{_INK}">{_text(_short(label))}</text>'
        )
        if value is None:
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{plot // 6}" height="{bar_height}" fill="none" '
                f'stroke="{_MUTED}" stroke-dasharray="4 3"/>'
            )
            parts.append(
                f'<text x="{label_width + plot // 6 + 6}" y="{y + bar_height - 6}" font-family="sans-serif" '
                f'font-size="12" fill="{_MUTED}">&lt; {min_cell}</text>'
            )
        else:
            length = round(plot * value / largest) if value else 0
            parts.append(f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="{_BAR}"/>')
            parts.append(
                f'<text x="{label_width + length + 6}" y="{y + bar_height - 6}" font-family="sans-serif" '
                f'font-size="12" fill="{_INK}">{value}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    months: Sequence[str],
    series: Sequence[tuple[str, Sequence[int | None]]],
    *,
    min_cell: int,
    width: int = 560,
    height: int = 240,
) -> str:
    """Lines month over month; a suppressed month breaks the line (it is not drawn as a value)."""
    title_id, desc_id = _ids(title)
    left, right, top, bottom = 40, 150, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    largest = max([v for _, values in series for v in values if v is not None] or [1]) or 1
    step = plot_w / max(1, len(months) - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{title_id} {desc_id}">',
        f'<title id="{title_id}">{_text(title)}</title>',
        f'<desc id="{desc_id}">{_text(title)}; months with fewer than {min_cell} persons are gaps.</desc>',
        f'<text x="0" y="18" font-family="sans-serif" font-size="15" font-weight="bold" fill="{_INK}">'
        f"{_text(title)}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{_MUTED}"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-family="sans-serif" font-size="11" '
        f'fill="{_MUTED}">{largest}</text>',
    ]
    for i, month in enumerate(months):
        x = left + i * step
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-family="sans-serif" font-size="11" '
            f'fill="{_MUTED}">{_text(month)}</text>'
        )
    for n, (label, values) in enumerate(series):
        colour = _PALETTE[n % len(_PALETTE)]
        segment: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if len(segment) > 1:
                    parts.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                    )
                segment = []
                continue
            x = left + i * step
            y = top + plot_h - plot_h * value / largest
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend_y = top + 14 * n + 8
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + plot_w + 26}" y="{legend_y + 1}" font-family="sans-serif" font-size="11" '
            f'fill="{_INK}">{_text(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
