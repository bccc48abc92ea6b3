"""``crm-bridge sla status | explain | report | run``: sales-accepted-lead SLA clocks.

``status``, ``explain`` and ``report`` only read the store and the calendars in the config (no
CRM call), so they work while a CRM is down and show exactly what the engine decided.  ``run``
performs one evaluation cycle, the same one ``crm-bridge daemon`` runs each cycle.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from crm_bridge.cli._app import ConfigOption, SecretsFileOption, app, guarded, load, out
from crm_bridge.config import LoadedConfig
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.session import Session
from crm_bridge.sla.engine import build_engine
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sla.report import build_summary, explain_lines, open_status, report_lines
from crm_bridge.sla.repository import SlaRepository
from crm_bridge.sync.daemon import WRITER_LOCK

sla_app = typer.Typer(
    help="Sales-accepted-lead SLAs: open clocks, a lead's history, attainment reports.",
    no_args_is_help=True,
)
app.add_typer(sla_app, name="sla")


def _sla(loaded: LoadedConfig) -> SlaSettings:
    settings = loaded.settings.sla
    if settings is None:
        raise ConfigError(
            [
                ConfigProblem(
                    "sla",
                    "no [sla] section in the configuration",
                    fix="add [sla] with crm, calendars, reps, teams, policies (see docs/sla.md)",
                )
            ]
        )
    return settings


def _hm(minutes: int) -> str:
    sign = "-" if minutes < 0 else ""
    m = abs(minutes)
    return f"{sign}{m // 60}h{m % 60:02d}"


@sla_app.command("status")
def status(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Open clocks with business time left (negative = breached) and the steps taken so far.

    Example: crm-bridge sla status --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _sla(loaded)
        with Session(loaded) as session:
            lines = open_status(settings, session.store, session.now())
        table = Table(title=f"open SLA clocks ({len(lines)})")
        for col in ("lead", "policy", "rep", "clock", "state", "left", "deadline", "actions"):
            table.add_column(col, overflow="fold")
        for s in lines:
            table.add_row(
                s.lead_id,
                s.policy,
                s.rep,
                s.clock,
                s.state,
                _hm(s.left_minutes),
                s.deadline.isoformat(timespec="minutes"),
                ",".join(s.actions),
            )
        out.print(table)
        breached = sum(1 for s in lines if s.state == "breached")
        out.print(f"{len(lines)} running clocks, {breached} breached", markup=False)


@sla_app.command("explain")
def explain(
    lead_id: Annotated[str, typer.Argument(help="The CRM lead id.")],
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
) -> None:
    """A lead's clock history in business minutes, the calendar used and every action taken.

    Example: crm-bridge sla explain 00Q5g000000ABCDEAA --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _sla(loaded)
        with Session(loaded) as session:
            for line in explain_lines(settings, session.store, lead_id, session.now()):
                out.print(line, markup=False)


@sla_app.command("report")
def report(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Assignments of the last N days.")
    ] = 30,
) -> None:
    """Attainment % and median business time to accept / first touch per rep, team and source.

    Also the SAL rate by source and the delay split (systems vs human time).

    Example: crm-bridge sla report --config config.toml --days 90
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _sla(loaded)
        with Session(loaded) as session:
            now = session.now()
            since = now - timedelta(days=days)
            with session.store.transaction(readonly=True) as tx:
                rows = list(SlaRepository(tx).all_clocks(settings.crm.connector, since=since))
        out.print(
            f"SLA report: {len(rows)} assignments since {since.date().isoformat()}", markup=False
        )
        for line in report_lines(build_summary(rows, settings, now)):
            out.print(line, markup=False)


@sla_app.command("run")
def run(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Run one SLA cycle now: read events, evaluate every open clock, take due steps.

    Example: crm-bridge sla run --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _sla(loaded)
        with Session(loaded) as session:
            engine = build_engine(settings, session.connector, session.store, session.now)
            try:
                with session.store.writer_lock(WRITER_LOCK):
                    result = engine.run_cycle()
            finally:
                engine.close()
        out.print(result.summary(), markup=False)
        for error in result.errors:
            out.print(f"  error: {error}", markup=False)
