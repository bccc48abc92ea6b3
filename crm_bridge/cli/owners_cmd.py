"""``crm-bridge owners``: both sides' owners of each pair and how the sync maps them.

Why a command of its own: owner fields are matched by e-mail (a Salesforce User and a HubSpot
owner are the same person when their e-mails agree), and a record whose owner has no twin on the
other side is dead-lettered ``OWNER_NOT_FOUND`` unless the pair names a default owner.  Before
this command an admin found the ids for ``default_crm_owner`` / ``default_map_owner`` with curl
after a first sync had already dead-lettered thousands of records; now one read of each side's
owners shows, before any write, who matches, who falls to a default and who would dead-letter.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from crm_bridge.cli._app import ConfigOption, SecretsFileOption, app, guarded, load, out
from crm_bridge.config import env_var_for
from crm_bridge.connector import Capability, Connector
from crm_bridge.session import Session
from crm_bridge.store import Side
from crm_bridge.sync.owners import OwnerMatch, match_owners

STRICT_UNMATCHED_EXIT = 6
"""``owners --strict``'s exit code when an owner would dead-letter (no e-mail twin, no default)."""

DEFAULT_KEYS: tuple[tuple[Side, str], ...] = (
    ("crm", "default_crm_owner"),
    ("map", "default_map_owner"),
)
FALLBACKS: tuple[tuple[Side, Side, str], ...] = (
    ("crm", "map", "default_map_owner"),
    ("map", "crm", "default_crm_owner"),
)
"""(owner's side, the side its records are written to, the default owner key used there)."""

_HOW = {
    "email": "same e-mail",
    "owner_map": "owner_map",
    "default": "default owner",
    "unmatched": "UNMATCHED",
}


def _describe(match: OwnerMatch) -> str:
    if match.target is not None:
        return f"{match.target.id} {match.target.email}"
    return match.target_id or "-"


@app.command("owners")
def owners(
    config: ConfigOption = None,
    secrets_file: SecretsFileOption = None,
    pair: Annotated[
        str | None, typer.Option("--pair", "-p", help="Only this pair (default: every pair).")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 6 when an owner would be dead-lettered."),
    ] = False,
) -> None:
    """List both sides' owners of each pair and how they match (e-mail, default, unmatched).

    Reads each connector's owners once; writes nothing.

    Example: crm-bridge owners --config config.toml --pair main
    """
    would_fail = False
    with guarded():
        loaded = load(config, secrets_file)
        with Session(loaded) as session:
            for name in session.pair_names(pair):
                settings = loaded.settings.pairs[name]
                connectors: dict[Side, Connector[Any]] = {
                    "crm": session.connector(settings.crm),
                    "map": session.connector(settings.map),
                }
                lists = {
                    side: list(conn.owners()) if Capability.OWNERS in conn.capabilities else []
                    for side, conn in connectors.items()
                }
                defaults: dict[Side, str | None] = {
                    "crm": settings.default_crm_owner,
                    "map": settings.default_map_owner,
                }
                matches = match_owners(
                    lists["crm"], lists["map"], defaults=defaults, owner_map=settings.owner_map
                )
                table = Table(title=f"pair {name}: {settings.crm} (crm) <-> {settings.map} (map)")
                for col in ("side", "owner id", "e-mail", "name", "active", "match", "other side"):
                    table.add_column(col, overflow="fold")
                for m in matches:
                    table.add_row(
                        f"{m.side} ({connectors[m.side].name})",
                        m.owner.id,
                        m.owner.email,
                        m.owner.name,
                        "yes" if m.owner.active else "no",
                        _HOW[m.kind],
                        _describe(m),
                    )
                out.print(table)
                for side, conn in connectors.items():
                    if Capability.OWNERS not in conn.capabilities:
                        out.print(
                            f"  {side} connector {conn.name} has no owners to list", markup=False
                        )
                ids = {side: {o.id for o in found} for side, found in lists.items()}
                for side, key in DEFAULT_KEYS:
                    default = defaults[side]
                    if default and lists[side] and default not in ids[side]:
                        would_fail = True
                        out.print(
                            f"  pairs.{name}.{key} = {default!r} is no {side} owner of "
                            f"{connectors[side].name} -> use an owner id from the table above",
                            markup=False,
                        )
                for side, other, key in FALLBACKS:
                    unmatched = [m for m in matches if m.side == side and m.kind == "unmatched"]
                    mine = [m for m in matches if m.side == side]
                    by_mail = sum(1 for m in mine if m.kind in ("email", "owner_map"))
                    line = f"  {side} owners: {by_mail} of {len(mine)} match by e-mail"
                    if any(m.kind == "owner_map" for m in mine):
                        line += f" (or pairs.{name}.owner_map)"
                    if any(m.kind == "default" for m in mine):
                        line += f", the rest go to {key} {defaults[other]}"
                    out.print(line, markup=False)
                    if unmatched:
                        would_fail = True
                        out.print(
                            f"  {len(unmatched)} {side} owner(s) have no {other} twin: their "
                            f"records dead-letter OWNER_NOT_FOUND -> give them a {other} user with "
                            f"the same e-mail, or set pairs.{name}.{key} "
                            f"(env {env_var_for('pairs', name, key)}) to an owner id above",
                            markup=False,
                        )
    if strict and would_fail:
        raise typer.Exit(STRICT_UNMATCHED_EXIT)
