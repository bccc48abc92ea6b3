"""``crm-bridge config ...``: validate a configuration without touching any system."""

from __future__ import annotations

import typer

from crm_bridge.cli._app import ConfigOption, SecretsFileOption, app, guarded, load, out

config_app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def check(config: ConfigOption = None, secrets_file: SecretsFileOption = None) -> None:
    """Validate the TOML, environment and secrets file; list every problem at once (exit 2).

    Example: crm-bridge config check --config config.toml
    """
    with guarded():
        loaded = load(config, secrets_file)
    where = str(loaded.source) if loaded.source else "environment only"
    out.print(f"configuration OK ({where})")
    out.print(f"  store: {loaded.settings.store.url.split('://')[0]}")
    for name, conn in loaded.connectors.items():
        out.print(f"  connector {name}: type {conn.type_name}")
    for name, pair in loaded.settings.pairs.items():
        objects = ", ".join(sorted(pair.objects))
        out.print(f"  pair {name}: {pair.crm} <-> {pair.map} ({objects})", markup=False)
    sla = loaded.settings.sla
    if sla is not None and sla.marketing is not None:
        out.print(
            f"  sla: leads of {sla.crm.connector} linked through pair {sla.marketing.link_pair} / "
            f"{sla.marketing.link_object}",
            markup=False,
        )
