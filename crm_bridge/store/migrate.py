"""Run the packaged alembic migrations programmatically.

``Store.open`` calls :func:`upgrade_to_head` every time, so a fresh file, an old schema or an
up-to-date one all end up at head.  Concurrent openers are serialised: on SQLite by the
``BEGIN IMMEDIATE`` write lock, on PostgreSQL by a transaction-scoped advisory lock, so two
processes starting at once never both try to create the tables.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from crm_bridge.store.errors import StoreSchemaError

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "pg_lock_key",
    "pg_scope",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An alembic ``Config`` for the packaged migrations -- no ``alembic.ini`` involved.

    Pass ``connection`` to run online (the env picks it up from ``config.attributes``) or ``url``
    for offline SQL generation.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this version of crm-bridge knows."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise StoreSchemaError("no migrations found in the package")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def pg_lock_key(scope: str) -> int:
    """A stable signed 64-bit advisory lock key for ``scope`` (PostgreSQL ``bigint``)."""
    digest = hashlib.blake2b(scope.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def pg_scope(connection: Connection) -> str:
    """``database/schema`` the connection writes to -- what "one store" means on PostgreSQL.

    Advisory locks are database-wide, so the schema must be part of every key: two stores in two
    schemas of one database (e.g. parallel test runs) must not block each other.
    """
    db, schema = connection.execute(sa.text("SELECT current_database(), current_schema()")).one()
    if schema is None:
        raise StoreSchemaError(
            "PostgreSQL search_path names no existing schema; create the schema first "
            "(CREATE SCHEMA ...) or fix the ?options=-csearch_path=... part of the URL"
        )
    return f"{db}/{schema}"


def _raw_sqlite(connection: Connection, sql: str) -> list[Any]:
    """Run a statement on the driver connection, outside any transaction (pragmas need that)."""
    raw: Any = connection.connection.driver_connection
    return list(raw.execute(sql).fetchall())


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to head; return ``(revision before, revision after)``.

    A no-op (no DDL, one short transaction) when the database is already at head.  On SQLite,
    foreign key enforcement is switched off while migrations run -- batch mode rebuilds tables by
    copy-and-rename, which would otherwise trip the constraints -- and checked afterwards.
    """
    sqlite = engine.dialect.name == "sqlite"
    head = head_revision()
    with engine.connect() as conn:
        if sqlite:
            _raw_sqlite(conn, "PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if not sqlite:
                    key = pg_lock_key(f"crm-bridge:{pg_scope(conn)}:migrations")
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
                before = current_revision(conn)
                if before is not None:
                    try:
                        _script().get_revision(before)
                    except CommandError as exc:
                        raise StoreSchemaError(
                            f"database schema is at revision {before!r}, which this crm-bridge "
                            f"does not know (its newest is {head!r}); upgrade crm-bridge"
                        ) from exc
                if before != head:
                    command.upgrade(alembic_config(conn), "head")
                after = current_revision(conn)
            if sqlite and before != head:
                problems = _raw_sqlite(conn, "PRAGMA foreign_key_check")
                if problems:  # pragma: no cover - would be a broken migration
                    raise StoreSchemaError(f"foreign key violations after migration: {problems}")
        finally:
            if sqlite:
                _raw_sqlite(conn, "PRAGMA foreign_keys=ON")
    if after is None:  # pragma: no cover
        raise StoreSchemaError("migration finished without a revision")
    return before, after
