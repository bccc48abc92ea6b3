"""The state store: what crm-bridge remembers between runs, and the transaction API over it.

Delivery semantics rest on one rule: **everything a batch changes -- links, dead letters,
decisions, and the cursor that says the batch is done -- is written in one**
:meth:`Store.transaction`.  If the process dies before commit, none of it happened and the next
run re-reads the same changes from the old cursor (at-least-once, made idempotent by the stored
hashes).  If it dies after commit, all of it happened.  A cursor must therefore never be advanced
in a transaction of its own ahead of the outcomes it covers.

Time is always supplied by the caller (``now=``); where it is optional the store falls back to the
``clock`` given to :meth:`Store.open` (default: ``datetime.now(UTC)``), never to a hidden call.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import sqlalchemy as sa
from more_itertools import chunked
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from crm_bridge.store import locking, migrate
from crm_bridge.store.errors import (
    StoreConflictError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
)
from crm_bridge.store.models import (
    AuditEntry,
    ChangeCursor,
    DeadLetter,
    DeadLetterStatus,
    Decision,
    DecisionIn,
    Link,
    LinkStatus,
    PendingWrite,
    Run,
    RunStatus,
    Side,
    SideState,
)
from crm_bridge.store.schema import (
    audit_log,
    change_cursors,
    cursors,
    dead_letters,
    decisions,
    links,
    runs,
)

__all__ = ["FEED_POSITION_OBJECT", "Backend", "LinkIn", "Store", "StoreTx", "display_url"]

Backend = Literal["sqlite", "postgresql"]
Clock = Callable[[], datetime]

IN_CHUNK = 500
"""Ids per ``IN (...)`` list: well under SQLite's variable limit and PostgreSQL's sweet spot."""

SQLITE_BUSY_TIMEOUT_MS = 5000
STREAM_BATCH = 1000
WRITER_LOCK_POLL_SECONDS = 0.2
"""How often :meth:`Store.writer_lock` retries a held lock while it may wait."""

_LINK_FIELDS = frozenset(
    {
        "crm_id",
        "map_id",
        "crm_version",
        "map_version",
        "crm_state",
        "map_state",
        "crm_pending",
        "map_pending",
        "synced",
        "status",
        "merged_into",
        "identity",
    }
)


@contextlib.contextmanager
def _unavailable(display: str) -> Iterator[None]:
    """Report connection-level failures as :class:`StoreError`, naming the masked URL.

    Server down, SQLite still busy after the timeout, a dropped connection: for the CLI these all
    mean "the store cannot be used" (exit code 8), not a crash with a driver traceback.
    """
    try:
        yield
    except sa.exc.OperationalError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise StoreError(f"state store {display} is unavailable: {detail}") from exc


SQLITE_ANALYSIS_LIMIT = 400
"""Rows ``PRAGMA optimize`` samples per index: bounds its cost on a large store (SQLite docs)."""


def _sqlite_optimize(dbapi_conn: Any) -> None:
    """``PRAGMA optimize`` as a SQLite connection closes, as the SQLite documentation advises.

    It refreshes ``sqlite_stat1`` only for tables this connection queried whose statistics are
    missing or stale (25x growth), sampling at most :data:`SQLITE_ANALYSIS_LIMIT` rows per index,
    so closing a small or unchanged store costs microseconds.  The store's hot plans do not depend
    on it (see docs/store.md, "Indexes and plans"); it keeps the planner well informed for the rest.
    Never waits: if another connection holds the write lock, the statistics just wait for the
    next close.
    """
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
            cur.execute("PRAGMA optimize")
        finally:
            cur.close()
    except sqlite3.Error:  # best effort on the way out: a busy or already closed db is fine
        pass


def _utcnow() -> datetime:
    return datetime.now(UTC)


def display_url(url: str | URL) -> str:
    """Render a database URL for logs and ``state show`` with every secret masked.

    The password and password-ish query parameters (``?password=``, ``?sslpassword=``) become
    ``***``.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    query = {k: ("***" if "password" in k.lower() else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


FEED_POSITION_OBJECT = "@feed"
"""The ``cursors.object`` under which a pair side's push-channel position is kept."""


@dataclass(frozen=True, slots=True)
class LinkIn:
    """One new link for :meth:`StoreTx.insert_links` (the bulk form of ``insert_link``)."""

    crm_id: str | None
    map_id: str | None
    crm_version: str | None = None
    map_version: str | None = None
    synced: Mapping[str, Any] | None = None
    identity: str | None = None
    crm_state: SideState = "synced"
    map_state: SideState = "synced"
    crm_pending: PendingWrite | None = None
    map_pending: PendingWrite | None = None


def _dialect_insert(backend: Backend, table: sa.Table) -> Any:
    if backend == "postgresql":
        return pg_dialect.insert(table)
    return sqlite_dialect.insert(table)


@functools.cache
def _insert_link_stmt(backend: Backend) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING *`` for one link, built once.

    Building the statement per call costs more than executing it; a unique conflict inserts
    nothing and returns no row, which needs no savepoint to keep the transaction usable.
    """
    return _dialect_insert(backend, links).on_conflict_do_nothing().returning(*links.c)


_CONFLICTING = frozenset({"crm_id", "map_id", "status"})


LinkChange = str | int | Mapping[str, Any] | PendingWrite | None
"""A value for :meth:`StoreTx.update_link`: ids/versions/states/status are ``str``,
``merged_into`` is ``int``, ``synced`` is a JSON-serialisable mapping, ``*_pending`` a
:class:`PendingWrite` (or ``None``)."""


def _link_changes(changes: Mapping[str, LinkChange]) -> dict[str, Any]:
    """Validate the keyword changes of ``update_link`` into column values."""
    unknown = set(changes) - _LINK_FIELDS
    if unknown:
        raise TypeError(f"unknown link fields: {sorted(unknown)}")
    values: dict[str, Any] = dict(changes)
    status = values.get("status")
    if "status" in values:
        _check(str(status), LinkStatus, "status")
        if status != "merged" and "merged_into" not in values:
            values["merged_into"] = None
    for key in ("crm_state", "map_state"):
        if key in values:
            _check(str(values[key]), SideState, key)
    for key, value in values.items():
        expected: type = {
            "merged_into": int,
            "synced": Mapping,
            "crm_pending": PendingWrite,
            "map_pending": PendingWrite,
        }.get(key, str)
        if value is not None and not isinstance(value, expected):
            raise TypeError(f"{key} must be {expected.__name__} or None, not {value!r}")
    if values.get("synced") is not None:
        values["synced"] = dict(values["synced"])
    for key in ("crm_pending", "map_pending"):
        if values.get(key) is not None:
            values[key] = values[key].to_json()
    return values


def _check(value: str, allowed: object, what: str) -> None:
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, not {value!r}")


def _link(row: sa.Row[Any]) -> Link:
    return _link_from(row._mapping)


def _link_from(m: Mapping[Any, Any]) -> Link:
    """A :class:`Link` from column values (a fetched row, or a row just inserted plus its id)."""
    return Link(
        id=m["id"],
        pair=m["pair"],
        obj=m["object"],
        crm_id=m["crm_id"],
        map_id=m["map_id"],
        crm_version=m["crm_version"],
        map_version=m["map_version"],
        synced=m["synced"] or {},
        status=m["status"],
        merged_into=m["merged_into"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        identity=m["identity"],
        crm_state=m["crm_state"],
        map_state=m["map_state"],
        crm_pending=_pending_from(m["crm_pending"]),
        map_pending=_pending_from(m["map_pending"]),
    )


def _pending_from(value: Any) -> PendingWrite | None:
    """A stored pending write (JSON), or the object itself for rows built in memory."""
    if value is None or isinstance(value, PendingWrite):
        return value
    return PendingWrite.from_json(value)


def dead_letter_from_row(row: sa.Row[Any]) -> DeadLetter:
    """A ``dead_letters`` row as a :class:`DeadLetter` (also for the operator's queries)."""
    m = row._mapping
    return DeadLetter(
        id=m["id"],
        pair=m["pair"],
        side=m["side"],
        obj=m["object"],
        record_key=m["record_key"],
        operation=m["operation"],
        payload=m["payload"],
        reason=m["reason"],
        error_code=m["error_code"],
        attempts=m["attempts"],
        first_seen=m["first_seen"],
        last_seen=m["last_seen"],
        status=m["status"],
        next_retry_at=m["next_retry_at"],
        resolved_at=m["resolved_at"],
    )


def _run(row: sa.Row[Any]) -> Run:
    m = row._mapping
    return Run(
        id=m["id"],
        pair=m["pair"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        status=m["status"],
        counts=m["counts"],
        calls=m["calls"],
        error=m["error"],
    )


def _decision(row: sa.Row[Any]) -> Decision:
    m = row._mapping
    return Decision(
        id=m["id"],
        run_id=m["run_id"],
        pair=m["pair"],
        obj=m["object"],
        link_id=m["link_id"],
        field=m["field"],
        crm_value=m["crm_value"],
        map_value=m["map_value"],
        crm_modified_at=m["crm_modified_at"],
        map_modified_at=m["map_modified_at"],
        rule=m["rule"],
        winner=m["winner"],
        at=m["at"],
    )


def cursor_from_row(row: sa.Row[Any]) -> ChangeCursor:
    """A ``change_cursors`` row as a :class:`ChangeCursor` (also for the operator's queries)."""
    position = None
    if row.position_at is not None and row.position_id is not None:
        position = (row.position_at, row.position_id)
    return ChangeCursor(
        newest=(row.newest_at, row.newest_id),
        phase=row.phase,
        position=position,
        found_newer=bool(row.found_newer),
        seen_through=row.seen_through_at,
    )


def audit_from_row(row: sa.Row[Any]) -> AuditEntry:
    """An ``audit_log`` row as an :class:`AuditEntry` (also for the operator's queries)."""
    m = row._mapping
    return AuditEntry(
        id=m["id"], at=m["at"], kind=m["kind"], subject=m["subject"], pair=m["pair"], data=m["data"]
    )


def _decision_row(d: DecisionIn) -> dict[str, Any]:
    return {
        "run_id": d.run_id,
        "pair": d.pair,
        "object": d.obj,
        "link_id": d.link_id,
        "field": d.field,
        "crm_value": d.crm_value,
        "map_value": d.map_value,
        "crm_modified_at": d.crm_modified_at,
        "map_modified_at": d.map_modified_at,
        "rule": d.rule,
        "winner": d.winner,
        "at": d.at,
    }


def _side_column(side: Side) -> sa.Column[Any]:
    _check(side, Side, "side")
    return links.c.crm_id if side == "crm" else links.c.map_id


def _prefer(current: Link | None, candidate: Link) -> Link:
    """Pick what a lookup returns when several links share an id.

    The active one wins, else the newest tombstone (tombstones may repeat ids; at most one active
    link may).
    """
    if current is None:
        return candidate
    if current.active != candidate.active:
        return current if current.active else candidate
    return current if current.id > candidate.id else candidate


class StoreTx:
    """Every read and write of the store, inside one database transaction.

    Obtain it from :meth:`Store.transaction`; it is only valid inside that ``with`` block.  Write
    methods that can violate a uniqueness rule raise :class:`StoreConflictError` and leave the
    transaction usable (a savepoint on PostgreSQL, statement rollback on SQLite).
    """

    def __init__(self, conn: Connection, backend: Backend, clock: Clock) -> None:
        """Wrap ``conn``, which must already be inside a transaction."""
        self._conn = conn
        self._backend = backend
        self._clock = clock

    # -- helpers -----------------------------------------------------------------------------

    def _now(self, now: datetime | None) -> datetime:
        return self._clock() if now is None else now

    @contextlib.contextmanager
    def _guard(self, *, multi: bool = False) -> Iterator[None]:
        """Turn integrity errors into :class:`StoreConflictError` without dooming the transaction.

        PostgreSQL aborts the whole transaction on any error, so the statement runs in a
        savepoint; SQLite already undoes just the failing statement.  ``multi`` (several
        statements that must succeed or fail together) needs the savepoint on both.
        """
        try:
            if multi or self._backend == "postgresql":
                with self._conn.begin_nested():
                    yield
            else:
                yield
        except IntegrityError as exc:
            raise StoreConflictError(str(exc.orig).strip().splitlines()[0]) from exc

    def _insert(self, table: sa.Table) -> Any:
        """A dialect ``INSERT`` that supports ``ON CONFLICT`` (same API on both backends)."""
        return _dialect_insert(self._backend, table)

    # -- links -------------------------------------------------------------------------------

    def links_by_ids(self, pair: str, obj: str, side: Side, ids: Iterable[str]) -> dict[str, Link]:
        """Links whose ``side`` id is in ``ids``, keyed by that id; ids without a link are absent.

        Queries in chunks of :data:`IN_CHUNK`.  If an id has an active link it is returned;
        otherwise the newest tombstone (``deleted``/``merged``) is, so the engine can tell "never
        seen" from "seen and deleted/merged" -- check :attr:`Link.active`.
        """
        found: dict[str, Link] = {}
        for row in self._lookup(_side_column(side), pair, obj, ids):
            link = _link(row)
            key = link.id_on(side)
            assert key is not None
            found[key] = _prefer(found.get(key), link)
        return found

    def links_by_identity(self, pair: str, obj: str, identities: Iterable[str]) -> dict[str, Link]:
        """Active links matched on each of ``identities`` (normalised values), keyed by identity."""
        return self._by_identity(pair, obj, identities, lambda link: link.active)

    def unpaired_deletes_by_identity(
        self, pair: str, obj: str, identities: Iterable[str]
    ) -> dict[str, Link]:
        """Deleted half links by identity: records deleted before any cycle paired them.

        The sync records one when it reads such a delete without the other side's record of
        the person in the same read (a capped read); a later read of that record finds it here.
        """
        return self._by_identity(
            pair,
            obj,
            identities,
            lambda link: link.status == "deleted" and (link.crm_id is None or link.map_id is None),
        )

    def _by_identity(
        self, pair: str, obj: str, identities: Iterable[str], which: Callable[[Link], bool]
    ) -> dict[str, Link]:
        """The first link (lowest id) of each identity among those ``which`` accepts.

        One query per chunk, constraining only ``identity``, ``pair`` and ``object``: a status
        (or half-link) condition in SQL would let a planner without statistics prefer the status
        or pending index and scan every active link (see ``_lookup``).  The few tombstones
        sharing an identity are dropped here instead.
        """
        found: dict[str, Link] = {}
        for row in self._lookup(links.c.identity, pair, obj, identities):
            link = _link(row)
            assert link.identity is not None
            if which(link) and (link.identity not in found or link.id < found[link.identity].id):
                found[link.identity] = link
        return found

    def _lookup(
        self,
        column: sa.Column[Any],
        pair: str,
        obj: str,
        values: Iterable[str],
        *,
        columns: Sequence[sa.ColumnElement[Any]] | None = None,
    ) -> Iterator[sa.Row[Any]]:
        """Rows of ``links`` whose ``column`` is in ``values``, one ``IN`` query per chunk.

        Every hot link lookup goes through here, and the statement constrains exactly
        ``column IN (...)``, ``pair`` and ``object`` -- nothing else.  Index
        ``ix_links_<column>_pair_object`` leads with ``column`` and no other index of ``links``
        leads with ``column``, ``pair`` or ``object`` (the partial ones need a status or half-link
        condition the statement does not have), so SQLite and PostgreSQL both use it whatever
        statistics they have or lack.  Callers filter status in Python.
        """
        wanted = sorted(set(values))
        base = sa.select(*(columns or links.c)).where(links.c.pair == pair, links.c.object == obj)
        for chunk in chunked(wanted, IN_CHUNK):
            yield from self._conn.execute(base.where(column.in_(chunk)))

    def link_for(self, pair: str, obj: str, side: Side, record_id: str) -> Link | None:
        """The link of one record (same preference rules as :meth:`links_by_ids`)."""
        return self.links_by_ids(pair, obj, side, [record_id]).get(record_id)

    def link(self, link_id: int) -> Link | None:
        """A link by its id, e.g. to follow ``merged_into``."""
        row = self._conn.execute(sa.select(links).where(links.c.id == link_id)).first()
        return None if row is None else _link(row)

    def links_by_link_ids(self, link_ids: Iterable[int]) -> dict[int, Link]:
        """Links by their own ids (one query per :data:`IN_CHUNK`); unknown ids are absent.

        The executor reads every link a write batch touched at once instead of one by one.
        """
        wanted = sorted(set(link_ids))
        found: dict[int, Link] = {}
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            for row in self._conn.execute(sa.select(links).where(links.c.id.in_(chunk))):
                link = _link(row)
                found[link.id] = link
        return found

    def insert_link(
        self,
        pair: str,
        obj: str,
        *,
        crm_id: str | None,
        map_id: str | None,
        crm_version: str | None,
        map_version: str | None,
        synced: Mapping[str, Any] | None = None,
        identity: str | None = None,
        now: datetime | None = None,
    ) -> Link:
        """Create an active link.

        One of ``crm_id``/``map_id`` may be ``None`` while the create on that side is pending
        (fill it in with :meth:`update_link`).

        Raises :class:`StoreConflictError` if either id already has an active link.
        """
        return self.insert_links(
            pair,
            obj,
            [LinkIn(crm_id, map_id, crm_version, map_version, synced, identity)],
            now=now,
        )[0]

    def insert_links(
        self, pair: str, obj: str, new: Sequence[LinkIn], *, now: datetime | None = None
    ) -> list[Link]:
        """Create many active links with one ``executemany``; returned in the order of ``new``.

        All-or-nothing: a conflict inserts none of them.
        """
        if not new:
            return []
        ts = self._now(now)
        rows: list[dict[str, Any]] = []
        for n in new:
            if n.crm_id is None and n.map_id is None:
                raise ValueError("a link needs a crm_id or a map_id (or both)")
            rows.append(
                {
                    "pair": pair,
                    "object": obj,
                    "crm_id": n.crm_id,
                    "map_id": n.map_id,
                    "crm_version": n.crm_version,
                    "map_version": n.map_version,
                    "synced": None if n.synced is None else dict(n.synced),
                    "crm_state": n.crm_state,
                    "map_state": n.map_state,
                    "crm_pending": None if n.crm_pending is None else n.crm_pending.to_json(),
                    "map_pending": None if n.map_pending is None else n.map_pending.to_json(),
                    "identity": n.identity,
                    "status": "active",
                    "merged_into": None,
                    "created_at": ts,
                    "updated_at": ts,
                }
            )
        if len(rows) == 1:
            # No savepoint needed: a unique conflict just inserts nothing.
            row = self._conn.execute(_insert_link_stmt(self._backend), rows[0]).first()
            if row is None:
                raise StoreConflictError(
                    f"{pair}/{obj}: crm_id={rows[0]['crm_id']!r} or "
                    f"map_id={rows[0]['map_id']!r} already has an active link"
                )
            return [_link(row)]
        # A plain executemany, then read back through the unique active-id indexes: multi-row
        # INSERT ... RETURNING cannot promise row order on SQLite, and SQLAlchemy then falls back
        # to one statement per row.
        with self._guard(multi=True):
            self._conn.execute(sa.insert(links), rows)
        # Only the new ids are unknown: read them alone (no baseline JSON to decode) and build
        # the links from the rows just written.  The new link is the record's one active link;
        # its tombstones come back too and are skipped here, not in SQL (see _lookup: a status
        # condition is what once made this read scan every active link per batch).
        ids: dict[tuple[Side, str], int] = {}
        for side in ("crm", "map"):
            column = _side_column(side)
            wanted = [
                r[column.name]
                for r in rows
                if r[column.name] and (side == "crm" or not r["crm_id"])
            ]
            read = (links.c.id, column, links.c.status)
            for row in self._lookup(column, pair, obj, wanted, columns=read):
                if row.status == "active":
                    ids[(side, row[1])] = row.id
        return [
            _link_from(
                {**r, "id": ids[("crm", r["crm_id"]) if r["crm_id"] else ("map", r["map_id"])]}
            )
            for r in rows
        ]

    def update_link(
        self, link_id: int, *, now: datetime | None = None, **changes: LinkChange
    ) -> None:
        """Change ids, versions, states, ``synced``, ``status`` or ``merged_into`` of a link.

        Unknown keys raise :class:`TypeError`.  Leaving ``merged`` status clears ``merged_into``.
        Raises :class:`StoreNotFoundError` for an unknown id, :class:`StoreConflictError` if the
        change would give a record a second active link.
        """
        values = _link_changes(changes)
        values["updated_at"] = self._now(now)
        stmt = sa.update(links).where(links.c.id == link_id).values(values)
        # Only id and status changes can collide with another active link; version/baseline
        # write-backs (the hot path) skip the savepoint round trips.
        guard = self._guard() if _CONFLICTING.intersection(values) else contextlib.nullcontext()
        with guard:
            result = self._conn.execute(stmt)
        if result.rowcount == 0:
            raise StoreNotFoundError(f"no link with id {link_id}")

    def update_links(
        self,
        updates: Mapping[int, Mapping[str, LinkChange]],
        *,
        now: datetime | None = None,
    ) -> None:
        """Apply :meth:`update_link` changes to many links with one ``executemany`` per shape.

        Meant for writing back versions and baselines after a batch.  All-or-nothing; raises
        :class:`StoreNotFoundError` if any id is unknown.
        """
        ts = self._now(now)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for link_id, changes in updates.items():
            values = _link_changes(changes)
            values["updated_at"] = ts
            groups.setdefault(tuple(sorted(values)), []).append(
                {**{f"v_{k}": v for k, v in values.items()}, "v_link_id": link_id}
            )
        found = 0
        with self._guard(multi=True):
            for keys, params in groups.items():
                stmt = (
                    sa.update(links)
                    .where(links.c.id == sa.bindparam("v_link_id"))
                    .values({k: sa.bindparam(f"v_{k}") for k in keys})
                )
                found += self._conn.execute(stmt, params).rowcount
            if found != len(updates):
                raise StoreNotFoundError(f"{len(updates) - found} of the link ids do not exist")

    def mark_link(
        self,
        link_id: int,
        status: Literal["deleted", "merged"],
        merged_into: int | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        """Tombstone a link: ``deleted``, or ``merged`` into the surviving link ``merged_into``.

        The row is kept (with its ids) so later events for the dead record can be recognised.
        """
        if status == "merged":
            if merged_into is None or merged_into == link_id:
                raise ValueError("a merged link needs merged_into pointing at another link")
        elif status == "deleted":
            if merged_into is not None:
                raise ValueError("merged_into only applies to status='merged'")
        else:
            raise ValueError(f"mark_link status must be 'deleted' or 'merged', not {status!r}")
        self.update_link(link_id, status=status, merged_into=merged_into, now=now)

    def iter_links(
        self, pair: str, obj: str, *, status: LinkStatus | None = "active"
    ) -> Iterator[Link]:
        """Stream links in id order without loading them all; ``status=None`` streams all.

        Rows come :data:`STREAM_BATCH` at a time (a server-side cursor on PostgreSQL).  Do not
        write to links while iterating -- collect ids first.
        """
        stmt = sa.select(links).where(links.c.pair == pair, links.c.object == obj)
        if status is not None:
            stmt = stmt.where(links.c.status == status)
        stmt = stmt.order_by(links.c.id).execution_options(yield_per=STREAM_BATCH)
        result = self._conn.execute(stmt)
        try:
            for row in result:
                yield _link(row)
        finally:
            result.close()

    def pending_links(self, pair: str, obj: str) -> list[Link]:
        """Active links still missing one side's id: creates announced but not confirmed.

        The engine writes such a link *before* it sends a create, so a crash between the
        vendor accepting the create and our bookkeeping leaves a trace to recover from.  There
        are only as many as the creates in flight when a process died.
        """
        stmt = (
            sa.select(links)
            .where(
                links.c.pair == pair,
                links.c.object == obj,
                links.c.status == "active",
                sa.or_(links.c.crm_id.is_(None), links.c.map_id.is_(None)),
            )
            .order_by(links.c.id)
        )
        return [_link(row) for row in self._conn.execute(stmt)]

    def delete_pending_link(self, link_id: int) -> None:
        """Forget a pending link whose create the vendor refused (nothing was created).

        Only pending links can be deleted: a link with both ids is history and is tombstoned
        with :meth:`mark_link` instead.  Raises :class:`StoreNotFoundError` otherwise.
        """
        result = self._conn.execute(
            sa.delete(links).where(
                links.c.id == link_id,
                sa.or_(links.c.crm_id.is_(None), links.c.map_id.is_(None)),
            )
        )
        if result.rowcount == 0:
            raise StoreNotFoundError(f"no pending link with id {link_id}")

    def count_links(self, pair: str, obj: str, *, status: LinkStatus | None = "active") -> int:
        """Number of links of a pair and object (``status=None``: all statuses)."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(links)
            .where(links.c.pair == pair, links.c.object == obj)
        )
        if status is not None:
            stmt = stmt.where(links.c.status == status)
        return int(self._conn.execute(stmt).scalar_one())

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, pair: str, side: Side, obj: str) -> str | None:
        """The stored change cursor, or ``None`` before the first completed batch."""
        return self._conn.execute(
            sa.select(cursors.c.value).where(
                cursors.c.pair == pair, cursors.c.side == side, cursors.c.object == obj
            )
        ).scalar_one_or_none()

    def set_cursor(
        self, pair: str, side: Side, obj: str, value: str, *, now: datetime | None = None
    ) -> None:
        """Upsert the cursor.  Call it in the same transaction as the outcomes it covers."""
        _check(side, Side, "side")
        ts = self._now(now)
        stmt = self._insert(cursors).values(
            pair=pair, side=side, object=obj, value=value, updated_at=ts
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[cursors.c.pair, cursors.c.side, cursors.c.object],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        self._conn.execute(stmt)

    def get_feed_position(self, pair: str, side: Side) -> str | None:
        """Where one side's push channel resumes (a journal offset, a replay id), if stored.

        Kept in ``cursors`` under the reserved object :data:`FEED_POSITION_OBJECT`: like the SLA
        engine's cursors it is one opaque text per pair and side, and no object is named so.
        """
        return self.get_cursor(pair, side, FEED_POSITION_OBJECT)

    def set_feed_position(
        self, pair: str, side: Side, position: str, *, now: datetime | None = None
    ) -> None:
        """Store it once the hints before it are handled, so a crash re-reads them."""
        self.set_cursor(pair, side, FEED_POSITION_OBJECT, position, now=now)

    def get_change_cursor(self, pair: str, side: Side, obj: str) -> ChangeCursor | None:
        """The sync's position in one side's change stream, ``None`` before anything was read."""
        row = self._conn.execute(
            sa.select(change_cursors).where(
                change_cursors.c.pair == pair,
                change_cursors.c.side == side,
                change_cursors.c.object == obj,
            )
        ).one_or_none()
        return None if row is None else cursor_from_row(row)

    def set_change_cursor(
        self, pair: str, side: Side, obj: str, cursor: ChangeCursor, *, now: datetime | None = None
    ) -> None:
        """Upsert it.  Call it in the same transaction as the outcomes of the read it ends."""
        _check(side, Side, "side")
        values = {
            "newest_at": cursor.newest[0],
            "newest_id": cursor.newest[1],
            "phase": cursor.phase,
            "position_at": cursor.position[0] if cursor.position else None,
            "position_id": cursor.position[1] if cursor.position else None,
            "found_newer": cursor.found_newer,
            "seen_through_at": cursor.seen_through,
            "updated_at": self._now(now),
        }
        stmt = self._insert(change_cursors).values(pair=pair, side=side, object=obj, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[change_cursors.c.pair, change_cursors.c.side, change_cursors.c.object],
            set_={k: getattr(stmt.excluded, k) for k in values},
        )
        self._conn.execute(stmt)

    # -- dead letters ------------------------------------------------------------------------

    def add_dead_letter(
        self,
        *,
        pair: str,
        side: Side,
        obj: str,
        record_key: str,
        operation: str,
        payload: Mapping[str, Any],
        reason: str,
        error_code: str | None,
        next_retry_at: datetime | None = None,
        now: datetime | None = None,
    ) -> DeadLetter:
        """Park a rejected write, or count another attempt on the open item for the same record.

        "Same" is (pair, side, obj, record_key) with status ``open``: then ``attempts += 1``, and
        reason, error code, operation, payload, ``last_seen`` and ``next_retry_at`` take the new
        values while ``first_seen`` stays.

        ``next_retry_at=None`` means no automatic retry (:meth:`due_dead_letters` skips it).
        """
        _check(side, Side, "side")
        ts = self._now(now)
        stmt = self._insert(dead_letters).values(
            pair=pair,
            side=side,
            object=obj,
            record_key=record_key,
            operation=operation,
            payload=dict(payload),
            reason=reason,
            error_code=error_code,
            attempts=1,
            first_seen=ts,
            last_seen=ts,
            status="open",
            next_retry_at=next_retry_at,
        )
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                dead_letters.c.pair,
                dead_letters.c.side,
                dead_letters.c.object,
                dead_letters.c.record_key,
            ],
            index_where=sa.text("status = 'open'"),
            set_={
                "attempts": dead_letters.c.attempts + 1,
                "operation": ex.operation,
                "payload": ex.payload,
                "reason": ex.reason,
                "error_code": ex.error_code,
                "last_seen": ex.last_seen,
                "next_retry_at": ex.next_retry_at,
            },
        ).returning(*dead_letters.c)
        return dead_letter_from_row(self._conn.execute(stmt).one())

    def dead_letters(
        self, *, pair: str | None = None, status: DeadLetterStatus | None = "open", limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (``status=None``: any status)."""
        stmt = sa.select(dead_letters).order_by(dead_letters.c.id).limit(limit)
        if pair is not None:
            stmt = stmt.where(dead_letters.c.pair == pair)
        if status is not None:
            stmt = stmt.where(dead_letters.c.status == status)
        return [dead_letter_from_row(r) for r in self._conn.execute(stmt)]

    def dead_letter(self, dl_id: int) -> DeadLetter | None:
        """One dead letter by id."""
        row = self._conn.execute(sa.select(dead_letters).where(dead_letters.c.id == dl_id)).first()
        return None if row is None else dead_letter_from_row(row)

    def set_dead_letter_status(
        self, dl_id: int, status: DeadLetterStatus, *, now: datetime | None = None
    ) -> None:
        """Close (``replayed``/``dismissed``, stamping ``resolved_at``) or re-open a dead letter.

        Re-opening raises :class:`StoreConflictError` if the record has a newer open item.
        """
        _check(status, DeadLetterStatus, "status")
        resolved_at = None if status == "open" else self._now(now)
        with self._guard():
            result = self._conn.execute(
                sa.update(dead_letters)
                .where(dead_letters.c.id == dl_id)
                .values(status=status, resolved_at=resolved_at)
            )
        if result.rowcount == 0:
            raise StoreNotFoundError(f"no dead letter with id {dl_id}")

    def resolve_dead_letters(
        self, pair: str, side: Side, obj: str, record_key: str, *, now: datetime | None = None
    ) -> int:
        """Close the record's open item as ``replayed`` because the record has now synced.

        Returns how many items were closed (0 or 1).  Call it in the transaction that records the
        successful write, so "synced" and "no longer dead-lettered" commit together.
        """
        return self.resolve_dead_letters_for(pair, side, obj, [record_key], now=now)

    def resolve_dead_letters_for(
        self,
        pair: str,
        side: Side,
        obj: str,
        record_keys: Iterable[str],
        *,
        now: datetime | None = None,
    ) -> int:
        """:meth:`resolve_dead_letters` for a whole write batch, one statement per chunk.

        Returns how many items were closed.  A batch of successes usually has no open item at
        all, so this costs one indexed ``SELECT`` per chunk (and an ``UPDATE`` by id only when
        there is something to close) instead of one statement per record.
        """
        wanted = sorted(set(record_keys))
        # Find the open items through ix_dead_letters_record_key, then close them by id.  The
        # read constrains record_key, pair, side and object only: with ``status = 'open'`` in
        # the statement a planner without statistics may prefer the due-retry or status index
        # and visit every open item of the pair, once per write batch.
        d = dead_letters.c
        base = sa.select(d.id, d.status).where(d.pair == pair, d.side == side, d.object == obj)
        open_ids: list[int] = []
        for chunk in chunked(wanted, IN_CHUNK):
            for dl_id, status in self._conn.execute(base.where(d.record_key.in_(chunk))):
                if status == "open":
                    open_ids.append(int(dl_id))
        ts = self._now(now)
        closed = 0
        for start in range(0, len(open_ids), IN_CHUNK):
            # "not closed meanwhile" as NOT IN: ``status = 'open'`` would match the partial
            # open-key index's predicate and tempt PostgreSQL into reading every open item
            closed_meanwhile = d.status.in_(("replayed", "dismissed"))
            result = self._conn.execute(
                sa.update(dead_letters)
                .where(d.id.in_(open_ids[start : start + IN_CHUNK]), sa.not_(closed_meanwhile))
                .values(status="replayed", resolved_at=ts)
            )
            closed += int(result.rowcount)
        return closed

    def dead_letter_attempts(self, pair: str, side: Side, obj: str, record_key: str) -> int:
        """How often the record's open item has failed so far (0 if none): the backoff input.

        Read through ``ix_dead_letters_record_key`` with the status checked here, for the reason
        given in :meth:`resolve_dead_letters_for`.
        """
        d = dead_letters.c
        rows = self._conn.execute(
            sa.select(d.attempts, d.status).where(
                d.record_key == record_key, d.pair == pair, d.side == side, d.object == obj
            )
        )
        return next((int(attempts) for attempts, status in rows if status == "open"), 0)

    def due_dead_letters(
        self, pair: str, now: datetime, max_attempts: int, *, limit: int | None = None
    ) -> list[DeadLetter]:
        """Open items of ``pair`` that are due for an automatic retry, soonest-due first.

        Due means ``next_retry_at <= now`` and fewer than ``max_attempts`` failures so far.  Items
        without ``next_retry_at`` are never due (manual replay only).
        """
        stmt = (
            sa.select(dead_letters)
            .where(
                dead_letters.c.pair == pair,
                dead_letters.c.status == "open",
                dead_letters.c.next_retry_at.is_not(None),
                dead_letters.c.next_retry_at <= now,
                dead_letters.c.attempts < max_attempts,
            )
            .order_by(dead_letters.c.next_retry_at, dead_letters.c.id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [dead_letter_from_row(r) for r in self._conn.execute(stmt)]

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, pair: str, now: datetime) -> int:
        """Record a run as ``running`` and return its id.

        Commit this in its own short transaction so an aborted run is still visible.
        """
        stmt = (
            sa.insert(runs)
            .values(pair=pair, started_at=now, status="running", counts={}, calls={})
            .returning(runs.c.id)
        )
        return int(self._conn.execute(stmt).scalar_one())

    def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        counts: Mapping[str, int],
        calls: Mapping[str, int],
        error: str | None,
        now: datetime,
    ) -> None:
        """Record how a run ended; ``status`` must not be ``running``."""
        _check(status, RunStatus, "status")
        if status == "running":
            raise ValueError("finish_run needs a final status (ok, failed or aborted)")
        result = self._conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(
                status=status, counts=dict(counts), calls=dict(calls), error=error, finished_at=now
            )
        )
        if result.rowcount == 0:
            raise StoreNotFoundError(f"no run with id {run_id}")

    def last_runs(self, pair: str | None = None, limit: int = 20) -> list[Run]:
        """Most recent runs first."""
        stmt = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        if pair is not None:
            stmt = stmt.where(runs.c.pair == pair)
        return [_run(r) for r in self._conn.execute(stmt)]

    # -- decisions and audit -----------------------------------------------------------------

    def log_decision(self, d: DecisionIn) -> None:
        """Append one conflict decision."""
        self._conn.execute(sa.insert(decisions), _decision_row(d))

    def log_decisions(self, ds: Iterable[DecisionIn]) -> None:
        """Append many conflict decisions with one ``executemany``."""
        rows = [_decision_row(d) for d in ds]
        if rows:
            self._conn.execute(sa.insert(decisions), rows)

    def decisions(
        self, *, pair: str | None = None, link_id: int | None = None, limit: int = 100
    ) -> list[Decision]:
        """Recorded decisions, newest first."""
        stmt = sa.select(decisions).order_by(decisions.c.id.desc()).limit(limit)
        if pair is not None:
            stmt = stmt.where(decisions.c.pair == pair)
        if link_id is not None:
            stmt = stmt.where(decisions.c.link_id == link_id)
        return [_decision(r) for r in self._conn.execute(stmt)]

    def audit(
        self,
        kind: str,
        subject: str,
        data: Mapping[str, Any],
        *,
        now: datetime,
        pair: str | None = None,
    ) -> None:
        """Append an audit entry (the log is append-only: there is no update or delete)."""
        self._conn.execute(
            sa.insert(audit_log).values(
                at=now, kind=kind, subject=subject, pair=pair, data=dict(data)
            )
        )

    def audit_entries(
        self,
        *,
        subject: str | None = None,
        kind_prefix: str | None = None,
        pair: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Audit entries in time order (``at``, then insertion order), oldest first.

        ``kind_prefix="sla."`` matches ``sla.reminder`` etc.; ``%`` and ``_`` match literally.
        """
        stmt = sa.select(audit_log).order_by(audit_log.c.at, audit_log.c.id).limit(limit)
        if subject is not None:
            stmt = stmt.where(audit_log.c.subject == subject)
        if kind_prefix is not None:
            stmt = stmt.where(audit_log.c.kind.startswith(kind_prefix, autoescape=True))
        if pair is not None:
            stmt = stmt.where(audit_log.c.pair == pair)
        return [audit_from_row(r) for r in self._conn.execute(stmt)]

    # -- maintenance -------------------------------------------------------------------------

    def reset_pair(self, pair: str) -> dict[str, int]:
        """Forget a pair's sync state: its links, cursors and dead letters.

        History (runs, decisions, audit log) is kept; decisions lose their ``link_id``.  The next
        sync of the pair starts from scratch, so take the writer lock around this.
        """
        counts: dict[str, int] = {}
        for name, table in (
            ("dead_letters", dead_letters),
            ("cursors", cursors),
            ("change_cursors", change_cursors),
            ("links", links),
        ):
            result = self._conn.execute(sa.delete(table).where(table.c.pair == pair))
            name = "cursors" if table is change_cursors else name
            counts[name] = counts.get(name, 0) + result.rowcount
        return counts

    def summary(self) -> dict[str, Any]:
        """Counts for ``crm-bridge state show``.

        ``{"revision": ..., "pairs": {pair: {"links": {status: n}, "cursors": n,
        "dead_letters": {status: n}, "runs": n, "decisions": n, "audit_log": n}},
        "audit_log_without_pair": n}``
        """
        pairs: dict[str, dict[str, Any]] = {}

        def entry(pair: str) -> dict[str, Any]:
            return pairs.setdefault(
                pair,
                {
                    "links": {},
                    "cursors": 0,
                    "dead_letters": {},
                    "runs": 0,
                    "decisions": 0,
                    "audit_log": 0,
                },
            )

        for table in (links, dead_letters):
            q = sa.select(table.c.pair, table.c.status, sa.func.count()).group_by(
                table.c.pair, table.c.status
            )
            for pair, status, n in self._conn.execute(q):
                entry(pair)[table.name][status] = n
        without_pair = 0
        for table in (cursors, change_cursors, runs, decisions, audit_log):
            q = sa.select(table.c.pair, sa.func.count()).group_by(table.c.pair)
            for pair, n in self._conn.execute(q):
                if pair is None:
                    without_pair = n
                else:
                    name = "cursors" if table is change_cursors else table.name
                    entry(pair)[name] = entry(pair).get(name, 0) + n
        return {
            "revision": migrate.current_revision(self._conn),
            "pairs": dict(sorted(pairs.items())),
            "audit_log_without_pair": without_pair,
        }


class Store:
    """A handle on one state database (a SQLite file or a PostgreSQL database/schema).

    Create it with :meth:`open`; it is thread-safe (connections come from a pool), and several
    ``Store`` objects -- in one or many processes -- may open the same database.  Writers
    coordinate with :meth:`writer_lock`.
    """

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        *,
        display: str,
        clock: Clock,
        sqlite_path: Path | None,
    ) -> None:
        """Use :meth:`open`; this only wires up an already configured engine."""
        self._engine = engine
        self.backend: Backend = backend
        self.url_for_display: str = display
        self._clock = clock
        self._sqlite_path = sqlite_path
        self._local = threading.local()
        self.migrated_from: str | None = None
        """Schema revision found by :meth:`open` before migrating (``None``: empty database)."""

    def __repr__(self) -> str:
        """Show the masked URL only."""
        return f"Store({self.url_for_display!r})"

    @classmethod
    def open(cls, url: str, *, echo: bool = False, clock: Clock | None = None) -> Store:
        """Connect and migrate to head.

        ``sqlite:///path/state.db`` (parent directories are created; ``sqlite://`` is an
        in-memory store for tests) or ``postgresql+psycopg://user@host/db`` (``postgresql://``
        is accepted as psycopg 3).  To use a PostgreSQL schema other than ``public``, add
        ``?options=-csearch_path%3Dmy_schema`` -- the schema must exist.
        """
        parsed = make_url(url)
        display = display_url(parsed)
        backend_name = parsed.get_backend_name()
        sqlite_path: Path | None = None
        if backend_name == "sqlite":
            if parsed.get_driver_name() not in ("pysqlite", ""):
                raise ValueError(f"unsupported SQLite driver in {display}")
            engine = cls._sqlite_engine(parsed, echo)
            if parsed.database not in (None, "", ":memory:"):
                sqlite_path = Path(str(engine.url.database))
            backend: Backend = "sqlite"
        elif backend_name == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
                display = display_url(parsed)
            if parsed.get_driver_name() != "psycopg":
                raise ValueError(f"PostgreSQL is supported through psycopg 3 only, not {display}")
            engine = cls._pg_engine(parsed, echo)
            backend = "postgresql"
        else:
            raise ValueError(f"unsupported database {display}: use sqlite:/// or postgresql://")
        store = cls(
            engine,
            backend,
            display=display,
            clock=clock or _utcnow,
            sqlite_path=sqlite_path,
        )
        try:
            with _unavailable(display):
                store.migrated_from, _ = migrate.upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return store

    @staticmethod
    def _pg_engine(parsed: URL, echo: bool) -> Engine:
        """PostgreSQL through psycopg 3, with custom plans forced.

        psycopg prepares a statement after five runs and PostgreSQL then switches to a generic
        plan, in which ``id IN (<500 parameters>)`` is no longer hashed but compared row by row
        -- 20x slower on a table whose statistics are not gathered yet (the first big sync).
        The store's statements are cheap to plan, so always planning them is the better deal.
        """
        engine = sa.create_engine(parsed, echo=echo, pool_pre_ping=True)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_conn.autocommit = autocommit

        return engine

    @staticmethod
    def _sqlite_engine(parsed: URL, echo: bool) -> Engine:
        """SQLite with WAL, a busy timeout, foreign keys, and transactions we control.

        pysqlite's own transaction handling defers ``BEGIN`` and breaks savepoints, so it is
        switched off and we emit ``BEGIN IMMEDIATE`` ourselves: a write transaction takes the
        write lock up front, so it waits (up to the busy timeout) instead of failing with
        "database is locked" halfway through when it first writes.
        """
        memory = parsed.database in (None, "", ":memory:")
        if memory:
            engine = sa.create_engine(
                "sqlite://",
                echo=echo,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        else:
            path = Path(str(parsed.database)).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                parsed.set(database=str(path)),
                echo=echo,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cur.execute("PRAGMA foreign_keys=ON")
            finally:
                cur.close()

        @sa.event.listens_for(engine, "close")
        def _on_close(dbapi_conn: Any, _record: Any) -> None:
            _sqlite_optimize(dbapi_conn)

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("crm_bridge_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine

    def close(self) -> None:
        """Close all pooled connections.  The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        """Allow ``with Store.open(url) as store:``."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the ``with`` block."""
        self.close()

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[StoreTx]:
        """One database transaction: commit on normal exit, roll back on any exception.

        ``readonly=True`` is for reporting (``state show``): writes fail, and on SQLite the
        transaction does not take the write lock (plain ``BEGIN`` plus ``PRAGMA query_only``);
        on PostgreSQL it runs ``READ ONLY``.  Transactions do not nest: opening a
        second one on the same thread while one is open raises :class:`StoreError` (on SQLite it
        would otherwise wait for itself until the busy timeout).
        """
        if getattr(self._local, "depth", 0):
            raise StoreError("Store.transaction() does not nest; pass the StoreTx down instead")
        self._local.depth = 1
        try:
            with _unavailable(self.url_for_display), self._engine.connect() as conn:
                if readonly and self.backend == "postgresql":
                    conn.execution_options(postgresql_readonly=True)
                elif readonly:
                    conn.execution_options(crm_bridge_readonly=True)
                query_only = readonly and self.backend == "sqlite"
                try:
                    with conn.begin():
                        if query_only:
                            conn.exec_driver_sql("PRAGMA query_only=ON")
                        yield StoreTx(conn, self.backend, self._clock)
                finally:
                    if query_only and not conn.invalidated:
                        # on the driver connection: a SQLAlchemy execute would BEGIN again
                        raw: Any = conn.connection.driver_connection
                        raw.execute("PRAGMA query_only=OFF")
        finally:
            self._local.depth = 0

    @contextlib.contextmanager
    def writer_lock(
        self, name: str, *, wait: float = 0.0, poll: float = WRITER_LOCK_POLL_SECONDS
    ) -> Iterator[None]:
        """Hold the single-writer lock ``name`` for the ``with`` block.

        Raises :class:`~crm_bridge.store.StoreLockedError` if someone else holds it -- at once,
        or after trying every ``poll`` seconds for ``wait`` seconds.  Why polling and not a
        blocking lock: a blocked ``flock`` or ``pg_advisory_lock`` cannot be interrupted by a
        deadline or a stop signal, and a writer waits at most one poll longer than it must.

        Not re-entrant: a second acquisition from the same process also fails.  See
        :mod:`crm_bridge.store.locking` for how it works on each backend.
        """
        deadline = time.monotonic() + max(0.0, wait)
        with _unavailable(self.url_for_display), contextlib.ExitStack() as stack:
            while True:
                if self.backend == "postgresql":
                    cm = locking.pg_writer_lock(self._engine, name, self.url_for_display)
                elif self._sqlite_path is not None:
                    cm = locking.sqlite_writer_lock(self._sqlite_path, name, self.url_for_display)
                else:
                    cm = locking.memory_writer_lock(self, name, self.url_for_display)
                try:
                    stack.enter_context(cm)
                except StoreLockedError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise
                    time.sleep(min(poll, left))
                    continue
                break
            yield

    @contextlib.contextmanager
    def pair_locks(self, pairs: Iterable[str], *, wait: float = 0.0) -> Iterator[None]:
        """Hold the writer lock of every pair in ``pairs`` (sorted, so two holders never deadlock)."""
        with contextlib.ExitStack() as stack:
            for pair in sorted(set(pairs)):
                stack.enter_context(self.writer_lock(locking.pair_lock_name(pair), wait=wait))
            yield

    def schema_revision(self) -> str | None:
        """The alembic revision the database is at."""
        with self._engine.connect() as conn:
            return migrate.current_revision(conn)

    @property
    def engine(self) -> Engine:
        """The underlying engine, for migrations tooling and tests -- not for application code."""
        return self._engine
