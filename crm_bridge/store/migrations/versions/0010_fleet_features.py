"""Feature-job runs and push listeners, for the feature jobs and push channels of workers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14

Why in the store: with several ``crm-bridge worker`` processes the SLA clock and the reason
capture must run once per interval across the fleet, so the start of the last run (the anchor of
the next one) must be where every worker reads it; ``feature_runs`` keeps each run, for that and
for ``crm-bridge status``.  ``push_listeners`` says which worker listens to a pair's push
channels and whether every side has one: every worker's scheduler reads it to poll a fully fed
pair only every ``daemon.safety_poll_seconds``.  On SQLite the tables exist but stay empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``feature_runs`` and ``push_listeners``."""
    op.create_table(
        "feature_runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_feature_runs_name_started_at"), "feature_runs", ["name", "started_at"])
    op.create_table(
        "push_listeners",
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.PrimaryKeyConstraint("pair", name=op.f("pk_push_listeners")),
    )


def downgrade() -> None:
    """Drop both tables (the next feature run starts at once; listeners re-register)."""
    op.drop_table("push_listeners")
    op.drop_index(op.f("ix_feature_runs_name_started_at"), table_name="feature_runs")
    op.drop_table("feature_runs")
