"""Inline SVG charts for the report: no JavaScript, no external files, readable as plain markup."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 500  # two charts side by side in the report's 1080 px column
_BAR = "#4c78a8"
_MARK = "#d62728"


def _fmt(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


def bar_chart(items: Sequence[tuple[str, int]], title: str) -> Markup:
    """Horizontal bars, one row per (label, count); the label column is 200 px wide."""
    row, left, top = 22, 200, 4
    biggest = max((value for _, value in items), default=0) or 1
    height = top + row * len(items) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for number, (label, value) in enumerate(items):
        y = top + number * row
        length = (WIDTH - left - 90) * value / biggest
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" fill="{_BAR}"/>'
            f'<text x="{left + length + 6:.1f}" y="{y + 15}">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(
    labels: Sequence[str],
    counts: Sequence[int],
    title: str,
    *,
    marker: float | None = None,
    tick_every: int = 1,
    at_edges: bool = False,
) -> Markup:
    """Vertical columns, labelled every `tick_every` columns (every column has a tooltip).

    Labels sit under the column's centre (categories), or under its left edge when `at_edges`
    (a numeric axis: the label is the edge's value). `marker` (0-1 across the x axis) draws a
    dashed red line, e.g. at a threshold."""
    height, bottom, top = 220, 40, 18
    plot = height - bottom - top
    step = WIDTH / max(len(counts), 1)
    biggest = max(counts, default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" y1="{top + plot}" x2="{WIDTH}" y2="{top + plot}" stroke="#999"/>',
    ]
    for number, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x = number * step
        bar = plot * count / biggest
        centre = x + step / 2
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{top + plot - bar:.1f}" width="{step - 4:.1f}" height="{bar:.1f}" '
            f'fill="{_BAR}"><title>{escape(label)}: {count}</title></rect>'
        )
        if count:
            parts.append(
                f'<text x="{centre:.1f}" y="{top + plot - bar - 4:.1f}" text-anchor="middle" '
                f'class="small">{count}</text>'
            )
        if number % tick_every == 0:
            anchor, at = ("start", x + 1) if at_edges else ("middle", centre)
            parts.append(
                f'<text x="{at:.1f}" y="{top + plot + 16}" text-anchor="{anchor}" class="small">'
                f"{escape(label)}</text>"
            )
    if marker is not None:
        x = WIDTH * marker
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{top + plot}" stroke="{_MARK}" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
