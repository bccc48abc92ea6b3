"""``crm-bridge demo``: the whole product on local emulators and SQLite, no account needed."""

from __future__ import annotations

from typing import Annotated

import typer

from crm_bridge.cli._app import app, guarded, out
from crm_bridge.emulators import require_emulators


@app.command("demo")
def demo(
    leads: Annotated[int, typer.Option("--leads", help="Salesforce leads to seed.")] = 1000,
    contacts: Annotated[int, typer.Option("--contacts", help="HubSpot contacts to seed.")] = 500,
    cycles: Annotated[int, typer.Option("--cycles", help="Sync cycles to run.")] = 3,
) -> None:
    """Start both emulators, seed them, sync while people edit both sides, then show SLAs and reasons.

    Example: crm-bridge demo --leads 2000 --cycles 3
    """
    with guarded():
        require_emulators("demo")
    from crm_bridge.demo.scenario import run_demo

    raise typer.Exit(
        run_demo(
            leads=leads, contacts=contacts, cycles=cycles, say=lambda s: out.print(s, markup=False)
        )
    )
