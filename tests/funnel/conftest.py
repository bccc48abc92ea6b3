"""Fixtures: the store suite's parametrized stores (SQLite and PostgreSQL) and event builders."""

from __future__ import annotations

from tests.store.conftest import (  # noqa: F401  (re-exported fixtures)
    backend,
    clock,
    open_store,
    pg_admin_url,
    pg_schema,
    store,
    store_url,
)
