"""``crm-bridge funnel``: fill the person event log, then show the funnel (table, CSV, JSON).

Why filling is part of the verb: the log is derived from the store (audit log, SLA clocks, reason
outcomes) and that costs no API call, so every run brings it up to date first.  ``--backfill``
also reads the systems' own history (lifecycle dates, lead statuses, conversions, opportunities)
-- a full read of contacts, leads and deals, so it is asked for, not done on every run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated

import typer

from crm_bridge.cli._app import (
    ConfigOption,
    OutputOption,
    SecretsFileOption,
    app,
    guarded,
    load,
    out,
)
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.funnel.fill import fill_log, funnel_from_store, pair_sources
from crm_bridge.funnel.render import render_csv, render_json, render_lines, tables
from crm_bridge.session import Session

__all__ = ["FunnelFormat", "funnel"]


class FunnelFormat(StrEnum):
    """Output formats of ``crm-bridge funnel``."""

    table = "table"
    csv = "csv"
    json = "json"


def _day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
    except ValueError:
        raise ConfigError(
            [ConfigProblem(option, f"{value!r} is not a date", fix="use YYYY-MM-DD")]
        ) from None


@app.command("funnel")
def funnel(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    fmt: Annotated[
        FunnelFormat, typer.Option("--format", "-f", help="table (terminal), csv or json.")
    ] = FunnelFormat.table,
    output: OutputOption = None,
    pair: Annotated[str | None, typer.Option("--pair", help="Only this pair.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="People who became MQL on/after YYYY-MM-DD.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="... and before YYYY-MM-DD.")] = None,
    backfill: Annotated[
        bool,
        typer.Option("--backfill", help="Also read the systems' history (full read, API calls)."),
    ] = False,
) -> None:
    """MQL -> SAL -> SQL -> opportunity -> won: counts, conversion %, median days, losses, amounts.

    Example: crm-bridge funnel --config config.toml --backfill --since 2026-01-01 --format csv
    """
    with guarded():
        start, end = _day(since, "--since"), _day(until, "--until")
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            sources = pair_sources(session, session.pair_names(pair))
            filled = fill_log(session.store, sources, now=session.now, backfill=backfill)
            sla = loaded.settings.sla
            crm = (
                sla.crm.connector
                if sla is not None
                else next((s.crm.name for s in sources.values()), None)
            )
            model = funnel_from_store(
                session.store, generated_at=session.now(), crm=crm, since=start, until=end
            )
        if fmt is FunnelFormat.table and output is None:
            out.print(f"event log: {filled.summary()}", markup=False)
            for table in tables(model):
                out.print(table)
            return
        if fmt is FunnelFormat.csv:
            text = render_csv(model)
        elif fmt is FunnelFormat.json:
            text = render_json(model)
        else:
            text = "\n".join(render_lines(model)) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"event log: {filled.summary()}; wrote {output}", markup=False)
