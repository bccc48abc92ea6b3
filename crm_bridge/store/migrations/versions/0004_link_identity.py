"""Links remember the identity (e.g. the e-mail) they were matched on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Why: an unlinked record whose e-mail already belongs to a linked person is a duplicate on its
own side.  Without an index of linked identities the engine would only learn that after an
upsert-by-e-mail had already overwritten the linked record on the other side.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``links.identity`` and its lookup index."""
    op.add_column("links", sa.Column("identity", sa.String(320)))
    op.create_index("ix_links_identity", "links", ["pair", "object", "identity"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_links_identity", table_name="links")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("identity")
