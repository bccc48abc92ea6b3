"""The report as rich tables for the terminal (``crm-bridge report``, ``crm-bridge demo``).

Why rich: the CLI already prints with it, and a table per section reads better than one wide
table; ``render_lines`` returns plain strings so ``demo`` (and tests) can print or inspect them.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from crm_bridge.reports.model import ReportModel, category_label

__all__ = ["render_lines", "tables"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def tables(model: ReportModel) -> list[Table]:
    """Summary, reasons, per-dimension segments (every row), reps and months."""
    out: list[Table] = []
    summary = Table(title="win / loss / rejection")
    for col in ("outcomes", "won", "lost", "rejected", "disqualified", "win rate", "completeness"):
        summary.add_column(col, justify="right")
    c = model.counts
    summary.add_row(
        str(model.total),
        str(c["won"]),
        str(c["lost"]),
        str(c["lead_rejected"]),
        str(c["disqualified"]),
        _pct(model.win_rate),
        _pct(model.completeness),
    )
    out.append(summary)

    reasons = Table(title="reasons")
    reasons.add_column("category")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    reasons.add_column("share", justify="right")
    for cell in model.reasons:
        reasons.add_row(
            category_label(cell.category), cell.label, str(cell.count), _pct(cell.share)
        )
    out.append(reasons)

    for dimension, rows in model.segments.items():
        seg = Table(title=f"by {dimension.replace('_', ' ')}")
        for col in (
            "segment",
            "outcomes",
            "won",
            "lost",
            "rejected",
            "disqualified",
            "win rate",
            "top reasons",
        ):
            seg.add_column(col, justify="left" if col in ("segment", "top reasons") else "right")
        for row in rows:
            top = ", ".join(f"{r.label} {r.count}" for r in row.top_reasons(3))
            seg.add_row(
                row.value,
                str(sum(row.counts.values())),
                str(row.counts["won"]),
                str(row.counts["lost"]),
                str(row.counts["lead_rejected"]),
                str(row.counts["disqualified"]),
                _pct(row.win_rate),
                top,
            )
        out.append(seg)

    reps = Table(title="reason capture by rep")
    for col in ("rep", "outcomes", "valid first time", "flagged", "valid now", "completeness"):
        reps.add_column(col, justify="left" if col == "rep" else "right")
    for rep in model.reps:
        reps.add_row(
            rep.rep,
            str(rep.total),
            str(rep.first_time_valid),
            str(rep.flagged),
            str(rep.valid_now),
            _pct(rep.completeness),
        )
    out.append(reps)

    months = Table(title="by month")
    for col in (
        "month",
        "won",
        "lost",
        "rejected",
        "disqualified",
        "win rate",
        "no valid reason",
    ):
        months.add_column(col, justify="left" if col == "month" else "right")
    for m in model.months:
        months.add_row(
            f"{m.month} (ahead)" if m.future else m.month,
            str(m.counts["won"]),
            str(m.counts["lost"]),
            str(m.counts["lead_rejected"]),
            str(m.counts["disqualified"]),
            _pct(m.win_rate),
            str(m.without_reason),
        )
    out.append(months)
    return out


def render_lines(model: ReportModel, *, width: int = 110) -> list[str]:
    """The tables as plain text lines (no colour codes)."""
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as capture:
        for table in tables(model):
            console.print(table)
    return capture.get().splitlines()
