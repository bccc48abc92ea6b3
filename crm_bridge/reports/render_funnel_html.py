"""The funnel section at the top of the HTML report: waterfall, losses, SLA, breakdowns.

Why the numbers are also in ``data-*`` attributes: the browser test reads the rendered DOM and
checks the stage counts against a count made from the store, so what a reader sees is what was
computed -- a renderer that dropped or mis-labelled a stage fails it.
"""

from __future__ import annotations

from html import escape

from crm_bridge.funnel.events import LOSS_STAGES, MAIN_PATH
from crm_bridge.funnel.model import BreakdownRow, FunnelModel
from crm_bridge.funnel.render import STAGE_LABELS, days, money, top_reasons
from crm_bridge.reports.html_parts import COLOURS, hbar_chart, pct, rate_with_counts, table

__all__ = ["funnel_section"]

LOSS_AT = {at: loss for loss, at in LOSS_STAGES.items()}
SHOWN_BREAKDOWNS = ("source", "campaign", "engagement", "owner")


def _waterfall(model: FunnelModel) -> str:
    """One bar per stage, width by people; conversion and median days beside each step."""
    row, label_w, bar_w = 40, 110, 330
    width = label_w + bar_w + 150
    top = max((s.count for s in model.stages), default=0) or 1
    height = row * len(model.stages) + 6
    parts = [
        f'<svg class="chart funnel" role="img" aria-label="funnel by stage"'
        f' viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, s in enumerate(model.stages):
        y = 4 + i * row
        bar = max(2.0, bar_w * s.count / top)
        x = label_w + (bar_w - bar) / 2
        step = "" if s.conversion is None else f"{pct(s.conversion)} in {days(s.median_days)} d"
        tip = f"{STAGE_LABELS[s.stage]}: {s.count} people" + (f", {step}" if step else "")
        parts.append(
            f'<g class="stage" data-stage="{s.stage}" data-count="{s.count}"'
            f' data-conversion="{"" if s.conversion is None else f"{s.conversion:.4f}"}">'
            f'<text x="{label_w - 8}" y="{y + 22}" text-anchor="end">'
            f"{escape(STAGE_LABELS[s.stage])}</text>"
            f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{row - 8}" rx="3"'
            f' fill="{COLOURS["stage"]}" fill-opacity="{1 - i * 0.13:.2f}" data-tip="{escape(tip)}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text class="count" x="{label_w + bar_w / 2}" y="{y + 22}" text-anchor="middle"'
            f' fill="#fff">{s.count}</text>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 22}">{escape(step)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _stage_table(model: FunnelModel) -> str:
    losses = {loss.at_stage: loss for loss in model.losses}
    rows, attrs = [], []
    for s in model.stages:
        loss = losses.get(s.stage)
        rows.append(
            [
                STAGE_LABELS[s.stage],
                str(s.count),
                pct(s.conversion),
                days(s.median_days),
                f"{STAGE_LABELS[loss.stage]} {loss.count}" if loss else "",
                pct(loss.rate) if loss else "",
                top_reasons(loss.reasons) if loss else "",
            ]
        )
        attrs.append(f'data-stage="{s.stage}"')
    return table(
        ["stage", "people", "conversion", "median days", "left", "loss %", "top reasons"],
        rows,
        css="stages",
        row_attrs=attrs,
        text_columns=(4, 6),
    )


def _loss_bars(model: FunnelModel) -> str:
    cards = []
    for loss in model.losses:
        title = (
            f"{STAGE_LABELS[loss.stage]} at {STAGE_LABELS[loss.at_stage]}: {loss.count} of "
            f"{loss.base} ({pct(loss.rate)})"
        )
        chart = hbar_chart(
            f"{STAGE_LABELS[loss.stage]} reasons",
            [
                (reason, float(n), COLOURS[loss.stage], f"{reason}: {n}")
                for reason, n in loss.reasons
            ],
        )
        cards.append(
            f'<div class="card" data-loss="{loss.stage}" data-count="{loss.count}">'
            f"<h3>{escape(title)}</h3>{chart}</div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def _reps(model: FunnelModel) -> str:
    if not model.reps:
        return "<p><em>No SLA clocks in the store: attainment appears once the SLA engine runs.</em></p>"
    return table(
        ["rep", "assignments", "attainment", "median accept min"],
        [
            [
                r.rep,
                str(r.assignments),
                rate_with_counts(r.met, r.met + r.missed),
                days(r.median_accept_minutes),
            ]
            for r in model.reps
        ],
        css="reps",
    )


def _breakdown(title: str, rows: tuple[BreakdownRow, ...]) -> str:
    body = [
        [
            r.value,
            *(str(r.counts[s]) for s in MAIN_PATH),
            rate_with_counts(r.counts["sal"], r.counts["mql"]),
            rate_with_counts(r.counts["won"], r.counts["won"] + r.counts["lost"]),
            money(r.pipeline),
            money(r.won_amount),
        ]
        for r in rows
    ]
    headers = [
        title,
        *(STAGE_LABELS[s] for s in MAIN_PATH),
        "SAL rate",
        "win rate",
        "pipeline",
        "won",
    ]
    return table(headers, body, css="breakdown")


def funnel_section(model: FunnelModel | None) -> str:
    """The whole section; a short explanation when the event log is still empty."""
    if model is None or model.people == 0:
        return (
            '<section id="funnel"><h2>Funnel</h2><p class="note">No person events yet. Run '
            "<code>crm-bridge funnel --backfill</code> once to read the systems' history; "
            "later runs add what the sync, SLA and reason engines record.</p></section>"
        )
    kpis = "".join(
        f'<div class="kpi" data-kpi="{k}"><b>{escape(v)}</b>{escape(label)}</div>'
        for k, label, v in (
            ("people", "people in the funnel", str(model.people)),
            ("pipeline", "pipeline", money(model.pipeline)),
            ("won", "won amount", money(model.won_amount)),
            ("velocity", "median days MQL to won", days(model.mql_to_won_days)),
        )
    )
    notes = []
    if model.future_events:
        notes.append(
            f"{model.future_events} events dated after today (close dates ahead) are left out."
        )
    if model.unattributed_deals:
        notes.append(f"Deals with no known person (not counted above): {model.unattributed_deals}.")
    parts = [
        '<section id="funnel"><h2>Funnel</h2>',
        f'<div class="kpis">{kpis}</div>',
        '<div class="grid"><div class="card wide">',
        _waterfall(model),
        '</div><div class="card"><h3>SAL stage: SLA attainment per rep</h3>',
        _reps(model),
        "</div></div>",
        _stage_table(model),
        "".join(f'<p class="note">{escape(n)}</p>' for n in notes),
        "<h3>Why people leave, by stage</h3>",
        _loss_bars(model),
        "<h3>By MQL month (cohort)</h3>",
        _breakdown("cohort", model.cohorts),
    ]
    for dimension in SHOWN_BREAKDOWNS:
        rows = model.breakdowns.get(dimension, ())
        label = (
            "content engagement (downloads, form fills)" if dimension == "engagement" else dimension
        )
        parts.append(f"<h3>By {escape(label)}</h3>")
        parts.append(_breakdown(dimension, rows))
    parts.append("</section>")
    return "".join(parts)
