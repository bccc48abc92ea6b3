"""Developer and operator helpers for the store's migrations.

``python -m crm_bridge.store revision -m "add sla tables" [--autogenerate]``
    Write ``migrations/versions/NNNN_<slug>.py`` with the next sequential revision id.  With
    ``--autogenerate`` the body is diffed from ``schema.py`` against a scratch SQLite database at
    head -- review it: autogenerate misses renames, server defaults and CHECK constraints.
``python -m crm_bridge.store sql URL``
    Print the DDL that ``Store.open`` would run on an empty database of URL's dialect, for DBAs
    who must review or apply schema changes themselves.
``python -m crm_bridge.store upgrade URL``
    Migrate the database at URL to head (what ``Store.open`` does) and print the revisions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command

from crm_bridge.store import migrate
from crm_bridge.store.store import Store


def _next_rev_id() -> str:
    head = migrate.head_revision()
    return f"{int(head.split('_')[0]) + 1:04d}"


def revision(message: str, *, autogenerate: bool) -> Path:
    """Create the next migration file and return its path."""
    rev_id = _next_rev_id()
    if not autogenerate:
        cfg = migrate.alembic_config()
        script = command.revision(cfg, message, rev_id=rev_id)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            scratch = Store.open(f"sqlite:///{Path(tmp) / 'scratch.db'}")
            try:
                with scratch.engine.connect() as conn:
                    cfg = migrate.alembic_config(conn)
                    script = command.revision(cfg, message, rev_id=rev_id, autogenerate=True)
            finally:
                scratch.close()
    migrate._script.cache_clear()
    if script is None or isinstance(script, list):  # pragma: no cover - single head only
        raise SystemExit("alembic did not create exactly one revision")
    return Path(script.path)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m crm_bridge.store``."""
    parser = argparse.ArgumentParser(
        prog="python -m crm_bridge.store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="create the next migration file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    sql = sub.add_parser("sql", help="print the migration DDL for a dialect")
    sql.add_argument("url")
    up = sub.add_parser("upgrade", help="migrate a database to head")
    up.add_argument("url")
    args = parser.parse_args(argv)

    if args.cmd == "revision":
        print(revision(args.message, autogenerate=args.autogenerate))
    elif args.cmd == "sql":
        command.upgrade(migrate.alembic_config(url=args.url), "head", sql=True)
    else:
        with Store.open(args.url) as store:
            print(f"{store.url_for_display}: {store.migrated_from} -> {store.schema_revision()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
