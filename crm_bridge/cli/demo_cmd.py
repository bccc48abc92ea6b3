"""``crm-bridge demo``: the whole product on local emulators and SQLite, no account needed."""

from __future__ import annotations

from typing import Annotated

import typer

from crm_bridge.cli._app import app, guarded, out
from crm_bridge.emulators import require_emulators
from crm_bridge.errors import ConfigError, ConfigProblem

_PAIRS = ("hubspot_salesforce", "marketo_hubspot")


@app.command("demo")
def demo(
    leads: Annotated[int, typer.Option("--leads", help="Salesforce leads to seed.")] = 1000,
    contacts: Annotated[int, typer.Option("--contacts", help="HubSpot contacts to seed.")] = 500,
    cycles: Annotated[int, typer.Option("--cycles", help="Sync cycles to run.")] = 3,
    pair: Annotated[
        str,
        typer.Option(
            "--pair",
            help="hubspot_salesforce (default: Salesforce CRM <-> HubSpot) or marketo_hubspot "
            "(HubSpot as the CRM <-> Marketo; seeds --leads Marketo leads).",
        ),
    ] = "hubspot_salesforce",
) -> None:
    """Start both emulators, seed them, sync while people edit both sides, then show SLAs and reasons.

    Example: crm-bridge demo --leads 2000 --cycles 3
             crm-bridge demo --pair marketo_hubspot --leads 200
    """
    with guarded():
        require_emulators("demo")
        if pair not in _PAIRS:
            raise ConfigError(
                [
                    ConfigProblem(
                        "--pair",
                        f"unknown demo pair {pair!r}",
                        fix=f"use one of: {', '.join(_PAIRS)}",
                    )
                ]
            )
    if pair == "marketo_hubspot":
        from crm_bridge.demo.marketo_scenario import run_marketo_demo

        raise typer.Exit(
            run_marketo_demo(leads=leads, cycles=cycles, say=lambda s: out.print(s, markup=False))
        )
    from crm_bridge.demo.scenario import run_demo

    raise typer.Exit(
        run_demo(
            leads=leads, contacts=contacts, cycles=cycles, say=lambda s: out.print(s, markup=False)
        )
    )
