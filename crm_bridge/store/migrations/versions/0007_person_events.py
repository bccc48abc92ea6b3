"""The funnel's append-only person event log (``person_events``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Why a table of its own rather than a view over the audit log: the funnel needs one time-stamped
row per stage a person reached, with the source, campaign, owner and amount known *at that time*,
and much of it comes from the systems themselves (HubSpot lifecycle dates, Salesforce conversion
and opportunity dates) rather than from anything crm-bridge did.  ``key`` is unique so filling the
log again from the same facts adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``person_events`` and its two indexes."""
    op.create_table(
        "person_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("person", sa.String(320), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("pair", sa.String(100)),
        sa.Column("system", sa.String(100)),
        sa.Column("record_id", sa.String(255)),
        sa.Column("deal_id", sa.String(255)),
        sa.Column("source", sa.String(255)),
        sa.Column("campaign", sa.String(255)),
        sa.Column("owner", sa.String(255)),
        sa.Column("amount", sa.Float()),
        sa.Column("engagement", sa.Integer()),
        sa.Column("reason", sa.String(100)),
        sa.Column("segments", sa.JSON()),
        sa.Column("recorded_at", TS, nullable=False),
        sa.CheckConstraint(
            "stage IN ('mql', 'sal', 'sql', 'opportunity', 'won', 'lost', 'rejected', "
            "'disqualified', 'recycled')",
            name=op.f("ck_person_events_stage"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_events")),
        sa.UniqueConstraint("key", name=op.f("uq_person_events_key")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_person_events_person_at"), "person_events", ["person", "at"])
    op.create_index(op.f("ix_person_events_at"), "person_events", ["at"])


def downgrade() -> None:
    """Drop the table (the events can be derived and backfilled again)."""
    op.drop_index(op.f("ix_person_events_at"), table_name="person_events")
    op.drop_index(op.f("ix_person_events_person_at"), table_name="person_events")
    op.drop_table("person_events")
