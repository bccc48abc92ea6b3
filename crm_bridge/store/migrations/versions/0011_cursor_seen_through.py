"""How far a change cursor's last read saw everything, so the overlap re-read can start there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

Why: the overlap re-read exists for changes committed late (HubSpot's search index lags its
writes by seconds).  It went over the ``overlap_seconds`` behind the newest record read, and
after a bulk write that window is our own write burst, read a second time.  A read that can
tell how late it ran on the vendor's clock -- from the stamps of our own writes it read back
and how long ago their answers came -- saw every change older than that instant minus the
overlap; ``seen_through_at`` keeps that instant for the next re-read to start from.  ``NULL``
keeps the old window, so existing cursors behave as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``change_cursors.seen_through_at``."""
    with op.batch_alter_table("change_cursors") as batch:
        batch.add_column(sa.Column("seen_through_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("change_cursors") as batch:
        batch.drop_column("seen_through_at")
