"""Shared rate budgets and the worker registry, for several ``crm-bridge worker`` processes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Why in the store: vendor limits (HubSpot's burst per ten seconds, Marketo's 100 calls per 20 s
and its daily quota) belong to the vendor *account*, not to one process.  With N workers on one
PostgreSQL store, every worker must take its calls from the same count, and the store is the one
thing they all share.  ``rate_leases`` holds blocks of calls granted out of a rolling window
(:mod:`crm_bridge.workers.budgets` explains why blocks and why they count until released plus a
window); ``rate_daily`` counts a day's allocation per account; ``workers`` says which worker
runs which pair, for ``crm-bridge status``.  On SQLite the tables exist but stay empty: the
embedded daemon keeps its in-process limiters.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``rate_leases``, ``rate_daily`` and ``workers``."""
    op.create_table(
        "rate_leases",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("released_at", TS),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_leases")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_rate_leases_account_expires_at"), "rate_leases", ["account", "expires_at"]
    )
    op.create_table(
        "rate_daily",
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", "day", name=op.f("pk_rate_daily")),
    )
    op.create_table(
        "workers",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("stopped_at", TS),
        sa.Column("pair", sa.String(100)),
        sa.Column("pair_since", TS),
        sa.Column("cycles", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    """Drop the three tables (budgets refill within a window; workers re-register)."""
    op.drop_table("workers")
    op.drop_table("rate_daily")
    op.drop_index(op.f("ix_rate_leases_account_expires_at"), table_name="rate_leases")
    op.drop_table("rate_leases")
