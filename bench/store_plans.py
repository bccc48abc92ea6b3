"""Time the store's hot link lookups before and after migration 0008, at e.g. 100k links.

Why: issue 17's profiling found the read-back of new link ids in ``insert_links`` at 80-135 ms
per 100-record batch at 98k links on SQLite (0.14-0.42 ms with the right index) and
``links_by_identity`` at 108 ms instead of 5.9 ms per 500 identities.  This builds one store at
revision 0007 (the old indexes), fills it, times the *old* statement forms, upgrades it to head
(the new indexes) and times the store's *current* statement forms on the same rows -- without statistics,
as a fresh store has them, and again after ``ANALYZE``.  It prints figures only; the pass/fail
guard is ``tests/store/test_query_plans.py``.

    python bench/store_plans.py                     # SQLite, 100k links
    python bench/store_plans.py --links 20000 --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from crm_bridge.store import Store, migrate
from crm_bridge.store.schema import links

PAIR, OBJ = "sf-hs", "leads"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _fill(engine: sa.Engine, n: int) -> None:
    """``n`` links: 95% active, 5% deleted, one in 100 a pending create."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "pair": PAIR,
                "object": OBJ,
                "crm_id": f"003{i:09d}",
                "map_id": None if i % 100 == 7 else f"{i}",
                "identity": f"p{i}@example.com",
                "status": "deleted" if i % 20 == 0 else "active",
                "crm_state": "synced",
                "map_state": "synced",
                "created_at": T0,
                "updated_at": T0,
            }
        )
    with engine.begin() as conn:
        for at in range(0, n, 5000):
            conn.execute(sa.insert(links), rows[at : at + 5000])


def _ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _old_forms(conn: sa.Connection, n: int) -> dict[str, Callable[[], object]]:
    """The statements of crm-bridge before 0008, as they were sent."""
    ids = [f"003{i:09d}" for i in range(n // 2, n // 2 + 100)]
    idents = [f"p{i}@example.com" for i in range(n // 3, n // 3 + 500)]
    where = (links.c.pair == PAIR, links.c.object == OBJ)
    half = sa.or_(links.c.crm_id.is_(None), links.c.map_id.is_(None))
    return {
        "insert_links read-back (100 ids)": lambda: conn.execute(
            sa.select(links.c.id, links.c.crm_id).where(
                *where, links.c.status == "active", links.c.crm_id.in_(ids)
            )
        ).all(),
        "links_by_identity (500)": lambda: conn.execute(
            sa.select(links).where(*where, links.c.status == "active", links.c.identity.in_(idents))
        ).all(),
        "links_by_ids (500)": lambda: conn.execute(
            sa.select(links).where(*where, links.c.crm_id.in_(ids * 5))
        ).all(),
        "pending_links": lambda: conn.execute(
            sa.select(links).where(*where, links.c.status == "active", half).order_by(links.c.id)
        ).all(),
    }


def _new_forms(conn: sa.Connection, n: int) -> dict[str, Callable[[], object]]:
    """Today's statements (what ``StoreTx._lookup`` and ``pending_links`` send), run the same way.

    Both sides run raw statements on one connection, so the figures compare plans, not the cost
    of building :class:`Link` objects.
    """
    ids = [f"003{i:09d}" for i in range(n // 2, n // 2 + 100)]
    idents = [f"p{i}@example.com" for i in range(n // 3, n // 3 + 500)]
    where = (links.c.pair == PAIR, links.c.object == OBJ)
    half = sa.or_(links.c.crm_id.is_(None), links.c.map_id.is_(None))
    return {
        "insert_links read-back (100 ids)": lambda: conn.execute(
            sa.select(links.c.id, links.c.crm_id, links.c.status).where(
                *where, links.c.crm_id.in_(ids)
            )
        ).all(),
        "links_by_identity (500)": lambda: conn.execute(
            sa.select(links).where(*where, links.c.identity.in_(idents))
        ).all(),
        "links_by_ids (500)": lambda: conn.execute(
            sa.select(links).where(*where, links.c.crm_id.in_(ids * 5))
        ).all(),
        "pending_links": lambda: conn.execute(
            sa.select(links).where(*where, links.c.status == "active", half).order_by(links.c.id)
        ).all(),
    }


def _analyze(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ANALYZE")


def run(url: str, n: int, repeat: int) -> None:
    """Fill at 0007, time the old forms, upgrade, time the new calls; with and without stats."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0007")
        if engine.dialect.name == "postgresql":  # keep "no statistics" true while we measure
            conn.exec_driver_sql("ALTER TABLE links SET (autovacuum_enabled = false)")
    t = time.perf_counter()
    _fill(engine, n)
    print(f"\n{engine.dialect.name}: {n} links filled in {time.perf_counter() - t:.1f} s")
    figures: dict[str, dict[str, float]] = {}
    for label in ("no stats", "analyzed"):
        if label == "analyzed":
            _analyze(engine)
        with engine.connect() as conn:
            for name, fn in _old_forms(conn, n).items():
                figures.setdefault(name, {})[f"before, {label}"] = _ms(fn, repeat)
    # Back to "no statistics" for the new indexes: drop what ANALYZE gathered on links.
    with engine.begin() as conn:
        migrate_up = migrate.alembic_config(conn)
        command.upgrade(migrate_up, "head")
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DELETE FROM sqlite_stat1")
    engine.dispose()
    if engine.dialect.name == "postgresql":
        print("  (PostgreSQL cannot forget column statistics: 'after, no stats' is after ANALYZE)")
    for label in ("no stats", "analyzed"):
        store = Store.open(url)  # migrated already: this only proves the store opens at head
        if label == "analyzed":
            _analyze(store.engine)
        with store.engine.connect() as conn:
            for name, fn in _new_forms(conn, n).items():
                figures[name][f"after, {label}"] = _ms(fn, repeat)
        store.engine.dispose()  # not close(): PRAGMA optimize would gather statistics
    cols = ["before, no stats", "after, no stats", "before, analyzed", "after, analyzed"]
    print(f"  {'median ms':34}" + "".join(f"{c:>18}" for c in cols))
    for name, row in figures.items():
        print(f"  {name:34}" + "".join(f"{row[c]:18.2f}" for c in cols))


def main() -> None:
    """Parse arguments and run SQLite, then PostgreSQL if a server URL is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--pg", help="libpq URL of a database to create a scratch schema in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.links, args.repeat)
    if args.pg:
        schema = f"crmb_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = make_url(args.pg).set(drivername="postgresql+psycopg")
            url = url.update_query_dict({"options": f"-csearch_path={schema}"})
            run(url.render_as_string(hide_password=False), args.links, args.repeat)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
