"""Worker tests run on the machine's PostgreSQL, each in schemas of its own (dropped after)."""

from tests.store.conftest import pg_admin_url, pg_schema

__all__ = ["pg_admin_url", "pg_schema"]
