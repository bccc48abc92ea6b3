"""The single-writer lock: at most one sync (per lock name) writes to a store at a time.

The lock is *not* a database transaction.  It is held for a whole sync run, across many short
transactions, and is released automatically when the holder process dies:

* PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection; the key is
  derived from database, schema and lock name.  A crashed holder's session ends and the lock with
  it.  If the holding connection is lost (server restart) the lock is lost too -- the next
  transaction of the holder then fails on its own.
* SQLite: ``fcntl.flock`` on a file next to the database.  ``flock`` locks belong to the open file
  description, so two ``Store`` objects in one process exclude each other just like two processes
  do; the kernel drops the lock when the process exits, however it exits.
* In-memory SQLite (tests, demos): a process-local lock.

The lock itself never waits: a second writer gets :class:`StoreLockedError` at once.
:meth:`Store.writer_lock(name, wait=...) <crm_bridge.store.Store.writer_lock>` polls it for a
bounded time instead (a manual ``crm-bridge sync`` while workers run).

Lock names: each pair has its own writer lock, :func:`pair_lock_name` (``writer:<pair>``), taken
by everything that writes a pair's links, cursors or dead letters -- ``sync``, the daemon, the
workers, ``state reset`` and ``dlq replay``.  Why per pair and not one per store: with several
worker processes (``crm-bridge worker``) pairs run in parallel, and the exclusion that matters
is "one writer per pair"; the job queue's own lock gives that to jobs, and this lock is the
defence in depth against everything that does not go through the queue.  The store-wide jobs
lock (:data:`crm_bridge.sync.daemon.WRITER_LOCK`) still guards the SLA and reason jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_bridge.store.errors import StoreLockedError
from crm_bridge.store.migrate import pg_lock_key, pg_scope

__all__ = [
    "PAIR_LOCK_PREFIX",
    "lock_file_path",
    "memory_writer_lock",
    "pair_lock_name",
    "pg_writer_lock",
    "sqlite_writer_lock",
]

PAIR_LOCK_PREFIX = "writer:"


def pair_lock_name(pair: str) -> str:
    """The writer lock of one pair: ``writer:<pair>``."""
    return f"{PAIR_LOCK_PREFIX}{pair}"


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def lock_file_path(db_path: Path, name: str) -> Path:
    """``<db file>.<name>.lock``; unsafe characters in ``name`` are replaced and hashed."""
    safe = _SAFE.sub("_", name)
    if safe != name or not safe:
        safe = f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return db_path.with_name(f"{db_path.name}.{safe}.lock")


@contextlib.contextmanager
def sqlite_writer_lock(db_path: Path, name: str, display: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file of ``name`` for the ``with`` block."""
    path = lock_file_path(db_path, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise StoreLockedError(
                f"writer lock {name!r} on {display} is held by another process ({holder})"
            ) from None
        # Who holds it, for the error message of the next one; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def pg_writer_lock(engine: Engine, name: str, display: str) -> Iterator[None]:
    """Hold a session-level advisory lock on a dedicated autocommit connection."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        key = pg_lock_key(f"crm-bridge:{pg_scope(conn)}:writer:{name}")
        got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
        if not got:
            holder = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            ).scalar()
            who = f"backend pid {holder}" if holder is not None else "another session"
            raise StoreLockedError(f"writer lock {name!r} on {display} is held by {who}")
        try:
            yield
        finally:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))


_memory_locks: dict[tuple[int, str], threading.Lock] = {}
_memory_guard = threading.Lock()


@contextlib.contextmanager
def memory_writer_lock(owner: object, name: str, display: str) -> Iterator[None]:
    """Process-local lock for in-memory databases, which no other process can open anyway."""
    with _memory_guard:
        lock = _memory_locks.setdefault((id(owner), name), threading.Lock())
    if not lock.acquire(blocking=False):
        raise StoreLockedError(f"writer lock {name!r} on {display} is already held")
    try:
        yield
    finally:
        lock.release()
