"""Read-only store queries the operator features need and the engine does not.

Why here and not on :class:`~crm_bridge.store.StoreTx`: the transaction API is the engine's
contract (every method is something a cycle does); these are an operator's questions -- "which
dead letters did this cycle add", "how many are open", "what happened to this record" -- asked
on a connection of their own, never inside a writer's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from crm_bridge.store import AuditEntry, ChangeCursor, DeadLetter, Decision, Link, Store
from crm_bridge.store.schema import audit_log, change_cursors, dead_letters, links
from crm_bridge.store.store import audit_from_row, cursor_from_row, dead_letter_from_row

__all__ = [
    "audit_for",
    "change_cursors_of",
    "dead_letters_for_records",
    "dead_letters_since",
    "decisions_for_link",
    "find_links",
    "open_dead_letters",
]


def dead_letters_since(
    store: Store, pair: str, since: datetime, *, limit: int = 1000
) -> list[DeadLetter]:
    """Open dead letters of ``pair`` added or failed again at or after ``since``, oldest first."""
    stmt = (
        sa.select(dead_letters)
        .where(
            dead_letters.c.pair == pair,
            dead_letters.c.status == "open",
            dead_letters.c.last_seen >= since,
        )
        .order_by(dead_letters.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [dead_letter_from_row(r) for r in conn.execute(stmt)]


def open_dead_letters(store: Store, pair: str) -> int:
    """How many dead letters of ``pair`` are open (one COUNT, however many there are)."""
    stmt = (
        sa.select(sa.func.count())
        .select_from(dead_letters)
        .where(dead_letters.c.pair == pair, dead_letters.c.status == "open")
    )
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def change_cursors_of(store: Store, pair: str) -> dict[tuple[str, str], ChangeCursor]:
    """Every change cursor of ``pair`` by (object, side)."""
    stmt = sa.select(change_cursors).where(change_cursors.c.pair == pair)
    with store.engine.connect() as conn:
        return {(row.object, row.side): cursor_from_row(row) for row in conn.execute(stmt)}


def find_links(store: Store, record_id: str) -> list[Link]:
    """Links whose CRM id, marketing id or matched identity is ``record_id``, newest first.

    The identity is stored normalised (an e-mail in lower case), so it is compared lower-cased.
    """
    stmt = (
        sa.select(links.c.id)
        .where(
            sa.or_(
                links.c.crm_id == record_id,
                links.c.map_id == record_id,
                links.c.identity == record_id.strip().lower(),
            )
        )
        .order_by(links.c.id.desc())
    )
    with store.engine.connect() as conn:
        ids = [int(r.id) for r in conn.execute(stmt)]
    if not ids:
        return []
    with store.transaction(readonly=True) as tx:
        found = tx.links_by_link_ids(ids)
    return [found[i] for i in ids if i in found]


def dead_letters_for_records(store: Store, record_ids: Iterable[str]) -> list[DeadLetter]:
    """Every dead letter (any status) whose source record is one of ``record_ids``."""
    wanted = sorted({r for r in record_ids if r})
    if not wanted:
        return []
    stmt = (
        sa.select(dead_letters)
        .where(dead_letters.c.record_key.in_(wanted))
        .order_by(dead_letters.c.id)
    )
    with store.engine.connect() as conn:
        return [dead_letter_from_row(r) for r in conn.execute(stmt)]


def decisions_for_link(store: Store, link_id: int) -> list[Decision]:
    """The link's conflict decisions, newest first."""
    with store.transaction(readonly=True) as tx:
        return tx.decisions(link_id=link_id, limit=1000)


def audit_for(store: Store, subjects: Iterable[str], *, limit: int = 200) -> list[AuditEntry]:
    """Audit entries about any of ``subjects`` (record ids), oldest first."""
    wanted = sorted({s for s in subjects if s})
    if not wanted:
        return []
    stmt = (
        sa.select(audit_log)
        .where(audit_log.c.subject.in_(wanted))
        .order_by(audit_log.c.at, audit_log.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [audit_from_row(r) for r in conn.execute(stmt)]
