"""Tables of the sales-accepted-lead SLA feature (clocks, actions ledger, round-robin pointer).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Types are spelled out here rather than imported from ``schema.py``: a migration must keep
producing the same DDL even after ``schema.py`` moves on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``sla_clocks``, ``sla_actions`` and ``sla_rotation``."""
    op.create_table(
        "sla_clocks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("crm", sa.String(100), nullable=False),
        sa.Column("lead_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("rep", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(255)),
        sa.Column("marketing_id", sa.String(255)),
        sa.Column("mql_at", TS),
        sa.Column("crm_visible_at", TS),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("accepted_at", TS),
        sa.Column("rejected_at", TS),
        sa.Column("reject_reason", sa.String(255)),
        sa.Column("first_touch_at", TS),
        sa.Column("accept_minutes", sa.Integer()),
        sa.Column("first_touch_minutes", sa.Integer()),
        sa.Column("accept_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("first_touch_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reassignments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("closed_at", TS),
        sa.Column("close_reason", sa.String(255)),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'done', 'reassigned', 'recycled', 'disqualified', 'closed')",
            name=op.f("ck_sla_clocks_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("crm", "lead_id", "seq", name=op.f("uq_sla_clocks_crm_lead_id_seq")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_sla_clocks_crm_status_id"), "sla_clocks", ["crm", "status", "id"])
    op.create_index(
        op.f("ix_sla_clocks_crm_owner_id_status"), "sla_clocks", ["crm", "owner_id", "status"]
    )
    op.create_table(
        "sla_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "clock_id",
            ID,
            sa.ForeignKey(
                "sla_clocks.id",
                ondelete="CASCADE",
                name=op.f("fk_sla_actions_clock_id_sla_clocks"),
            ),
            nullable=False,
        ),
        sa.Column("clock", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_actions")),
        sa.UniqueConstraint(
            "clock_id", "clock", "action", name=op.f("uq_sla_actions_clock_id_clock_action")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sla_rotation",
        sa.Column("crm", sa.String(100), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("last_rep", sa.String(100), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("crm", "team", name=op.f("pk_sla_rotation")),
    )


def downgrade() -> None:
    """Drop the SLA tables (history included)."""
    op.drop_table("sla_rotation")
    op.drop_table("sla_actions")
    op.drop_index(op.f("ix_sla_clocks_crm_owner_id_status"), table_name="sla_clocks")
    op.drop_index(op.f("ix_sla_clocks_crm_status_id"), table_name="sla_clocks")
    op.drop_table("sla_clocks")
