"""Append-only reads and writes of ``person_events`` inside a caller's transaction.

Why append-only with a unique ``key`` instead of upserts: the funnel is history.  A stage a person
reached stays reached even if the CRM later changes the lead's status; filling the log again from
the same facts (a second backfill, a re-read audit entry) must be a no-op, which the key makes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crm_bridge.funnel.events import PersonEvent
from crm_bridge.store import StoreTx
from crm_bridge.store.schema import person_events

__all__ = ["EventRepository"]

_CHUNK = 500
_FIELDS = tuple(PersonEvent.__dataclass_fields__)


def _connection(tx: StoreTx) -> Connection:
    # The store exposes no public connection; feature repositories share its transaction.
    conn: Connection = tx._conn
    return conn


def _event(row: sa.Row[Any]) -> PersonEvent:
    m = row._mapping
    values = {f: m[f] for f in _FIELDS}
    values["segments"] = dict(m["segments"] or {})
    return PersonEvent(**values)


class EventRepository:
    """``person_events`` statements bound to one transaction."""

    def __init__(self, tx: StoreTx) -> None:
        self.conn = _connection(tx)

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are already in the log."""
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            stmt = sa.select(person_events.c.key).where(
                person_events.c.key.in_(wanted[start : start + _CHUNK])
            )
            found.update(str(k) for (k,) in self.conn.execute(stmt))
        return found

    def append(self, events: Iterable[PersonEvent], *, now: datetime) -> int:
        """Add the events whose key is new; returns how many were added."""
        batch = list({e.key: e for e in events}.values())
        known = self.known_keys(e.key for e in batch)
        rows = [
            {
                **{f: getattr(e, f) for f in _FIELDS},
                "segments": dict(e.segments),
                "recorded_at": now,
            }
            for e in batch
            if e.key not in known
        ]
        for start in range(0, len(rows), _CHUNK):
            self.conn.execute(sa.insert(person_events), rows[start : start + _CHUNK])
        return len(rows)

    def events(
        self, *, pair: str | None = None, until: datetime | None = None
    ) -> list[PersonEvent]:
        """Events in time order (``at``, then insertion), optionally of one pair / up to a time."""
        stmt = sa.select(person_events).order_by(person_events.c.at, person_events.c.id)
        if pair is not None:
            stmt = stmt.where(person_events.c.pair == pair)
        if until is not None:
            stmt = stmt.where(person_events.c.at < until)
        return [_event(r) for r in self.conn.execute(stmt)]

    def people_by_record(self) -> dict[tuple[str, str], str]:
        """``(system, record id) -> person`` for every event that named both (key resolution)."""
        stmt = sa.select(
            person_events.c.system, person_events.c.record_id, person_events.c.person
        ).where(person_events.c.system.is_not(None), person_events.c.record_id.is_not(None))
        return {(str(s), str(r)): str(p) for s, r, p in self.conn.execute(stmt)}
