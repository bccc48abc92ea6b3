"""``crm-bridge new-connector NAME``: scaffold a connector package that passes the kit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crm_bridge.cli._app import app, err_console, out
from crm_bridge.scaffold import ScaffoldError, scaffold


@app.command("new-connector")
def new_connector(
    name: Annotated[str, typer.Argument(help="The connector's type name, e.g. acme_crm.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create crm-bridge-NAME/.", file_okay=False)
    ] = Path("."),
) -> None:
    """Write a connector package (settings, connector, fake API, kit test, entry point).

    Example: crm-bridge new-connector acme_crm --dir ~/src
    """
    try:
        root = scaffold(name, directory)
    except ScaffoldError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    out.print(f"created {root}", markup=False)
    out.print(f'next: cd {root} && pip install -e ".[test]" && pytest', markup=False)
