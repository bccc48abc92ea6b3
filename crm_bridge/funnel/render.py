"""The funnel as terminal tables, long-format CSV and JSON (``crm-bridge funnel --format``).

Why the renderers only format: every number comes from :class:`~crm_bridge.funnel.model.FunnelModel`,
which the brute-force test checks; a renderer that computed anything would need its own proof.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from crm_bridge.funnel.events import LOSS_STAGES, MAIN_PATH
from crm_bridge.funnel.model import BreakdownRow, FunnelModel

__all__ = ["CSV_COLUMNS", "STAGE_LABELS", "render_csv", "render_json", "render_lines", "tables"]

STAGE_LABELS = {
    "mql": "MQL",
    "sal": "SAL",
    "sql": "SQL",
    "opportunity": "Opportunity",
    "won": "Won",
    "rejected": "Rejected",
    "disqualified": "Disqualified",
    "lost": "Lost",
}
LOSS_AT = {at: loss for loss, at in LOSS_STAGES.items()}
CSV_COLUMNS = ("section", "dimension", "value", "stage", "count", "rate", "days", "amount")


def pct(value: float | None) -> str:
    """``0.4567`` -> ``46%``; ``-`` when there is nothing to divide by."""
    return "-" if value is None else f"{value:.0%}"


def days(value: float | None) -> str:
    """Median days with one decimal; ``-`` when no one was dated on both ends."""
    return "-" if value is None else f"{value:.1f}"


def money(value: float) -> str:
    """``1234567.0`` -> ``1,234,567``."""
    return f"{value:,.0f}"


def top_reasons(reasons: tuple[tuple[str, int], ...], n: int = 3) -> str:
    """The ``n`` largest reasons, e.g. ``price 4, competitor 2``."""
    return ", ".join(f"{r} {c}" for r, c in reasons[:n])


def _period(model: FunnelModel) -> str:
    since = model.since.date().isoformat() if model.since else "the start"
    until = model.until.date().isoformat() if model.until else model.generated_at.date().isoformat()
    return f"people who became MQL from {since} to {until}"


def tables(model: FunnelModel) -> list[Table]:
    """Stages with losses, amounts, SLA per rep, cohorts and every breakdown."""
    out: list[Table] = []
    stages = Table(title=f"funnel: {model.people} {_period(model)}")
    for col in ("stage", "people", "conversion", "median days", "left", "loss %", "top reasons"):
        stages.add_column(
            col, justify="left" if col in ("stage", "left", "top reasons") else "right"
        )
    losses = {loss.at_stage: loss for loss in model.losses}
    for row in model.stages:
        loss = losses.get(row.stage)
        stages.add_row(
            STAGE_LABELS[row.stage],
            str(row.count),
            pct(row.conversion),
            days(row.median_days),
            f"{STAGE_LABELS[loss.stage]} {loss.count}" if loss else "",
            pct(loss.rate) if loss else "",
            top_reasons(loss.reasons) if loss else "",
        )
    out.append(stages)
    amounts = Table(title="amounts and velocity")
    for col in (
        "pipeline",
        "won",
        "MQL -> won median days",
        "deals without a person",
        "future events",
    ):
        amounts.add_column(col, justify="right")
    amounts.add_row(
        money(model.pipeline),
        money(model.won_amount),
        days(model.mql_to_won_days),
        str(model.unattributed_deals),
        str(model.future_events),
    )
    out.append(amounts)
    if model.reps:
        reps = Table(title="SAL stage: SLA attainment per rep")
        for col in ("rep", "assignments", "met", "missed", "attainment", "median accept min"):
            reps.add_column(col, justify="left" if col == "rep" else "right")
        for rep in model.reps:
            reps.add_row(
                rep.rep,
                str(rep.assignments),
                str(rep.met),
                str(rep.missed),
                pct(rep.attainment),
                days(rep.median_accept_minutes),
            )
        out.append(reps)
    out.append(_breakdown("by MQL month (cohort)", "cohort", model.cohorts))
    for dimension, rows in model.breakdowns.items():
        out.append(_breakdown(f"by {dimension.replace('_', ' ')}", dimension, rows))
    return out


def _breakdown(title: str, dimension: str, rows: tuple[BreakdownRow, ...]) -> Table:
    table = Table(title=title)
    table.add_column(dimension.replace("_", " "))
    for stage in MAIN_PATH:
        table.add_column(STAGE_LABELS[stage], justify="right")
    for col in ("SAL rate", "win rate", "pipeline", "won amount"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(
            row.value,
            *(str(row.counts[s]) for s in MAIN_PATH),
            pct(row.sal_rate),
            pct(row.win_rate),
            money(row.pipeline),
            money(row.won_amount),
        )
    return table


def render_lines(model: FunnelModel, *, width: int = 120) -> list[str]:
    """The tables as plain text lines (no colour codes)."""
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as capture:
        for table in tables(model):
            console.print(table)
    return capture.get().splitlines()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render_json(model: FunnelModel) -> str:
    """The whole model as one JSON document (rates as fractions, times ISO 8601)."""
    return json.dumps(_plain(asdict(model)), indent=2, sort_keys=False) + "\n"


def render_csv(model: FunnelModel) -> str:
    """Long format: one row per stage, loss, reason, rep and breakdown cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()

    def add(**values: object) -> None:
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update({k: "" if v is None else str(v) for k, v in values.items()})
        writer.writerow(row)

    def frac(x: float | None) -> str:
        return "" if x is None else f"{x:.4f}"

    for s in model.stages:
        add(
            section="stage",
            stage=s.stage,
            count=s.count,
            rate=frac(s.conversion),
            days=s.median_days,
        )
    for loss in model.losses:
        add(
            section="loss",
            stage=loss.stage,
            value=loss.at_stage,
            count=loss.count,
            rate=frac(loss.rate),
        )
        for reason, n in loss.reasons:
            add(section="loss_reason", stage=loss.stage, value=reason, count=n)
    add(section="amount", stage="opportunity", amount=model.pipeline)
    add(section="amount", stage="won", amount=model.won_amount)
    for rep in model.reps:
        add(section="sla", value=rep.rep, count=rep.assignments, rate=frac(rep.attainment))
    for dimension, rows in {"cohort": model.cohorts, **model.breakdowns}.items():
        for row in rows:
            for stage in (*MAIN_PATH, *LOSS_STAGES):
                add(
                    section="breakdown",
                    dimension=dimension,
                    value=row.value,
                    stage=stage,
                    count=row.counts[stage],
                )
            add(
                section="breakdown",
                dimension=dimension,
                value=row.value,
                stage="sal_rate",
                rate=frac(row.sal_rate),
            )
            add(
                section="breakdown",
                dimension=dimension,
                value=row.value,
                stage="win_rate",
                rate=frac(row.win_rate),
            )
            add(
                section="breakdown",
                dimension=dimension,
                value=row.value,
                stage="won",
                amount=row.won_amount,
            )
    return buffer.getvalue()
