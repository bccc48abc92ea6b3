"""SQLAlchemy Core tables of the state store -- the *current* shape of the schema.

This module describes what the newest migration produces; the migrations in
``crm_bridge/store/migrations/versions`` are what actually create it.  A test compares the two
(alembic's ``compare_metadata``) on SQLite and PostgreSQL so they cannot silently drift.

Core rather than the ORM: the store speaks in bulk statements and returns frozen dataclasses, so an
identity map and unit of work would only cost time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "CURSOR_PHASES",
    "DEAD_LETTER_STATUSES",
    "FUNNEL_STAGES",
    "LINK_STATUSES",
    "RUN_STATUSES",
    "SIDES",
    "SIDE_STATES",
    "Id",
    "UtcDateTime",
    "audit_log",
    "change_cursors",
    "cursors",
    "dead_letters",
    "decisions",
    "feature_runs",
    "links",
    "metadata",
    "person_events",
    "push_listeners",
    "rate_daily",
    "rate_leases",
    "runs",
    "workers",
]

SIDES = ("crm", "map")
LINK_STATUSES = ("active", "deleted", "merged")
SIDE_STATES = ("synced", "written", "creating")
DEAD_LETTER_STATUSES = ("open", "replayed", "dismissed")
RUN_STATUSES = ("running", "ok", "failed", "aborted")
CURSOR_PHASES = ("scanning", "overlap", "settled")

# Deterministic constraint names: SQLite's batch migrations recreate tables and can only drop or
# alter a constraint that has a name, and PostgreSQL's generated names differ between versions.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Surrogate key type: BIGINT on PostgreSQL; INTEGER on SQLite, where only ``INTEGER PRIMARY
KEY`` aliases the rowid and autoincrements."""


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that only accepts aware datetimes and always returns aware UTC datetimes.

    PostgreSQL stores ``timestamptz``.  SQLite has no timestamp type; SQLAlchemy stores a
    fixed-width ISO-like text, so we store the UTC wall time without offset -- which keeps text
    ordering equal to time ordering -- and re-attach UTC on the way out.  Naive datetimes are
    rejected rather than guessed at: a naive "now" is the classic source of off-by-hours bugs.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Validate awareness and normalise to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the driver handed back."""
        if value is None:
            return None
        if isinstance(value, str):  # raw text, e.g. from a hand-written SQLite query
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"unexpected timestamp value {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


links = sa.Table(
    "links",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("pair", sa.String(100), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("crm_id", sa.String(255)),
    sa.Column("map_id", sa.String(255)),
    sa.Column("crm_version", sa.String(255)),
    sa.Column("map_version", sa.String(255)),
    # Per side, the mapped field values that side was last known to hold (the baseline for
    # field-level change detection), and whether that baseline is confirmed (migration 0005).
    sa.Column("synced", sa.JSON()),
    sa.Column("crm_state", sa.String(16), nullable=False, server_default="synced"),
    sa.Column("map_state", sa.String(16), nullable=False, server_default="synced"),
    # A write whose outcome is unknown: {"fields": [...], "prior": {...}} (see PendingWrite).
    sa.Column("crm_pending", sa.JSON()),
    sa.Column("map_pending", sa.JSON()),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("merged_into", Id, sa.ForeignKey("links.id", ondelete="SET NULL")),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("identity", sa.String(320)),
    sa.CheckConstraint(_in("status", LINK_STATUSES), name="status"),
    sa.CheckConstraint(_in("crm_state", SIDE_STATES), name="crm_state"),
    sa.CheckConstraint(_in("map_state", SIDE_STATES), name="map_state"),
    sa.CheckConstraint("crm_id IS NOT NULL OR map_id IS NOT NULL", name="has_an_id"),
    sa.CheckConstraint(
        "status = 'merged' OR merged_into IS NULL", name="merged_into_only_if_merged"
    ),
    # Lookups by either side's id or by the normalised identity (e-mail) a link was matched on,
    # whatever the status (tombstones are returned too).  The looked-up column *leads* (migration
    # 0008): the lookups constrain only it plus pair/object, and no other index leads with any of
    # those, so the plan cannot depend on statistics (see docs/store.md, "Indexes and plans").
    sa.Index("ix_links_crm_id_pair_object", "crm_id", "pair", "object"),
    sa.Index("ix_links_map_id_pair_object", "map_id", "pair", "object"),
    sa.Index("ix_links_identity_pair_object", "identity", "pair", "object"),
    # iter_links / count_links by status; leads with status, which no lookup filters on in SQL.
    sa.Index("ix_links_status_pair_object_id", "status", "pair", "object", "id"),
    # Half links only (creates in flight, unpaired deletes): what pending_links reads.
    sa.Index(
        "ix_links_pending",
        "pair",
        "object",
        "status",
        "id",
        sqlite_where=sa.text("crm_id IS NULL OR map_id IS NULL"),
        postgresql_where=sa.text("crm_id IS NULL OR map_id IS NULL"),
    ),
    # At most one *active* link per record and side; tombstones may repeat the id.  NULL ids
    # (create pending) never collide: NULLs are distinct in unique indexes on both backends.
    sa.Index(
        "uq_links_active_crm_id",
        "pair",
        "object",
        "crm_id",
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    ),
    sa.Index(
        "uq_links_active_map_id",
        "pair",
        "object",
        "map_id",
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    ),
    sqlite_autoincrement=True,
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("pair", sa.String(100), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("object", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("side", SIDES), name="side"),
)

# The sync's position in each side's change stream, one typed row per pair/side/object
# (migration 0006; see ChangeCursor).  ``cursors`` keeps the plain timestamps of the SLA and
# reason engines.
change_cursors = sa.Table(
    "change_cursors",
    metadata,
    sa.Column("pair", sa.String(100), primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("object", sa.String(64), primary_key=True),
    sa.Column("newest_at", UtcDateTime(), nullable=False),
    sa.Column("newest_id", sa.String(255), nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("position_at", UtcDateTime()),
    sa.Column("position_id", sa.String(255)),
    sa.Column("found_newer", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("seen_through_at", UtcDateTime()),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("side", SIDES), name="side"),
    sa.CheckConstraint(_in("phase", CURSOR_PHASES), name="phase"),
    sa.CheckConstraint(
        "(phase = 'scanning') = (position_at IS NOT NULL AND position_id IS NOT NULL)",
        name="position_only_while_scanning",
    ),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("pair", sa.String(100), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(255), nullable=False),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("error_code", sa.String(100)),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("next_retry_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    sa.CheckConstraint(_in("side", SIDES), name="side"),
    sa.CheckConstraint(_in("status", DEAD_LETTER_STATUSES), name="status"),
    # The upsert target: one open item per source record and rejecting side.
    sa.Index(
        "uq_dead_letters_open_key",
        "pair",
        "side",
        "object",
        "record_key",
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
    # due_dead_letters: open items only, so the record-key lookups (no status condition) cannot
    # use it (migration 0008).
    sa.Index(
        "ix_dead_letters_open_due",
        "pair",
        "next_retry_at",
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
    # resolve_dead_letters_for: the batch's record keys lead (migration 0008).
    sa.Index("ix_dead_letters_record_key", "record_key", "pair", "side", "object"),
    sa.Index("ix_dead_letters_status_id", "status", "id"),
    sqlite_autoincrement=True,
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("pair", sa.String(100), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("status", sa.String(16), nullable=False, server_default="running"),
    sa.Column("counts", sa.JSON(), nullable=False),
    sa.Column("calls", sa.JSON(), nullable=False),
    sa.Column("error", sa.Text()),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    sa.Index("ix_runs_pair_started_at", "pair", "started_at"),
    sa.Index("ix_runs_started_at", "started_at"),
    sqlite_autoincrement=True,
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("pair", sa.String(100), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    # SET NULL: `state reset` deletes links but the decision history stays readable.
    sa.Column("link_id", Id, sa.ForeignKey("links.id", ondelete="SET NULL")),
    sa.Column("field", sa.String(255), nullable=False),
    sa.Column("crm_value", sa.JSON()),
    sa.Column("map_value", sa.JSON()),
    sa.Column("crm_modified_at", UtcDateTime()),
    sa.Column("map_modified_at", UtcDateTime()),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("winner", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_decisions_link_id", "link_id"),
    sa.Index("ix_decisions_pair_id", "pair", "id"),
    sa.Index("ix_decisions_run_id", "run_id"),
    sqlite_autoincrement=True,
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("pair", sa.String(100)),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Index("ix_audit_log_subject_at", "subject", "at"),
    sa.Index("ix_audit_log_kind_at", "kind", "at"),
    sqlite_autoincrement=True,
)

# -- SLA (migration 0002) --------------------------------------------------------------------------
# One row per (lead, assignment): the clocks of that assignment, how they ended, and the numbers
# the reports need (business minutes measured when a clock stopped, so a later calendar change
# does not rewrite history).  ``sla_actions`` is the idempotency ledger of the breach chain: a
# step is executed only if its row is absent, and the row is written in the same transaction as
# the step's audit entry.

SLA_CLOCK_STATUSES = ("open", "done", "reassigned", "recycled", "disqualified", "closed")

sla_clocks = sa.Table(
    "sla_clocks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("crm", sa.String(100), nullable=False),
    sa.Column("lead_id", sa.String(255), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("policy", sa.String(100), nullable=False),
    sa.Column("team", sa.String(100), nullable=False),
    sa.Column("rep", sa.String(100), nullable=False),
    sa.Column("owner_id", sa.String(255), nullable=False),
    sa.Column("source", sa.String(255)),
    sa.Column("marketing_id", sa.String(255)),
    sa.Column("mql_at", UtcDateTime()),
    sa.Column("crm_visible_at", UtcDateTime()),
    sa.Column("assigned_at", UtcDateTime(), nullable=False),
    sa.Column("accepted_at", UtcDateTime()),
    sa.Column("rejected_at", UtcDateTime()),
    sa.Column("reject_reason", sa.String(255)),
    sa.Column("first_touch_at", UtcDateTime()),
    sa.Column("accept_minutes", sa.Integer()),
    sa.Column("first_touch_minutes", sa.Integer()),
    sa.Column("accept_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("first_touch_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reassignments", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.String(255)),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("status", SLA_CLOCK_STATUSES), name="status"),
    sa.UniqueConstraint("crm", "lead_id", "seq"),
    sa.Index("ix_sla_clocks_crm_status_id", "crm", "status", "id"),
    sa.Index("ix_sla_clocks_crm_owner_id_status", "crm", "owner_id", "status"),
    sqlite_autoincrement=True,
)

sla_actions = sa.Table(
    "sla_actions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("clock_id", Id, sa.ForeignKey("sla_clocks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("clock", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.UniqueConstraint("clock_id", "clock", "action"),
    sqlite_autoincrement=True,
)

sla_rotation = sa.Table(
    "sla_rotation",
    metadata,
    sa.Column("crm", sa.String(100), primary_key=True),
    sa.Column("team", sa.String(100), primary_key=True),
    sa.Column("last_rep", sa.String(100), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# -- reasons (migration 0003) ----------------------------------------------------------------------
# ``reason_outcomes``: one row per closed deal / rejected lead as last captured -- the outcome, the
# code the rep chose and what it resolved to, whether (and for which problem) a task was raised,
# and what was last pushed to the marketing side, so a re-read record is neither re-flagged nor
# re-pushed.  The report reads only this table.  ``reason_memberships``: static-list memberships
# crm-bridge added, with their expiry, so re-targeting windows can be closed again.

REASON_OUTCOMES = ("won", "lost", "lead_rejected", "disqualified")
REASON_STATUSES = ("valid", "deprecated", "missing", "unknown", "wrong_category", "note_missing")

reason_outcomes = sa.Table(
    "reason_outcomes",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
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
    sa.Column("closed_at", UtcDateTime(), nullable=False),
    sa.Column("segments", sa.JSON(), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("first_status", sa.String(16), nullable=False),
    sa.Column("flagged_status", sa.String(16)),
    sa.Column("task_id", sa.String(255)),
    sa.Column("flagged_at", UtcDateTime()),
    sa.Column("pushed_code", sa.String(100)),
    sa.Column("pushed_at", UtcDateTime()),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("outcome", REASON_OUTCOMES), name="outcome"),
    sa.CheckConstraint(_in("status", REASON_STATUSES), name="status"),
    sa.UniqueConstraint("source", "object", "record_id"),
    sa.Index("ix_reason_outcomes_closed_at", "closed_at"),
    sqlite_autoincrement=True,
)

reason_memberships = sa.Table(
    "reason_memberships",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("connector", sa.String(100), nullable=False),
    sa.Column("list_id", sa.String(255), nullable=False),
    sa.Column("list_name", sa.String(255), nullable=False),
    sa.Column("member_id", sa.String(255), nullable=False),
    sa.Column(
        "outcome_id", Id, sa.ForeignKey("reason_outcomes.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("added_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("removed_at", UtcDateTime()),
    sa.UniqueConstraint("connector", "list_id", "member_id"),
    sa.Index("ix_reason_memberships_expires_at", "removed_at", "expires_at"),
    sqlite_autoincrement=True,
)

# -- funnel (migration 0007) -----------------------------------------------------------------------
# ``person_events``: one row per stage a person reached (MQL, SAL, SQL, opportunity, won, lost,
# rejected, disqualified, recycled), append-only.  Rows are derived from what the engines already
# record (audit log, SLA clocks, reason outcomes) and backfilled from what the systems hold; ``key``
# names the fact a row was derived from, so re-deriving or re-backfilling never adds it twice.  The
# funnel report reads only this table (plus the SLA clocks for attainment per rep).

FUNNEL_STAGES = (
    "mql",
    "sal",
    "sql",
    "opportunity",
    "won",
    "lost",
    "rejected",
    "disqualified",
    "recycled",
)

person_events = sa.Table(
    "person_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("person", sa.String(320), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
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
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("stage", FUNNEL_STAGES), name="stage"),
    sa.UniqueConstraint("key"),
    sa.Index("ix_person_events_person_at", "person", "at"),
    sa.Index("ix_person_events_at", "at"),
    sqlite_autoincrement=True,
)


rate_leases = sa.Table(
    "rate_leases",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("used", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("granted_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("released_at", UtcDateTime()),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Index("ix_rate_leases_account_expires_at", "account", "expires_at"),
    sqlite_autoincrement=True,
)
"""Blocks of calls granted out of a vendor account's rolling window (PostgreSQL workers only)."""

rate_daily = sa.Table(
    "rate_daily",
    metadata,
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("used", sa.Integer(), nullable=False),
)
"""Calls taken from a vendor account's daily allocation, per day (PostgreSQL workers only)."""

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    sa.Column("stopped_at", UtcDateTime()),
    sa.Column("pair", sa.String(100)),
    sa.Column("pair_since", UtcDateTime()),
    sa.Column("cycles", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
)
"""One row per ``crm-bridge worker``: its heartbeat and the pair it runs now (``status``)."""

feature_runs = sa.Table(
    "feature_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("worker", sa.String(255), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("summary", sa.Text()),
    sa.Column("error", sa.Text()),
    sa.Index(None, "name", "started_at"),
    sqlite_autoincrement=True,
)
"""Runs of the store-wide feature jobs (SLA, reasons) by workers: their schedule and ``status``."""

push_listeners = sa.Table(
    "push_listeners",
    metadata,
    sa.Column("pair", sa.String(100), primary_key=True),
    sa.Column("worker", sa.String(255), nullable=False),
    sa.Column("complete", sa.Boolean(), nullable=False),
    sa.Column("since", UtcDateTime(), nullable=False),
)
"""Which worker listens to each pair's push channels, and whether every side has one."""
