"""Fixtures for the state store suite: every ``store`` test runs on SQLite and on PostgreSQL.

PostgreSQL isolation: each test gets its own freshly created schema with a random name and a URL
whose ``options=-csearch_path=<schema>`` makes the store (and its migrations, and its advisory
lock keys) live entirely inside it; the schema is dropped afterwards.  Parallel runs therefore
never see each other's tables or locks.

The server is ``$CRM_BRIDGE_TEST_PG_URL`` or ``postgresql://{postgres,root}@127.0.0.1:5432/test``.
PostgreSQL tests are skipped only when nothing listens on the port; a server that answers but
refuses us is a failure, not a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from crm_bridge.store import Store, migrate

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PG_HOST, PG_PORT = "127.0.0.1", 5432


@dataclass
class FakeClock:
    """Injected time: tests move it instead of sleeping."""

    now: datetime = T0
    calls: int = field(default=0)

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def _server_listening() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A libpq URL with rights to create schemas in the test database."""
    env = os.environ.get("CRM_BRIDGE_TEST_PG_URL")
    candidates = (
        [env]
        if env
        else [f"postgresql://{user}@{PG_HOST}:{PG_PORT}/test" for user in ("postgres", "root")]
    )
    if not env and not _server_listening():
        pytest.skip(f"no PostgreSQL server answers on {PG_HOST}:{PG_PORT}")
    errors = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.OperationalError as exc:
            errors.append(f"{url}: {exc}")
    pytest.fail("PostgreSQL answers but refuses every test login:\n" + "\n".join(errors))


@pytest.fixture
def pg_schema(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory for fresh schemas (dropped at teardown); returns a store URL for each."""
    created: list[str] = []

    def make() -> str:
        name = f"crmb_test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        created.append(name)
        url = make_url(pg_admin_url).set(drivername="postgresql+psycopg")
        url = url.update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for an empty store of the parametrized backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'crm-bridge.db'}"
    make: Callable[[], str] = request.getfixturevalue("pg_schema")
    return make()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_store(store_url: str, clock: FakeClock) -> Iterator[Callable[..., Store]]:
    """Open (more) Store objects on the test's database; all are closed at teardown."""
    opened: list[Store] = []

    def _open(url: str | None = None, **kw: object) -> Store:
        kw.setdefault("clock", clock)
        s = Store.open(url or store_url, **kw)  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store()


def engine_at(url: str, revision: str) -> sa.Engine:
    """A store's database migrated only up to ``revision``, to seed rows in an old shape."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), revision)
    return engine
