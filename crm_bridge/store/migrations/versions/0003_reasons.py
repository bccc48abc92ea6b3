"""Tables of the win/loss and rejection reason-code feature (outcomes, list memberships).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Types are spelled out here rather than imported from ``schema.py``: a migration must keep
producing the same DDL even after ``schema.py`` moves on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``reason_outcomes`` and ``reason_memberships``."""
    op.create_table(
        "reason_outcomes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("raw_code", sa.String(100)),
        sa.Column("code", sa.String(100)),
        sa.Column("has_note", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(255)),
        sa.Column("owner_name", sa.String(255)),
        sa.Column("closed_at", TS, nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("first_status", sa.String(16), nullable=False),
        sa.Column("flagged_status", sa.String(16)),
        sa.Column("task_id", sa.String(255)),
        sa.Column("flagged_at", TS),
        sa.Column("pushed_code", sa.String(100)),
        sa.Column("pushed_at", TS),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('won', 'lost', 'lead_rejected', 'disqualified')",
            name=op.f("ck_reason_outcomes_outcome"),
        ),
        sa.CheckConstraint(
            "status IN ('valid', 'deprecated', 'missing', 'unknown', 'wrong_category', "
            "'note_missing')",
            name=op.f("ck_reason_outcomes_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reason_outcomes")),
        sa.UniqueConstraint(
            "source", "object", "record_id", name=op.f("uq_reason_outcomes_source_object_record_id")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_reason_outcomes_closed_at"), "reason_outcomes", ["closed_at"])

    op.create_table(
        "reason_memberships",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("list_id", sa.String(255), nullable=False),
        sa.Column("list_name", sa.String(255), nullable=False),
        sa.Column("member_id", sa.String(255), nullable=False),
        sa.Column(
            "outcome_id",
            ID,
            sa.ForeignKey(
                "reason_outcomes.id",
                ondelete="SET NULL",
                name=op.f("fk_reason_memberships_outcome_id_reason_outcomes"),
            ),
        ),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("removed_at", TS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reason_memberships")),
        sa.UniqueConstraint(
            "connector",
            "list_id",
            "member_id",
            name=op.f("uq_reason_memberships_connector_list_id_member_id"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_reason_memberships_expires_at"),
        "reason_memberships",
        ["removed_at", "expires_at"],
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index(op.f("ix_reason_memberships_expires_at"), table_name="reason_memberships")
    op.drop_table("reason_memberships")
    op.drop_index(op.f("ix_reason_outcomes_closed_at"), table_name="reason_outcomes")
    op.drop_table("reason_outcomes")
