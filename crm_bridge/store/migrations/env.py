"""Alembic environment for the crm-bridge state store.

Online mode only runs on a connection handed over by :mod:`crm_bridge.store.migrate` (via
``config.attributes["connection"]``): the store owns connection setup (SQLite pragmas, the
PostgreSQL ``search_path`` from the URL) and the surrounding transaction, so migrations land in
exactly the database and schema the store will use.  Offline mode (``--sql``) is supported for
DBAs who want to review the DDL; it needs ``sqlalchemy.url`` set on the config.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from crm_bridge.store.schema import metadata

config = context.config


def run_offline() -> None:
    """Emit the migration SQL instead of executing it."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    """Run migrations on the caller's connection, inside the caller's transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    conn = config.attributes.get("connection")
    if not isinstance(conn, Connection):
        raise RuntimeError(
            "crm-bridge migrations run through crm_bridge.store (Store.open or "
            "`python -m crm_bridge.store`); pass a Connection in config.attributes['connection']"
        )
    run_online(conn)
