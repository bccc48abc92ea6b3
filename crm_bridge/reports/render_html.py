"""The report as one self-contained HTML file: inline CSS, inline SVG charts, a few lines of JS.

Why SVG generated here rather than a charting library: the file must open from a mail attachment
or an air-gapped laptop -- no CDN, no network, nothing to install -- and must render the same in
every browser.  The charts are plain ``<svg>`` bars computed in Python; the inline script only adds
hover read-outs and marks the page as rendered (``data-charts`` on ``<html>``, and
``data-overflow`` when anything is wider than the window), which the browser test checks together
with the absence of console errors.  Every text is HTML-escaped.

Layout: the funnel first (what marketing asks), then outcomes, reasons, reps and segments, in
cards that wrap into one column on a phone; charts scale with their card (``viewBox``, no fixed
width) and wide tables scroll inside their own box instead of widening the page.
"""

from __future__ import annotations

from html import escape

from crm_bridge.funnel.model import FunnelModel
from crm_bridge.reports.html_parts import COLOURS, hbar_chart, pct, rate_with_counts, table
from crm_bridge.reports.model import ReportModel, category_label
from crm_bridge.reports.render_funnel_html import funnel_section

__all__ = ["render_html"]

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid
#dde3ea;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e2e6eb;border-radius:6px;padding:10px 12px;min-width:0}
.card.wide{grid-column:span 2}
@media (max-width:700px){.card.wide{grid-column:auto}main{padding:8px}}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.kpi{background:#fff;border:1px solid #e2e6eb;border-radius:6px;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:20px}
.scroll{overflow-x:auto;max-width:100%;background:#fff;border:1px solid #e2e6eb;border-radius:6px;
margin:6px 0}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:4px 8px;
white-space:nowrap}th{background:#f5f5f5;text-align:left}td.n{text-align:right}
tr.ahead td{color:#777;font-style:italic}
svg.chart{width:100%;height:auto;display:block;max-width:760px}
svg text{font-size:12px;fill:#333}svg text.count{fill:#fff;font-weight:600}
.legend span{margin-right:12px;white-space:nowrap}
.note{color:#555;background:#fffbe6;border-left:3px solid #f0c36d;padding:6px 10px}
#readout{position:fixed;top:8px;right:8px;background:#fff;border:1px solid #999;padding:4px 8px;
display:none;max-width:80vw}
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
  var root = document.documentElement;
  root.setAttribute('data-charts', String(document.querySelectorAll('svg.chart').length));
  root.setAttribute('data-overflow', String(root.scrollWidth > window.innerWidth));
})();
"""


def _trend_chart(model: ReportModel) -> str:
    """Stacked monthly bars: won, lost, rejected, disqualified; months ahead are marked."""
    if not model.months:
        return "<p><em>No outcomes yet.</em></p>"
    keys = ("won", "lost", "lead_rejected", "disqualified")
    col, chart_h, left = 64, 180, 36
    top = max(sum(m.counts[k] for k in keys) for m in model.months) or 1
    width = left + col * len(model.months) + 10
    parts = [
        f'<svg class="chart" role="img" aria-label="outcomes by month"'
        f' viewBox="0 0 {width} {chart_h + 44}" preserveAspectRatio="xMinYMin meet">'
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
                f'<rect x="{x}" y="{y:.1f}" width="{col - 18}" height="{h:.1f}"'
                f' fill="{COLOURS[key]}" fill-opacity="{0.45 if month.future else 1}"'
                f' data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>'
            )
        label = f"{month.month}*" if month.future else month.month
        parts.append(
            f'<text x="{x}" y="{chart_h + 20}">{escape(label)}</text>'
            f'<text x="{x}" y="{chart_h + 36}">win {pct(month.win_rate)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><svg width="10" height="10"><rect width="10" height="10" fill="{COLOURS[k]}"/>'
        f"</svg> {escape(category_label(k))}</span>"
        for k in keys
    )
    if any(m.future for m in model.months):
        legend += "<span>* month ahead: deals whose close date has not come yet</span>"
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _completeness(model: ReportModel) -> tuple[str, str]:
    """The KPI value and, on a first run, the sentence that explains a low number."""
    if model.backlog and model.completeness_after_backlog is None:
        return "not yet", (
            f"All {model.backlog} outcomes closed before crm-bridge first captured reasons, so "
            "none could carry a valid reason when first seen: completeness is measured on "
            "outcomes closed from now on, not on this backlog."
        )
    if model.backlog:
        return pct(model.completeness_after_backlog), (
            f"Completeness counts the outcomes closed since the first capture; the "
            f"{model.backlog} closed before it (overall {pct(model.completeness)}) are left out."
        )
    return pct(model.completeness), ""


def _outcomes(model: ReportModel) -> list[str]:
    c = model.counts
    value, note = _completeness(model)
    kpis = "".join(
        f'<div class="kpi" data-kpi="{escape(k)}"><b>{escape(v)}</b>{escape(k)}</div>'
        for k, v in (
            ("outcomes", str(model.total)),
            ("won", str(c["won"])),
            ("lost", str(c["lost"])),
            ("rejected", str(c["lead_rejected"])),
            ("disqualified", str(c["disqualified"])),
            ("win rate", rate_with_counts(c["won"], c["won"] + c["lost"])),
            ("reason completeness", value),
        )
    )
    out = ["<h2>Outcomes</h2>", f'<div class="kpis">{kpis}</div>']
    if note:
        out.append(f'<p class="note">{escape(note)}</p>')
    out.append('<div class="card"><h3>Trend by month</h3>' + _trend_chart(model) + "</div>")
    out.append(
        table(
            ["month", "won", "lost", "rejected", "disqualified", "win rate", "no valid reason"],
            [
                [
                    f"{m.month} (ahead)" if m.future else m.month,
                    str(m.counts["won"]),
                    str(m.counts["lost"]),
                    str(m.counts["lead_rejected"]),
                    str(m.counts["disqualified"]),
                    rate_with_counts(m.counts["won"], m.counts["won"] + m.counts["lost"]),
                    str(m.without_reason),
                ]
                for m in model.months
            ],
            row_attrs=['class="ahead"' if m.future else "" for m in model.months],
        )
    )
    return out


def _reasons(model: ReportModel) -> list[str]:
    cards = []
    for category in ("won", "lost", "lead_rejected", "disqualified"):
        cells = [r for r in model.reasons if r.category == category]
        if not cells:
            continue
        chart = hbar_chart(
            f"{category_label(category)} reasons",
            [
                (
                    r.label,
                    float(r.count),
                    COLOURS[category],
                    f"{r.label}: {r.count} ({pct(r.share)})",
                )
                for r in cells
            ],
        )
        cards.append(f'<div class="card"><h3>{escape(category_label(category))}</h3>{chart}</div>')
    return ["<h2>Reasons</h2>", f'<div class="grid">{"".join(cards)}</div>']


def _reps(model: ReportModel) -> list[str]:
    chart = hbar_chart(
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
    rows = table(
        ["rep", "outcomes", "valid first time", "flagged", "valid now", "completeness"],
        [
            [
                r.rep,
                str(r.total),
                str(r.first_time_valid),
                str(r.flagged),
                str(r.valid_now),
                rate_with_counts(r.first_time_valid, r.total),
            ]
            for r in model.reps
        ],
    )
    return [
        "<h2>Reason capture by rep</h2>",
        f'<div class="grid"><div class="card">{chart}</div><div class="card">{rows}</div></div>',
    ]


def _segments(model: ReportModel) -> list[str]:
    out = []
    for dimension, rows in model.segments.items():
        name = dimension.replace("_", " ")
        out.append(f"<h2>By {escape(name)}</h2>")
        with_rate = [r for r in rows if r.win_rate is not None]
        if with_rate:
            chart = hbar_chart(
                f"win rate by {name}",
                [
                    (
                        r.value,
                        r.win_rate or 0.0,
                        COLOURS["won"],
                        f"{r.value}: win rate {pct(r.win_rate)}",
                    )
                    for r in with_rate
                ],
                unit="%",
            )
            out.append(f'<div class="card">{chart}</div>')
        out.append(
            table(
                [
                    name,
                    "outcomes",
                    "won",
                    "lost",
                    "rejected",
                    "disqualified",
                    "win rate",
                    "top reasons",
                ],
                [
                    [
                        r.value,
                        str(sum(r.counts.values())),
                        str(r.counts["won"]),
                        str(r.counts["lost"]),
                        str(r.counts["lead_rejected"]),
                        str(r.counts["disqualified"]),
                        rate_with_counts(r.counts["won"], r.counts["won"] + r.counts["lost"]),
                        ", ".join(
                            f"{c.label} {c.count} ({pct(c.share)})" for c in r.top_reasons(3)
                        ),
                    ]
                    for r in rows
                ],
                css="segment",
                text_columns=(7,),
            )
        )
    return out


def render_html(
    model: ReportModel,
    *,
    funnel: FunnelModel | None = None,
    title: str = "Funnel, win / loss and rejection reasons",
) -> str:
    """A complete HTML document (funnel section first); no external resources of any kind."""
    generated = model.generated_at.isoformat(timespec="seconds")
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p><small>Generated by crm-bridge at {escape(generated)}.</small></p>",
        funnel_section(funnel),
        *_outcomes(model),
        *_reasons(model),
        *_reps(model),
        *_segments(model),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
        '<div id="readout" role="status"></div>'
        + "".join(sections)
        + f"</main><script>{_JS}</script></body></html>\n"
    )
