"""Lookup indexes that lead with the looked-up column, and a partial index of pending links.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

Why: every link lookup filtered on ``pair = ? AND object = ?`` and the indexes all led with those
two columns.  Without statistics (SQLite never gathers any by itself; PostgreSQL not before
autovacuum's first ``ANALYZE``) both planners assume an equality on a leading column is
selective, so ``pair = ? AND object = ? AND status = 'active' AND crm_id IN (<100 ids>)`` was
served by ``(pair, object, status, id)`` -- a scan of every active link, per write batch (80-135
ms at 98k links instead of 0.2 ms).  Now the id, identity and record-key indexes *lead* with the
looked-up column, the status index leads with ``status`` (which the lookups no longer filter on in
SQL), and the due-retry index holds open items only (a partial index the record-key lookup, which
has no status condition, cannot use).  Each lookup then has exactly one index
whose leading column it constrains, so no statistics can talk a planner out of it.

``ix_links_pending`` holds only half links (``crm_id IS NULL OR map_id IS NULL``: creates in
flight and unpaired deletes), so ``pending_links`` reads a handful of rows instead of every active
link of the object.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HALF = sa.text("crm_id IS NULL OR map_id IS NULL")
OPEN = sa.text("status = 'open'")

# (name, table, columns) before and after; the partial unique indexes stay as they are.
_OLD = [
    ("ix_links_crm_id", "links", ["pair", "object", "crm_id"]),
    ("ix_links_map_id", "links", ["pair", "object", "map_id"]),
    ("ix_links_identity", "links", ["pair", "object", "identity"]),
    ("ix_links_pair_object_status", "links", ["pair", "object", "status", "id"]),
    ("ix_dead_letters_due", "dead_letters", ["pair", "status", "next_retry_at"]),
]
_NEW = [
    ("ix_links_crm_id_pair_object", "links", ["crm_id", "pair", "object"]),
    ("ix_links_map_id_pair_object", "links", ["map_id", "pair", "object"]),
    ("ix_links_identity_pair_object", "links", ["identity", "pair", "object"]),
    ("ix_links_status_pair_object_id", "links", ["status", "pair", "object", "id"]),
    ("ix_dead_letters_record_key", "dead_letters", ["record_key", "pair", "side", "object"]),
]


def upgrade() -> None:
    """Create the new indexes first (lookups stay indexed throughout), then drop the old ones."""
    for name, table, columns in _NEW:
        op.create_index(name, table, columns)
    op.create_index(
        "ix_links_pending",
        "links",
        ["pair", "object", "status", "id"],
        sqlite_where=HALF,
        postgresql_where=HALF,
    )
    op.create_index(
        "ix_dead_letters_open_due",
        "dead_letters",
        ["pair", "next_retry_at"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    for name, table, _ in _OLD:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    """Restore the 0007 indexes."""
    for name, table, columns in _OLD:
        op.create_index(name, table, columns)
    op.drop_index("ix_links_pending", table_name="links")
    op.drop_index("ix_dead_letters_open_due", table_name="dead_letters")
    for name, table, _ in _NEW:
        op.drop_index(name, table_name=table)
