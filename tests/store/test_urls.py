"""URL handling: passwords never shown; unsupported URLs refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from crm_bridge.errors import CrmBridgeError
from crm_bridge.store import Store, StoreError, display_url


@pytest.mark.postgres
def test_password_is_masked_in_display_and_repr(pg_schema: Callable[[], str]) -> None:
    url = sa.make_url(pg_schema()).set(password="hunter2-secret")  # trust auth ignores it
    s = Store.open(url.render_as_string(hide_password=False))
    try:
        assert "hunter2-secret" not in s.url_for_display
        assert "***" in s.url_for_display
        assert "hunter2-secret" not in repr(s)
        assert "hunter2-secret" not in str(s.engine.url)
    finally:
        s.close()


def test_query_string_passwords_are_masked() -> None:
    shown = display_url(
        "postgresql+psycopg://u@h/db?password=s3cret&sslpassword=k3y&sslmode=require"
    )
    assert "s3cret" not in shown and "k3y" not in shown
    assert "sslmode=require" in shown


def test_connection_error_does_not_leak_password() -> None:
    # port 1: nothing listens, so this fails fast without a server
    with pytest.raises(StoreError, match="unavailable") as err:
        Store.open("postgresql+psycopg://u:hunter2-secret@127.0.0.1:1/db?connect_timeout=2")
    assert "hunter2-secret" not in str(err.value)
    assert "u:***@127.0.0.1:1" in str(err.value)
    assert isinstance(err.value, CrmBridgeError) and err.value.exit_code == 8


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "sqlite+aiosqlite:///x.db"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)unsupported|only"):
        Store.open(url)


@pytest.mark.postgres
def test_plain_postgresql_scheme_means_psycopg3(pg_schema: Callable[[], str]) -> None:
    url = pg_schema().replace("postgresql+psycopg://", "postgresql://")
    s = Store.open(url)
    try:
        assert s.engine.dialect.driver == "psycopg"
        assert s.url_for_display.startswith("postgresql+psycopg://")
    finally:
        s.close()
