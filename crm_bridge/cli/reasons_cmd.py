"""``crm-bridge reasons plan|install|capture`` and ``crm-bridge report``.

Why ``plan`` is separate from ``install``: installing changes an org's schema (fields, rules,
properties) and admins review such changes before they happen; ``plan`` reads only and prints the
exact diff ``install`` will apply.  ``report`` reads only the state store, so it runs anywhere the
store is reachable, without API calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from crm_bridge.cli._app import (
    ConfigOption,
    OutputOption,
    SecretsFileOption,
    app,
    guarded,
    load,
    out,
    parse_since,
)
from crm_bridge.config import LoadedConfig
from crm_bridge.connector import Connector
from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.funnel.fill import funnel_from_store
from crm_bridge.reasons import install as installer
from crm_bridge.reasons.capture import ReasonCapture, person_links
from crm_bridge.reasons.repository import installed_at, record_install
from crm_bridge.reasons.taxonomy import ReasonsSettings
from crm_bridge.reports.model import report_from_store
from crm_bridge.reports.render_csv import render_csv
from crm_bridge.reports.render_html import render_html
from crm_bridge.reports.render_text import render_lines, tables
from crm_bridge.session import Session

reasons_app = typer.Typer(
    help="Win/loss and rejection reason codes: install the taxonomy, capture reasons.",
    no_args_is_help=True,
)
app.add_typer(reasons_app, name="reasons")


class ReportFormat(StrEnum):
    """Output formats of ``crm-bridge report``."""

    table = "table"
    csv = "csv"
    html = "html"


def _settings(loaded: LoadedConfig) -> ReasonsSettings:
    settings = loaded.settings.reasons
    if settings is None:
        raise ConfigError(
            [
                ConfigProblem(
                    "reasons",
                    "no [reasons] section: there is no taxonomy to work with",
                    fix="add [reasons] with version and [reasons.codes.CODE] tables "
                    "(see docs/reasons.md)",
                )
            ]
        )
    problems = [
        ConfigProblem(
            f"reasons.{key}",
            f"names connector {name!r}, which is not configured",
            fix=f"use one of: {', '.join(sorted(loaded.connectors)) or 'none configured'}",
        )
        for key, name in (("crm", settings.crm), ("marketing", settings.marketing))
        if name not in loaded.connectors
    ]
    if problems:
        raise ConfigError(problems)
    return settings


def _connectors(
    session: Session, settings: ReasonsSettings
) -> tuple[Connector[Any], Connector[Any]]:
    return session.connector(settings.crm), session.connector(settings.marketing)


@reasons_app.command("plan")
def plan(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Show what `reasons install` would change on both sides; changes nothing.

    Example: crm-bridge reasons plan --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _settings(loaded)
        with Session(loaded) as session:
            crm, marketing = _connectors(session, settings)
            for line in installer.plan(settings, crm=crm, marketing=marketing).lines():
                out.print(line, markup=False)


@reasons_app.command("install")
def install(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Create or update reason fields, rules and properties; a second run changes nothing.

    Example: crm-bridge reasons install --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
        settings = _settings(loaded)
        with Session(loaded) as session:
            crm, marketing = _connectors(session, settings)
            done = installer.apply(
                settings,
                crm=crm,
                marketing=marketing,
                on_step=lambda step: out.print(step.render(), markup=False),
            )
            with session.store.transaction() as tx:
                first = installed_at(tx)
                record_install(tx, version=done.version, changes=done.changes, now=session.now())
            out.print(f"taxonomy version {done.version}: {done.changes} change(s)", markup=False)
            since = first or session.now()
            out.print(
                f"installed since {since.isoformat(timespec='seconds')}: `reasons capture` "
                "ignores outcomes closed before then (pass --since DATE to include them)",
                markup=False,
            )


@reasons_app.command("capture")
def capture(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Capture outcomes closed on/after this date (default: when `reasons install` "
            "ran; 1970-01-01 for all history).",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Print what would be flagged and pushed; write nothing."),
    ] = False,
) -> None:
    """Run one capture cycle: read closed deals and rejected leads, flag, push, expire lists.

    Reasons are pushed only to people the sync has linked; closed outcomes from before the
    taxonomy's install are left alone unless --since says otherwise.

    Example: crm-bridge reasons capture --config config.toml --plan --since 2026-01-01
    """
    cutoff = parse_since(since)
    with guarded():
        loaded = load(config, secrets_file)
        settings = _settings(loaded)
        with Session(loaded) as session:
            crm, marketing = _connectors(session, settings)
            links = person_links(loaded.settings.pairs, settings)
            capture = ReasonCapture(
                settings,
                crm=crm,
                marketing=marketing,
                store=session.store,
                now=session.now,
                links=links,
                since=cutoff if cutoff is not None else "installed",
                plan=plan,
            )
            if links is None:
                out.print(
                    f"note: no pair syncs {settings.crm}'s people with {settings.marketing}'s "
                    f"{settings.marketing_fields.contact_object}, so no reason can be pushed -> "
                    f"add a [pairs.NAME] with crm = {settings.crm!r} and map = "
                    f'{settings.marketing!r} (e.g. preset = "hubspot_salesforce")',
                    markup=False,
                )
            if capture.since is None:
                out.print(
                    "note: no install time recorded, so every closed outcome is captured -> "
                    "run `crm-bridge reasons install` (it records the time) or pass --since DATE",
                    markup=False,
                )
            if plan:
                report = capture.run_cycle()
            else:
                with session.store.writer_lock("reasons"):
                    report = capture.run_cycle()
            head = "reasons (plan, nothing written)" if plan else "reasons"
            out.print(f"{head}: {report.summary()}", markup=False)
            verb = "would flag" if plan else "flagged"
            for line in report.flagged:
                out.print(f"  {verb} {line}", markup=False)
            for line in report.pushes:
                out.print(f"  would push {line}", markup=False)


@app.command("report")
def report(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="table (terminal), csv or html.")
    ] = ReportFormat.table,
    output: OutputOption = None,
) -> None:
    """Win/loss/rejection counts and rates by reason and segment, rep completeness, monthly trend.

    The HTML report opens with the funnel of the person event log (``crm-bridge funnel`` fills it).

    Example: crm-bridge report --config config.toml --format html --output report.html
    """
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            now = datetime.now(UTC)
            model = report_from_store(session.store, loaded.settings.reasons, generated_at=now)
            sla = loaded.settings.sla
            funnel = funnel_from_store(
                session.store,
                generated_at=now,
                crm=sla.crm.connector if sla is not None else None,
            )
        if fmt is ReportFormat.table and output is None:
            for table in tables(model):
                out.print(table)
            return
        if fmt is ReportFormat.html:
            text = render_html(model, funnel=funnel)
        elif fmt is ReportFormat.csv:
            text = render_csv(model)
        else:
            text = "\n".join(render_lines(model)) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"wrote {output}", markup=False)
