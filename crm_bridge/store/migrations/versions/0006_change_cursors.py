"""The sync's change cursors become typed keyset rows (``change_cursors``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Why: a sync cursor used to be one timestamp in ``cursors.value``, with a ``"#settled"`` suffix
once its overlap had been re-read.  A timestamp alone cannot say where a capped read stopped:
when more records than ``max_records_per_cycle`` shared the overlap window, every cycle re-read
the same page and the cursor never moved.  A cursor is now the (modified_at, id) of the last
record taken plus an explicit phase (``scanning`` | ``overlap`` | ``settled``).

Existing sync cursors (every ``cursors`` row except the SLA's ``sla:*`` and the reason engine's
``reasons`` rows, which stay) move over in phase ``overlap`` at their timestamp: the next cycle
re-reads the overlap window behind it, which is what the old cursor would have done or already
did -- re-reading costs reads, never writes.  Their ``newest_id`` is the empty string, which
sorts before every record id: "just before this instant", exactly what the old cursor said.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
_SETTLED = "#settled"


def _is_sync_cursor(pair: str) -> bool:
    return pair != "reasons" and not pair.startswith("sla:")


def _bind(moment: datetime, dialect: str) -> datetime:
    """What the schema's UtcDateTime stores: aware on PostgreSQL, naive UTC text on SQLite."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None) if dialect == "sqlite" else moment


def upgrade() -> None:
    """Create the table and move the sync cursors over."""
    table = op.create_table(
        "change_cursors",
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("newest_at", TS, nullable=False),
        sa.Column("newest_id", sa.String(255), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("position_at", TS),
        sa.Column("position_id", sa.String(255)),
        sa.Column("found_newer", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("side IN ('crm', 'map')", name=op.f("ck_change_cursors_side")),
        sa.CheckConstraint(
            "phase IN ('scanning', 'overlap', 'settled')", name=op.f("ck_change_cursors_phase")
        ),
        sa.CheckConstraint(
            "(phase = 'scanning') = (position_at IS NOT NULL AND position_id IS NOT NULL)",
            name=op.f("ck_change_cursors_position_only_while_scanning"),
        ),
        sa.PrimaryKeyConstraint("pair", "side", "object", name=op.f("pk_change_cursors")),
    )
    assert table is not None
    cursors = sa.table(
        "cursors",
        sa.column("pair"),
        sa.column("side"),
        sa.column("object"),
        sa.column("value"),
        sa.column("updated_at", TS),
    )
    conn = op.get_bind()
    dialect = conn.dialect.name
    moved = []
    for row in conn.execute(sa.select(cursors)).all():
        if not _is_sync_cursor(row.pair):
            continue
        try:
            at = datetime.fromisoformat(str(row.value).removesuffix(_SETTLED))
        except ValueError:
            continue  # not a sync cursor: leave it where it is
        moved.append(row)
        conn.execute(
            sa.insert(table).values(
                pair=row.pair,
                side=row.side,
                object=row.object,
                newest_at=_bind(at, dialect),
                newest_id="",
                phase="overlap",
                found_newer=False,
                updated_at=row.updated_at,
            )
        )
    for row in moved:
        conn.execute(
            sa.delete(cursors).where(
                cursors.c.pair == row.pair,
                cursors.c.side == row.side,
                cursors.c.object == row.object,
            )
        )


def downgrade() -> None:
    """Fold each keyset cursor back into a timestamp (a position mid-scan becomes its time)."""
    table = sa.table(
        "change_cursors",
        sa.column("pair"),
        sa.column("side"),
        sa.column("object"),
        sa.column("newest_at", TS),
        sa.column("phase"),
        sa.column("position_at", TS),
        sa.column("updated_at", TS),
    )
    cursors = sa.table(
        "cursors",
        sa.column("pair"),
        sa.column("side"),
        sa.column("object"),
        sa.column("value"),
        sa.column("updated_at", TS),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(table)).all():
        at = row.position_at if row.phase == "scanning" else row.newest_at
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        value = at.isoformat() + (_SETTLED if row.phase == "settled" else "")
        conn.execute(
            sa.insert(cursors).values(
                pair=row.pair,
                side=row.side,
                object=row.object,
                value=value,
                updated_at=row.updated_at,
            )
        )
    op.drop_table("change_cursors")
