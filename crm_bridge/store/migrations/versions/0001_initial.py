"""Initial state store: links, cursors, dead letters, runs, decisions, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Types are spelled out here rather than imported from ``schema.py``: a migration must keep
producing the same DDL even after ``schema.py`` moves on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
ACTIVE = sa.text("status = 'active'")
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    """Create the six tables of the first release."""
    op.create_table(
        "links",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("crm_id", sa.String(255)),
        sa.Column("map_id", sa.String(255)),
        sa.Column("crm_version", sa.String(255)),
        sa.Column("map_version", sa.String(255)),
        sa.Column("crm_hash", sa.String(128)),
        sa.Column("map_hash", sa.String(128)),
        sa.Column("synced", sa.JSON()),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column(
            "merged_into",
            ID,
            sa.ForeignKey("links.id", ondelete="SET NULL", name=op.f("fk_links_merged_into_links")),
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'deleted', 'merged')", name=op.f("ck_links_status")
        ),
        sa.CheckConstraint(
            "crm_id IS NOT NULL OR map_id IS NOT NULL", name=op.f("ck_links_has_an_id")
        ),
        sa.CheckConstraint(
            "status = 'merged' OR merged_into IS NULL",
            name=op.f("ck_links_merged_into_only_if_merged"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_links_crm_id"), "links", ["pair", "object", "crm_id"])
    op.create_index(op.f("ix_links_map_id"), "links", ["pair", "object", "map_id"])
    op.create_index(
        op.f("ix_links_pair_object_status"), "links", ["pair", "object", "status", "id"]
    )
    for side in ("crm", "map"):
        op.create_index(
            op.f(f"uq_links_active_{side}_id"),
            "links",
            ["pair", "object", f"{side}_id"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )

    op.create_table(
        "cursors",
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("side IN ('crm', 'map')", name=op.f("ck_cursors_side")),
        sa.PrimaryKeyConstraint("pair", "side", "object", name=op.f("pk_cursors")),
    )

    op.create_table(
        "dead_letters",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("record_key", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(100)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("next_retry_at", TS),
        sa.Column("resolved_at", TS),
        sa.CheckConstraint("side IN ('crm', 'map')", name=op.f("ck_dead_letters_side")),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'dismissed')", name=op.f("ck_dead_letters_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("uq_dead_letters_open_key"),
        "dead_letters",
        ["pair", "side", "object", "record_key"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index(
        op.f("ix_dead_letters_due"), "dead_letters", ["pair", "status", "next_retry_at"]
    )
    op.create_index(op.f("ix_dead_letters_status_id"), "dead_letters", ["status", "id"])

    op.create_table(
        "runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'failed', 'aborted')", name=op.f("ck_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_runs_pair_started_at"), "runs", ["pair", "started_at"])
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"])

    op.create_table(
        "decisions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            ID,
            sa.ForeignKey("runs.id", ondelete="SET NULL", name=op.f("fk_decisions_run_id_runs")),
        ),
        sa.Column("pair", sa.String(100), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column(
            "link_id",
            ID,
            sa.ForeignKey("links.id", ondelete="SET NULL", name=op.f("fk_decisions_link_id_links")),
        ),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("crm_value", sa.JSON()),
        sa.Column("map_value", sa.JSON()),
        sa.Column("crm_modified_at", TS),
        sa.Column("map_modified_at", TS),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("winner", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_decisions_link_id"), "decisions", ["link_id"])
    op.create_index(op.f("ix_decisions_pair_id"), "decisions", ["pair", "id"])
    op.create_index(op.f("ix_decisions_run_id"), "decisions", ["run_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("pair", sa.String(100)),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_log_subject_at"), "audit_log", ["subject", "at"])
    op.create_index(op.f("ix_audit_log_kind_at"), "audit_log", ["kind", "at"])


def downgrade() -> None:
    """Drop everything (children first)."""
    for table in ("audit_log", "decisions", "runs", "dead_letters", "cursors", "links"):
        op.drop_table(table)
