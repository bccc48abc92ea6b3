"""Building blocks of the HTML report: escaped tables, scalable SVG bars, percentages.

Why shared: the funnel section and the reasons sections draw the same kinds of bars and tables,
and both must scale to a phone: every chart is an ``<svg>`` with a ``viewBox`` and no fixed width
(CSS makes it 100 % of its card), every table sits in a horizontally scrolling wrapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["COLOURS", "hbar_chart", "pct", "rate_with_counts", "table"]

COLOURS = {
    "won": "#2e7d32",
    "lost": "#c62828",
    "lead_rejected": "#ef6c00",
    "rejected": "#ef6c00",
    "disqualified": "#6d4c41",
    "bar": "#1565c0",
    "stage": "#1565c0",
}


def pct(value: float | None) -> str:
    """``0.456`` -> ``46%``; ``-`` when there was nothing to divide by."""
    return "-" if value is None else f"{value:.0%}"


def rate_with_counts(part: int, whole: int) -> str:
    """``45% (9/20)``: a rate is only as good as the counts behind it."""
    return "-" if not whole else f"{part / whole:.0%} ({part}/{whole})"


def hbar_chart(
    title: str, items: Sequence[tuple[str, float, str, str]], *, unit: str = "", css: str = ""
) -> str:
    """Horizontal bars (label, value, colour, tooltip), scaled to the largest; scales to width."""
    if not items:
        return f"<p><em>{escape(title)}: no data</em></p>"
    row, label_w, bar_w = 22, 170, 300
    width = label_w + bar_w + 70
    top = max(v for _, v, _, _ in items) or 1.0
    height = row * len(items) + 8
    parts = [
        f'<svg class="chart{(" " + css) if css else ""}" role="img" aria-label="{escape(title)}"'
        f' viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, (label, value, colour, tip) in enumerate(items):
        y = 4 + i * row
        bar = max(1.0, bar_w * value / top)
        shown = f"{value:.0%}" if unit == "%" else f"{value:g}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label[:26])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{bar:.1f}" height="{row - 6}" fill="{colour}"'
            f' data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>'
            f'<text x="{label_w + bar + 4:.1f}" y="{y + 14}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric_from: int = 1,
    *,
    css: str = "",
    row_attrs: Sequence[str] | None = None,
    text_columns: Sequence[int] = (),
) -> str:
    """An escaped table in a scrolling wrapper (wide tables scroll instead of clipping)."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for n, row in enumerate(rows):
        cells = "".join(
            f'<td class="n">{escape(v)}</td>'
            if i >= numeric_from and i not in text_columns
            else f"<td>{escape(v)}</td>"
            for i, v in enumerate(row)
        )
        attrs = f" {row_attrs[n]}" if row_attrs else ""
        body.append(f"<tr{attrs}>{cells}</tr>")
    klass = f' class="{css}"' if css else ""
    return (
        f'<div class="scroll"><table{klass}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
