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

__all__ = ["STALE_AFTER_SECONDS", "workers_table"]

STALE_AFTER_SECONDS = 60.0
"""A worker without a heartbeat for this long is shown as not alive (twice the default stall)."""


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
    table = Table(title="workers")
    for col in ("worker", "alive", "running", "since", "cycles", "failures", "heartbeat"):
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
