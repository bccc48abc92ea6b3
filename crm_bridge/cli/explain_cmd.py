"""``crm-bridge explain RECORD``: why a record is (or is not) in sync, in one screen.

Why a verb of its own: "why isn't this record synced?" used to mean reading the links table,
``dlq list`` and the audit log by hand.  Everything is in :mod:`crm_bridge.ops.explain`; this
renders it.  The store is only read; the vendors are read (one fetch per side) unless
``--offline``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from crm_bridge.cli._app import ConfigOption, SecretsFileOption, app, guarded, load, out
from crm_bridge.ops.explain import Explanation, explain
from crm_bridge.session import Session

__all__ = ["explain_command"]


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _render(ex: Explanation) -> None:
    link = ex.link
    if link is None:
        out.print(f"no link for {ex.query!r}", markup=False)
    else:
        out.print(
            f"link {link.id}: pair {link.pair}, object {link.obj}, {link.status}; "
            f"crm {link.crm_id or '-'} ({link.crm_state}) <-> map {link.map_id or '-'} "
            f"({link.map_state}); identity {link.identity or '-'}; "
            f"updated {link.updated_at.isoformat(timespec='seconds')}",
            markup=False,
        )
        for other in ex.other_links:
            out.print(
                f"  also link {other.id} ({other.pair}/{other.obj}, {other.status})", markup=False
            )
    if ex.fields:
        table = Table(title="fields (logical values)")
        for col in (
            "field",
            "rule",
            "crm now",
            "crm baseline",
            "map now",
            "map baseline",
            "last decision",
        ):
            table.add_column(col, overflow="fold")
        for f in ex.fields:
            d = f.decision
            decided = (
                "-"
                if d is None
                else f"{d.rule} -> {d.winner} (crm={_show(d.crm_value)} map={_show(d.map_value)}, "
                f"{d.at.isoformat(timespec='seconds')})"
            )
            mark = " *" if f.differs() else ""
            table.add_row(
                f.name + mark,
                f.rule if f.direction == "both" else f"{f.rule} ({f.direction})",
                _show(f.current.get("crm")) if "crm" in f.current else "(not read)",
                _show(f.baseline.get("crm")),
                _show(f.current.get("map")) if "map" in f.current else "(not read)",
                _show(f.baseline.get("map")),
                decided,
            )
        out.print(table)
    if ex.dead_letters:
        table = Table(title="dead letters")
        for col in ("id", "status", "rejected by", "code", "reason", "attempts", "last seen"):
            table.add_column(col, overflow="fold")
        for dl in ex.dead_letters:
            table.add_row(
                str(dl.id),
                dl.status,
                dl.side,
                dl.error_code or "",
                dl.reason,
                str(dl.attempts),
                dl.last_seen.isoformat(timespec="seconds"),
            )
        out.print(table)
    if ex.audit:
        out.print("audit trail:", markup=False)
        for entry in ex.audit:
            data = json.dumps(dict(entry.data), default=str, sort_keys=True)
            out.print(
                f"  {entry.at.isoformat(timespec='seconds')} {entry.kind} {entry.subject} {data}",
                markup=False,
            )
    for note in ex.notes:
        out.print(f"note: {note}", markup=False)
    out.print(ex.summary, markup=False)


@app.command("explain")
def explain_command(
    record: Annotated[str, typer.Argument(help="A CRM id, a marketing id, or an e-mail.")],
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: Annotated[
        str | None, typer.Option("--pair", "-p", help="Only this pair's links.")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Read the store only; do not call the vendors.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a record's link, values vs baselines, last decisions, dead letters and audit trail.

    The last line says whether it is in sync and, if not, why.

    Example: crm-bridge explain 00Q5e000001AbCd --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            if pair is not None:
                session.pair_names(pair)  # a ConfigError naming the pairs if unknown
            ex = explain(session, record, pair=pair, live=not offline)
            if as_json:
                out.print(json.dumps(ex.to_json(), indent=2, default=str), markup=False)
            else:
                _render(ex)
