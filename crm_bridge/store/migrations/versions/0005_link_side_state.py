"""Links say what they know of each side in columns, not in sentinel values.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Why: a link's per-side state used to hide in its values -- a version of ``None`` meant "our
write is unconfirmed", ``""`` meant "a merge survivor, read it as changed", and a ``"~pending"``
key inside the baseline JSON listed the fields of an unconfirmed write.  A reader of the table
could not see any of it, and the planner could not tell "our write did not land" from "a person
edited the record since", so it wrote its stale plan over the person's edit.  Now:

* ``crm_state`` / ``map_state``: ``synced`` | ``written`` | ``creating``;
* ``crm_pending`` / ``map_pending``: the fields of a write whose outcome is unknown and what the
  side held in them before (``{"fields": [...], "prior": {...}}``);
* ``crm_hash`` / ``map_hash`` are dropped: nothing read them (echoes are detected by comparing a
  read with the side's baseline).

Existing rows are converted so that they behave exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_PENDING_KEY = "~pending"
_SIDES = ("crm", "map")


def _convert(row: Any) -> dict[str, Any]:
    """One link row's new column values, from the old in-band encoding."""
    synced: dict[str, dict[str, Any]] = {s: dict((row.synced or {}).get(s, {})) for s in _SIDES}
    out: dict[str, Any] = {}
    for side in _SIDES:
        record_id, version = getattr(row, f"{side}_id"), getattr(row, f"{side}_version")
        baseline = synced[side]
        fields = baseline.pop(_OLD_PENDING_KEY, None)
        state, pending = "synced", None
        if record_id is None:
            state = "creating"
            pending = {"fields": sorted(fields or baseline), "prior": {}}
        elif version == "":
            out[f"{side}_version"] = None  # a merge survivor: known baseline, unknown version
        elif version is None and fields is not None:
            state, pending = "written", {"fields": sorted(fields), "prior": {}}
        elif version is None:
            # From before writes listed their fields: what was written must be there, and a
            # field that was never written adopts the vendor's value on the next read.
            for name in [k for k, v in baseline.items() if v is None]:
                del baseline[name]
            state, pending = "written", {"fields": sorted(baseline), "prior": {}}
        out[f"{side}_state"] = state
        out[f"{side}_pending"] = pending
    out["synced"] = synced
    return out


def upgrade() -> None:
    """Add the state columns, convert every link, drop the unused hashes."""
    with op.batch_alter_table("links", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column("crm_state", sa.String(16), nullable=False, server_default="synced")
        )
        batch.add_column(
            sa.Column("map_state", sa.String(16), nullable=False, server_default="synced")
        )
        batch.add_column(sa.Column("crm_pending", sa.JSON()))
        batch.add_column(sa.Column("map_pending", sa.JSON()))
    links = sa.table(
        "links",
        sa.column("id"),
        sa.column("crm_id"),
        sa.column("map_id"),
        sa.column("crm_version"),
        sa.column("map_version"),
        sa.column("synced", sa.JSON()),
        sa.column("crm_state"),
        sa.column("map_state"),
        sa.column("crm_pending", sa.JSON()),
        sa.column("map_pending", sa.JSON()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            links.c.id,
            links.c.crm_id,
            links.c.map_id,
            links.c.crm_version,
            links.c.map_version,
            links.c.synced,
        )
    ).all()
    for row in rows:
        conn.execute(sa.update(links).where(links.c.id == row.id).values(_convert(row)))
    with op.batch_alter_table("links", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.create_check_constraint(
            op.f("ck_links_crm_state"), "crm_state IN ('synced', 'written', 'creating')"
        )
        batch.create_check_constraint(
            op.f("ck_links_map_state"), "map_state IN ('synced', 'written', 'creating')"
        )
        batch.drop_column("crm_hash")
        batch.drop_column("map_hash")


def downgrade() -> None:
    """Put the hashes back (empty) and fold the states into the old in-band encoding."""
    with op.batch_alter_table("links", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("crm_hash", sa.String(128)))
        batch.add_column(sa.Column("map_hash", sa.String(128)))
    links = sa.table(
        "links",
        sa.column("id"),
        sa.column("crm_version"),
        sa.column("map_version"),
        sa.column("synced", sa.JSON()),
        sa.column("crm_state"),
        sa.column("map_state"),
        sa.column("crm_pending", sa.JSON()),
        sa.column("map_pending", sa.JSON()),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(links)).all():
        synced = {s: dict((row.synced or {}).get(s, {})) for s in _SIDES}
        values: dict[str, Any] = {}
        for side in _SIDES:
            pending = getattr(row, f"{side}_pending")
            if getattr(row, f"{side}_state") != "synced" and pending is not None:
                synced[side][_OLD_PENDING_KEY] = list(pending.get("fields", []))
                values[f"{side}_version"] = None
        values["synced"] = synced
        conn.execute(sa.update(links).where(links.c.id == row.id).values(values))
    with op.batch_alter_table("links", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("ck_links_crm_state", type_="check")
        batch.drop_constraint("ck_links_map_state", type_="check")
        batch.drop_column("crm_pending")
        batch.drop_column("map_pending")
        batch.drop_column("crm_state")
        batch.drop_column("map_state")
