"""The report as one self-contained HTML file: inline CSS, inline SVG charts, a few lines of JS.

Why SVG generated here rather than a charting library: the file must open from a mail attachment
or an air-gapped laptop -- no CDN, no network, nothing to install -- and must render the same in
every browser.  The charts are plain ``<svg>`` bars computed in Python; the inline script only adds
hover read-outs and marks the page as rendered (``data-charts`` on ``<html>``), which the browser
test checks together with the absence of console errors.  Every text is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from crm_bridge.reports.model import ReportModel, category_label

__all__ = ["render_html"]

COLOURS = {
    "won": "#2e7d32",
    "lost": "#c62828",
    "lead_rejected": "#ef6c00",
    "disqualified": "#6d4c41",
    "bar": "#1565c0",
}
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f5f5f5;text-align:left}td.n{text-align:right}
.kpi{display:inline-block;margin-right:24px}.kpi b{display:block;font-size:22px}
svg text{font-size:11px;fill:#333}.legend span{margin-right:12px}
#readout{position:fixed;top:8px;right:8px;background:#fff;border:1px solid #999;padding:4px 8px;
display:none}
"""
_JS = """
(function () {
  var readout = document.getElementById('readout');
  var bars = document.querySelectorAll('svg [data-tip]');
  bars.forEach(function (bar) {
    bar.addEventListener('mouseenter', function () {
      readout.textContent = bar.getAttribute('data-tip');
      readout.style.display = 'block';
    });
    bar.addEventListener('mouseleave', function () { readout.style.display = 'none'; });
  });
  document.documentElement.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
})();
"""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _hbar_chart(title: str, items: Sequence[tuple[str, float, str, str]], *, unit: str = "") -> str:
    """Horizontal bars: (label, value, colour, tooltip); values scaled to the largest."""
    if not items:
        return f"<p><em>{escape(title)}: no data</em></p>"
    row, label_w, bar_w = 20, 180, 360
    top = max(v for _, v, _, _ in items) or 1.0
    height = row * len(items) + 10
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{label_w + bar_w + 60}"'
        f' height="{height}" viewBox="0 0 {label_w + bar_w + 60} {height}">'
    ]
    for i, (label, value, colour, tip) in enumerate(items):
        y = 5 + i * row
        width = max(1.0, bar_w * value / top)
        shown = f"{value:.0%}" if unit == "%" else f"{value:g}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{row - 5}" fill="{colour}"'
            f' data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>'
            f'<text x="{label_w + width + 4:.1f}" y="{y + 13}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _trend_chart(model: ReportModel) -> str:
    """Stacked monthly bars: won, lost, rejected, disqualified."""
    if not model.months:
        return "<p><em>No outcomes yet.</em></p>"
    keys = ("won", "lost", "lead_rejected", "disqualified")
    col, chart_h, left = 56, 200, 36
    top = max(sum(m.counts[k] for k in keys) for m in model.months) or 1
    width = left + col * len(model.months) + 10
    parts = [
        f'<svg class="chart" role="img" aria-label="outcomes by month" width="{width}"'
        f' height="{chart_h + 40}" viewBox="0 0 {width} {chart_h + 40}">'
        f'<line x1="{left}" y1="{chart_h + 5}" x2="{width}" y2="{chart_h + 5}" stroke="#999"/>'
        f'<text x="2" y="14">{top}</text><text x="2" y="{chart_h + 5}">0</text>'
    ]
    for i, month in enumerate(model.months):
        x = left + 8 + i * col
        y = chart_h + 5.0
        for key in keys:
            n = month.counts[key]
            if not n:
                continue
            h = chart_h * n / top
            y -= h
            tip = f"{month.month}: {n} {category_label(key).lower()}"
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{col - 16}" height="{h:.1f}"'
                f' fill="{COLOURS[key]}" data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>'
            )
        parts.append(
            f'<text x="{x}" y="{chart_h + 20}">{escape(month.month)}</text>'
            f'<text x="{x}" y="{chart_h + 34}">win {_pct(month.win_rate)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><svg width="10" height="10"><rect width="10" height="10" fill="{COLOURS[k]}"/>'
        f"</svg> {escape(category_label(k))}</span>"
        for k in keys
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(v)}</td>' if i >= numeric_from else f"<td>{escape(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(model: ReportModel, *, title: str = "Win / loss / rejection reasons") -> str:
    """A complete HTML document; no external resources of any kind."""
    c = model.counts
    kpis = "".join(
        f'<div class="kpi"><b>{escape(v)}</b>{escape(k)}</div>'
        for k, v in (
            ("outcomes", str(model.total)),
            ("won", str(c["won"])),
            ("lost", str(c["lost"])),
            ("rejected", str(c["lead_rejected"])),
            ("disqualified", str(c["disqualified"])),
            ("win rate", _pct(model.win_rate)),
            ("reason completeness", _pct(model.completeness)),
        )
    )
    sections = [f"<h1>{escape(title)}</h1>", f"<div>{kpis}</div>"]
    sections.append("<h2>Trend by month</h2>" + _trend_chart(model))
    sections.append(
        _table(
            ["month", "won", "lost", "rejected", "disqualified", "win rate", "no valid reason"],
            [
                [
                    m.month,
                    str(m.counts["won"]),
                    str(m.counts["lost"]),
                    str(m.counts["lead_rejected"]),
                    str(m.counts["disqualified"]),
                    _pct(m.win_rate),
                    str(m.without_reason),
                ]
                for m in model.months
            ],
        )
    )
    sections.append("<h2>Reasons</h2>")
    for category in ("won", "lost", "lead_rejected", "disqualified"):
        cells = [r for r in model.reasons if r.category == category]
        if not cells:
            continue
        sections.append(f"<h3>{escape(category_label(category))}</h3>")
        sections.append(
            _hbar_chart(
                f"{category_label(category)} reasons",
                [
                    (
                        r.label,
                        float(r.count),
                        COLOURS[category],
                        f"{r.label}: {r.count} ({_pct(r.share)})",
                    )
                    for r in cells
                ],
            )
        )
    sections.append("<h2>Reason capture by rep</h2>")
    sections.append(
        _hbar_chart(
            "completeness by rep",
            [
                (
                    r.rep,
                    r.completeness or 0.0,
                    COLOURS["bar"],
                    f"{r.rep}: {r.first_time_valid}/{r.total} valid first time",
                )
                for r in model.reps
            ],
            unit="%",
        )
    )
    sections.append(
        _table(
            ["rep", "outcomes", "valid first time", "flagged", "valid now", "completeness"],
            [
                [
                    r.rep,
                    str(r.total),
                    str(r.first_time_valid),
                    str(r.flagged),
                    str(r.valid_now),
                    _pct(r.completeness),
                ]
                for r in model.reps
            ],
        )
    )
    for dimension, rows in model.segments.items():
        name = dimension.replace("_", " ")
        sections.append(f"<h2>By {escape(name)}</h2>")
        with_rate = [r for r in rows if r.win_rate is not None]
        if with_rate:
            sections.append(
                _hbar_chart(
                    f"win rate by {name}",
                    [
                        (
                            r.value,
                            r.win_rate or 0.0,
                            COLOURS["won"],
                            f"{r.value}: win rate {_pct(r.win_rate)}",
                        )
                        for r in with_rate
                    ],
                    unit="%",
                )
            )
        table_rows = [
            [
                r.value,
                category_label(cell.category),
                cell.label,
                str(cell.count),
                _pct(cell.share),
                _pct(r.win_rate),
            ]
            for r in rows
            for cell in r.reasons
        ]
        sections.append(
            _table(
                ["segment", "category", "reason", "count", "share", "segment win rate"],
                table_rows,
                3,
            )
        )
    generated = model.generated_at.isoformat(timespec="seconds")
    sections.append(f"<p><small>Generated by crm-bridge at {escape(generated)}.</small></p>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        '<div id="readout" role="status"></div>'
        + "".join(sections)
        + f"<script>{_JS}</script></body></html>\n"
    )
