"""Reads and writes of the reason tables (``reason_outcomes``, ``reason_memberships``).

Why here and not in :mod:`crm_bridge.store.store`: the store module owns the generic state (links,
cursors, dead letters); feature tables keep their queries next to the feature, and run inside the
caller's :class:`~crm_bridge.store.StoreTx` so outcomes, memberships, dead letters and the cursor
of one batch commit together (docs/store.md, "one batch, one transaction").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_bridge.store import StoreTx
from crm_bridge.store.schema import reason_memberships, reason_outcomes

__all__ = [
    "INSTALLED_KIND",
    "Membership",
    "OutcomeRow",
    "ReasonRepository",
    "installed_at",
    "record_install",
]

CURSOR_PAIR = "reasons"
"""The ``cursors.pair`` value of the capture's own cursors (one per side and object)."""
INSTALLED_KIND = "reasons.installed"
"""The audit entry ``crm-bridge reasons install`` appends; the first one's time is the install.

Why the audit log and no new column: the install time is a fact about the past that never
changes (the log is append-only), each later install of a new taxonomy version is worth keeping
too, and the audit table already has the time, kind and data it needs -- no migration.
"""


def installed_at(tx: StoreTx) -> datetime | None:
    """When the taxonomy was first installed through crm-bridge, or ``None`` if never recorded."""
    first = tx.audit_entries(kind_prefix=INSTALLED_KIND, limit=1)
    return first[0].at if first else None


def record_install(tx: StoreTx, *, version: int, changes: int, now: datetime) -> None:
    """Append the install of taxonomy ``version`` (``changes`` steps wrote something)."""
    tx.audit(
        INSTALLED_KIND,
        f"taxonomy v{version}",
        {"version": version, "changes": changes},
        now=now,
        pair=CURSOR_PAIR,
    )


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One captured outcome as stored (see ``crm_bridge/store/schema.py``)."""

    id: int
    source: str
    object: str
    record_id: str
    outcome: str
    raw_code: str | None
    code: str | None
    has_note: bool
    status: str
    owner_id: str | None
    owner_name: str | None
    closed_at: datetime
    segments: Mapping[str, str]
    version: str
    first_status: str
    flagged_status: str | None
    task_id: str | None
    pushed_code: str | None
    first_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """A list membership crm-bridge added."""

    id: int
    connector: str
    list_id: str
    member_id: str
    expires_at: datetime | None


def _conn(tx: StoreTx) -> Connection:
    # StoreTx exposes no public connection; feature repositories share its transaction on purpose.
    conn: Connection = tx._conn
    return conn


def _outcome(row: sa.Row[Any]) -> OutcomeRow:
    m = row._mapping
    return OutcomeRow(
        id=int(m["id"]),
        source=m["source"],
        object=m["object"],
        record_id=m["record_id"],
        outcome=m["outcome"],
        raw_code=m["raw_code"],
        code=m["code"],
        has_note=bool(m["has_note"]),
        status=m["status"],
        owner_id=m["owner_id"],
        owner_name=m["owner_name"],
        closed_at=m["closed_at"],
        segments=dict(m["segments"] or {}),
        version=m["version"],
        first_status=m["first_status"],
        flagged_status=m["flagged_status"],
        task_id=m["task_id"],
        pushed_code=m["pushed_code"],
        first_seen=m["first_seen"],
    )


class ReasonRepository:
    """Feature queries on one open transaction."""

    def __init__(self, tx: StoreTx) -> None:
        self.tx = tx
        self.conn = _conn(tx)

    # -- outcomes --------------------------------------------------------------------------------

    def outcomes_for(self, source: str, obj: str, ids: Iterable[str]) -> dict[str, OutcomeRow]:
        """Stored outcomes of these records, by record id."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, OutcomeRow] = {}
        for start in range(0, len(wanted), 500):
            stmt = sa.select(reason_outcomes).where(
                reason_outcomes.c.source == source,
                reason_outcomes.c.object == obj,
                reason_outcomes.c.record_id.in_(wanted[start : start + 500]),
            )
            for row in self.conn.execute(stmt):
                found = _outcome(row)
                out[found.record_id] = found
        return out

    def save_outcome(self, values: Mapping[str, Any], *, now: datetime) -> int:
        """Insert or update the outcome of ``(source, object, record_id)``; returns its id.

        ``first_status`` and ``first_seen`` are only written on insert: capture completeness per
        rep is judged on what the rep entered when the deal first closed, not after the nag.
        """
        key = (values["source"], values["object"], values["record_id"])
        existing = self.outcomes_for(key[0], key[1], [key[2]]).get(key[2])
        if existing is None:
            row = {**values, "first_status": values["status"], "first_seen": now, "updated_at": now}
            result = self.conn.execute(sa.insert(reason_outcomes).values(**row))
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])
        update = {k: v for k, v in values.items() if k not in ("source", "object", "record_id")}
        self.conn.execute(
            sa.update(reason_outcomes)
            .where(reason_outcomes.c.id == existing.id)
            .values(**update, updated_at=now)
        )
        return existing.id

    def mark_flagged(
        self, outcome_id: int, status: str, task_id: str | None, now: datetime
    ) -> None:
        """Remember which problem a task was raised for (so it is not raised again)."""
        self.conn.execute(
            sa.update(reason_outcomes)
            .where(reason_outcomes.c.id == outcome_id)
            .values(flagged_status=status, task_id=task_id, flagged_at=now)
        )

    def mark_pushed(self, outcome_id: int, code: str, now: datetime) -> None:
        """Remember the code whose properties and lists reached the marketing side."""
        self.conn.execute(
            sa.update(reason_outcomes)
            .where(reason_outcomes.c.id == outcome_id)
            .values(pushed_code=code, pushed_at=now)
        )

    def all_outcomes(self) -> list[OutcomeRow]:
        """Every outcome, oldest close first (the report's input)."""
        stmt = sa.select(reason_outcomes).order_by(
            reason_outcomes.c.closed_at, reason_outcomes.c.id
        )
        return [_outcome(r) for r in self.conn.execute(stmt)]

    # -- memberships -----------------------------------------------------------------------------

    def add_membership(
        self,
        *,
        connector: str,
        list_id: str,
        list_name: str,
        member_id: str,
        outcome_id: int | None,
        now: datetime,
        expires_at: datetime | None,
    ) -> None:
        """Record (or refresh: new expiry, not removed) a membership crm-bridge added."""
        table = reason_memberships
        found = self.conn.execute(
            sa.select(table.c.id).where(
                table.c.connector == connector,
                table.c.list_id == list_id,
                table.c.member_id == member_id,
            )
        ).scalar_one_or_none()
        if found is None:
            self.conn.execute(
                sa.insert(table).values(
                    connector=connector,
                    list_id=list_id,
                    list_name=list_name,
                    member_id=member_id,
                    outcome_id=outcome_id,
                    added_at=now,
                    expires_at=expires_at,
                )
            )
            return
        self.conn.execute(
            sa.update(table)
            .where(table.c.id == found)
            .values(added_at=now, expires_at=expires_at, removed_at=None, outcome_id=outcome_id)
        )

    def expired_memberships(self, connector: str, now: datetime) -> list[Membership]:
        """Memberships past their expiry that are still in place."""
        table = reason_memberships
        stmt = (
            sa.select(table)
            .where(
                table.c.connector == connector,
                table.c.removed_at.is_(None),
                table.c.expires_at.is_not(None),
                table.c.expires_at <= now,
            )
            .order_by(table.c.list_id, table.c.id)
        )
        return [
            Membership(
                id=int(r.id),
                connector=r.connector,
                list_id=r.list_id,
                member_id=r.member_id,
                expires_at=r.expires_at,
            )
            for r in self.conn.execute(stmt)
        ]

    def mark_removed(self, ids: Iterable[int], now: datetime) -> None:
        """Memberships crm-bridge took back out of their list."""
        wanted = list(ids)
        if wanted:
            self.conn.execute(
                sa.update(reason_memberships)
                .where(reason_memberships.c.id.in_(wanted))
                .values(removed_at=now)
            )
