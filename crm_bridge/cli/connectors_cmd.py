"""``crm-bridge connectors list`` and ``crm-bridge check``: what is installed, and does it answer."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.table import Table

from crm_bridge.cli._app import ConfigOption, SecretsFileOption, app, guarded, load, out
from crm_bridge.connector import Connector, describe_capabilities
from crm_bridge.errors import CrmBridgeError
from crm_bridge.registry import installed_connectors

connectors_app = typer.Typer(help="Connectors installed in this environment.", no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")


def _objects_of(cls: type[Connector[Any]]) -> str:
    """Object names served with default settings (best effort: some depend on settings)."""
    try:
        instance = cls(cls.Settings.model_construct(), name="probe")
        return ", ".join(spec.name for spec in instance.objects())
    except Exception:
        return "(depends on settings)"


@connectors_app.command("list")
def list_connectors() -> None:
    """List installed connectors with their objects and capabilities.

    Example: crm-bridge connectors list
    """
    table = Table(title="installed connectors")
    table.add_column("name", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("objects")
    table.add_column("capabilities")
    table.add_column("description")
    with guarded():
        builtin_only = os.environ.get("CRM_BRIDGE_DISABLE_PLUGINS") == "1"
        for name, entry in installed_connectors(builtin_only=builtin_only).items():
            cls = entry.load()
            table.add_row(
                name,
                entry.distribution,
                _objects_of(cls),
                describe_capabilities(cls.capabilities),
                cls.description,
            )
    out.print(table)


@app.command("check")
def check(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Make one cheap authenticated call per configured connector; pass/fail for each.

    Example: crm-bridge check --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
    if not loaded.connectors:
        out.print("no connectors configured")
        raise typer.Exit(2)
    worst = 0
    for name, conn in loaded.connectors.items():
        try:
            with conn.create() as connector:
                who = connector.check()
            out.print(f"PASS {name} ({conn.type_name}): {who}", markup=False)
        except CrmBridgeError as exc:
            out.print(f"FAIL {name} ({conn.type_name}): {exc}", markup=False)
            worst = max(worst, exc.exit_code)
    raise typer.Exit(worst)
