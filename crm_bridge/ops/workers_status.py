"""What ``crm-bridge status`` says about the workers: who is alive, which pair each one runs.

Why in the status command rather than only in metrics: when pairs are spread over several
``crm-bridge worker`` processes, "which worker runs what, and is anything stuck" is the first
question an admin asks, and the answer is in the store every worker writes to.  Metrics stay per
process (each worker serves its own ``/metrics``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from rich.table import Table

from crm_bridge.store import Store

__all__ = ["STALE_AFTER_SECONDS", "feature_runs_table", "workers_table"]

STALE_AFTER_SECONDS = 60.0
"""A worker without a heartbeat for this long is shown as not alive (twice the default stall)."""


def _listening(store: Store) -> dict[str, list[str]]:
    """Per worker, the pairs its push listener holds (``*``: every side has a channel)."""
    from crm_bridge.store.schema import push_listeners

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(push_listeners).order_by(push_listeners.c.pair)).mappings()
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(str(row["worker"]), []).append(
                f"{row['pair']}{'*' if row['complete'] else ''}"
            )
    return found


def _rows(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from crm_bridge.workers.queue import pair_jobs
    from crm_bridge.workers.worker import live_workers

    found = live_workers(store.engine, stale_after=STALE_AFTER_SECONDS)
    with store.engine.connect() as conn:
        queue = conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar()
    return found, (pair_jobs(store.engine) if queue is not None else {})


def workers_table(store: Store, now: datetime | None = None) -> Table | None:
    """The workers and queued jobs of a PostgreSQL store, or ``None`` where there are none."""
    if store.backend != "postgresql":
        return None
    found, jobs = _rows(store)
    if not found and not jobs:
        return None
    when = now or datetime.now(UTC)
    listening = _listening(store)
    table = Table(title="workers")
    for col in ("worker", "alive", "running", "since", "cycles", "failures", "heartbeat", "push"):
        table.add_column(col, overflow="fold")
    for row in found:
        since = row["pair_since"]
        table.add_row(
            str(row["name"]),
            "yes" if row["alive"] else "no",
            str(row["pair"] or ""),
            since.isoformat(timespec="seconds") if since else "",
            str(row["cycles"]),
            str(row["failures"]),
            f"{(when - row['heartbeat_at']).total_seconds():.0f}s ago",
            " ".join(listening.get(str(row["name"]), [])),
        )
    waiting = [
        f"{pair} at {entry['todo']['scheduled_at']:%H:%M:%S}"
        if entry.get("todo", {}).get("scheduled_at")
        else pair
        for pair, entry in sorted(jobs.items())
        if "todo" in entry
    ]
    if waiting:
        table.caption = "queued: " + ", ".join(waiting)
    return table


def feature_runs_table(store: Store) -> Table | None:
    """The latest run of each feature job run by workers, or ``None`` where none ran."""
    if store.backend != "postgresql":
        return None
    from crm_bridge.workers.features import FeatureRuns

    latest = FeatureRuns(store.engine).latest()
    if not latest:
        return None
    table = Table(title="feature jobs (workers)")
    for col in ("job", "worker", "started", "status", "summary"):
        table.add_column(col, overflow="fold")
    for row in latest:
        table.add_row(
            str(row["name"]),
            str(row["worker"]),
            row["started_at"].isoformat(timespec="seconds"),
            str(row["status"]),
            str(row["error"] or row["summary"] or ""),
        )
    return table
