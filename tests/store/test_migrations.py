"""Schema lifecycle: create from empty, no-op re-open, upgrade an old schema, refuse a newer one."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from crm_bridge.store import DecisionIn, Store, StoreSchemaError, migrate
from crm_bridge.store.schema import metadata

from .conftest import T0

TABLES = {"links", "cursors", "dead_letters", "runs", "decisions", "audit_log", "alembic_version"}


def test_open_creates_schema_at_head(store: Store) -> None:
    assert store.migrated_from is None
    assert store.schema_revision() == migrate.head_revision()
    assert set(sa.inspect(store.engine).get_table_names()) >= TABLES


def test_reopen_is_a_noop(
    open_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_store()
    with first.transaction() as tx:
        tx.set_cursor("p", "crm", "contact", "c-1")
    first.close()

    def no_upgrade(*_a: object, **_k: object) -> None:
        raise AssertionError("re-opening an up-to-date store must not run migrations")

    monkeypatch.setattr("alembic.command.upgrade", no_upgrade)
    again = open_store()
    assert again.migrated_from == migrate.head_revision()
    with again.transaction() as tx:
        assert tx.get_cursor("p", "crm", "contact") == "c-1"


def test_schema_module_matches_migrations(store: Store) -> None:
    """schema.py (what the code queries) and the migrations (what creates it) must not drift."""
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'new' / 'dir' / 'state.db'}") as s:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert (tmp_path / "new" / "dir" / "state.db").exists()


def test_newer_schema_is_refused(open_store: Callable[..., Store]) -> None:
    s = open_store()
    with s.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StoreSchemaError, match="9999_future"):
        open_store()


NEXT_MIGRATION = '''
"""Test-only follow-up migration: a column on links (batch mode on SQLite) and a new table."""

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("note", sa.String(50)))
    op.create_table(
        "sla_timers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("link_id", sa.Integer, sa.ForeignKey("links.id", ondelete="CASCADE")),
    )


def downgrade() -> None:
    op.drop_table("sla_timers")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("note")
'''


@pytest.fixture
def extra_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the store at a copy of the migrations plus one new revision."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    (copy / "versions" / "0099_test.py").write_text(NEXT_MIGRATION.replace("{head}", head))
    migrate._script.cache_clear()
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    yield
    migrate._script.cache_clear()


def test_old_schema_is_upgraded_keeping_data(
    open_store: Callable[..., Store], request: pytest.FixtureRequest
) -> None:
    old = open_store()
    with old.transaction() as tx:
        a = tx.insert_link(
            "p",
            "contact",
            crm_id="A",
            map_id="a",
            crm_version=None,
            map_version=None,
        )
        b = tx.insert_link(
            "p",
            "contact",
            crm_id="B",
            map_id="b",
            crm_version=None,
            map_version=None,
        )
        tx.mark_link(a.id, "merged", merged_into=b.id)
        run_id = tx.start_run("p", T0)
        tx.log_decision(_decision(run_id, b.id))
    old.close()
    previous = migrate.head_revision()

    request.getfixturevalue("extra_migration")
    new = open_store()
    assert new.migrated_from == previous
    assert new.schema_revision() == "0099"
    columns = {c["name"] for c in sa.inspect(new.engine).get_columns("links")}
    assert "note" in columns
    with new.transaction() as tx:
        merged = tx.link(a.id)
        assert merged is not None and merged.merged_into == b.id  # FK data survived the rebuild
        assert tx.decisions(link_id=b.id)[0].run_id == run_id
    if new.backend == "sqlite":
        with new.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _decision(run_id: int, link_id: int) -> DecisionIn:
    return DecisionIn(
        pair="p",
        obj="contact",
        field="email",
        crm_value="x",
        map_value="y",
        rule="newest",
        winner="crm",
        at=T0,
        run_id=run_id,
        link_id=link_id,
    )


@pytest.mark.postgres
def test_missing_pg_schema_is_explained(pg_admin_url: str) -> None:
    url = pg_admin_url.replace("postgresql://", "postgresql+psycopg://")
    with pytest.raises(StoreSchemaError, match="search_path"):
        Store.open(url + "?options=-csearch_path%3Dcrmb_does_not_exist")


def test_revision_helper_writes_next_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented way to add a migration produces a file the store then applies."""
    from crm_bridge.store.__main__ import main, revision

    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    migrate._script.cache_clear()
    try:
        previous = migrate.head_revision()
        path = revision("add sla timers", autogenerate=True)
        assert path.parent == copy / "versions"
        assert path.name == f"{int(previous) + 1:04d}_add_sla_timers.py"
        text = path.read_text()
        assert f"down_revision: str | None = {previous!r}" in text
        assert migrate.head_revision() == f"{int(previous) + 1:04d}"
        with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as s:
            assert s.schema_revision() == migrate.head_revision()
        assert main(["revision", "-m", "second"]) == 0
        assert migrate.head_revision() == f"{int(previous) + 2:04d}"
    finally:
        migrate._script.cache_clear()


@pytest.mark.postgres
def test_pg_connections_force_custom_plans(pg_schema: Callable[[], str]) -> None:
    """Generic plans make 500-id IN lookups ~20x slower on fresh tables; see Store._pg_engine."""
    with Store.open(pg_schema()) as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
