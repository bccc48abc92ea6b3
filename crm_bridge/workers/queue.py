"""The job queue: a procrastinate App in the store's PostgreSQL database, and the pair job.

Why procrastinate (docs/dependencies.md): jobs are rows in the database the store already
uses, ``lock=<pair>`` runs one job per pair at a time, ``queueing_lock=<pair>`` keeps at most
one more waiting, retries are persisted with their backoff, and workers send heartbeats so the
job of a worker that died can be handed to another.

Why one job per *pair* and not per (pair, object): :meth:`SyncRunner.run_cycle` is the unit the
whole engine is built and tested around -- objects run in dependency order (accounts before the
people that reference them, people before deals), one run row per pair records the cycle, and
the owner and reference caches live on the pair's runner.  Splitting a cycle into object jobs
would need a second scheduler for that order and would let two workers write one pair's
references at once; pairs are the natural unit of parallelism and of exclusivity.

The procrastinate tables live next to the store's, in the same schema (the store URL's
``search_path``), so one backup holds the state and the queue; :func:`ensure_schema` creates
them once, under an advisory lock, whichever worker starts first.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any, cast

import procrastinate
import sqlalchemy as sa
from procrastinate import exceptions as pq_exceptions
from sqlalchemy.engine import Engine, make_url

from crm_bridge.store.migrate import pg_lock_key, pg_scope

__all__ = [
    "SYNC_TASK",
    "conninfo_for",
    "defer_hinted",
    "defer_pair",
    "ensure_schema",
    "make_app",
    "pair_jobs",
    "pair_queue",
    "retry_strategy",
]

SYNC_TASK = "crm_bridge.sync_pair"
"""The task name in ``procrastinate_jobs.task_name``."""
QUEUE = "crm_bridge"
HINT_PRIORITY = 10
"""Push jobs run before the scheduled cycles waiting on a worker (higher runs first)."""


def pair_queue(pair: str) -> str:
    """The queue of one pair's jobs: ``crm_bridge:<pair>``.

    Why a queue per pair: a worker started with ``--pair`` listens only to its pairs' queues,
    so it is never handed a job it cannot run.
    """
    return f"{QUEUE}:{pair}"


def conninfo_for(store_url: str) -> str:
    """The libpq URL of a ``postgresql+psycopg://`` store URL (``options`` and all)."""
    url = make_url(store_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("workers need a PostgreSQL store")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_schema(engine: Engine) -> bool:
    """Create procrastinate's tables in the store's schema unless they exist; whether it did.

    Idempotent and safe when several workers start at once: the check and the creation run in
    one transaction under an advisory lock scoped to the store's database and schema.
    """
    schema_sql = (resources.files("procrastinate.sql") / "schema.sql").read_text(encoding="utf-8")
    with engine.connect() as conn:
        key = pg_lock_key(f"crm-bridge:{pg_scope(conn)}:procrastinate-schema")
        conn.rollback()  # end the transaction pg_scope's query began
        with conn.begin():
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            exists = conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar()
            if exists is not None:
                return False
            raw: Any = conn.connection.driver_connection
            raw.execute(schema_sql)  # no parameters: the script's % signs stay as they are
        return True


def make_app(store_url: str, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate App on the store's database (not opened; tasks registered by the worker)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo_for(store_url), min_size=1, max_size=pool_size
    )
    return procrastinate.App(connector=connector)


def retry_strategy(max_attempts: int, base_seconds: float) -> procrastinate.RetryStrategy:
    """Retry a failed cycle ``max_attempts`` times, waiting ``base + 2**(attempt + 1)`` seconds.

    Only crm-bridge's own errors are retried (a vendor outage, a rate limit, the pair's writer
    lock held by a manual sync); a programming error fails the job at once.
    """
    from crm_bridge.errors import CrmBridgeError

    return procrastinate.RetryStrategy(
        max_attempts=max_attempts,
        linear_wait=0,
        wait=int(base_seconds),
        exponential_wait=2,
        retry_exceptions={CrmBridgeError},
    )


def pair_jobs(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per pair: its waiting (``todo``) and running (``doing``) scheduled jobs, for scheduling.

    Only the scheduled cycles (those with the pair's ``queueing_lock``); a push job
    (:func:`defer_hinted`) waiting beside them does not stand in for the pair's next poll.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, lock, status::text, scheduled_at, worker_id, attempts"
                " FROM procrastinate_jobs WHERE task_name = :t AND status IN ('todo', 'doing')"
                " AND queueing_lock IS NOT NULL"
            ),
            {"t": SYNC_TASK},
        ).all()
    found: dict[str, dict[str, Any]] = {}
    for job_id, lock, status, scheduled_at, worker_id, attempts in rows:
        entry = found.setdefault(str(lock), {})
        entry[str(status)] = {
            "id": job_id,
            "scheduled_at": scheduled_at,
            "worker_id": worker_id,
            "attempts": attempts,
        }
    return found


async def defer_pair(
    app: procrastinate.App, pair: str, *, at: dt.datetime | None = None, priority: int = 0
) -> int | None:
    """Queue one cycle of ``pair`` (at ``at``); ``None`` if one is already waiting.

    ``lock`` makes jobs of one pair run one after the other, ``queueing_lock`` keeps at most one
    waiting: a second deferral while one waits is dropped, which is exactly "one more cycle".
    """
    try:
        return await app.configure_task(
            SYNC_TASK,
            lock=pair,
            queueing_lock=pair,
            queue=pair_queue(pair),
            schedule_at=at,
            priority=priority,
        ).defer_async(pair=pair)
    except pq_exceptions.AlreadyEnqueued:
        return None


async def defer_hinted(
    app: procrastinate.App, pair: str, hints: dict[str, list[dict[str, Any]]] | None
) -> int:
    """Queue a push job of ``pair``: a hinted cycle, or a full one for ``hints=None``.

    The pair's ``lock`` keeps it apart from the pair's other jobs; no ``queueing_lock``, so it
    is never dropped for the scheduled cycle waiting an interval ahead, and its priority puts
    it first.  The one listener of the pair waits for each before deferring the next.
    """
    return await app.configure_task(
        SYNC_TASK, lock=pair, queue=pair_queue(pair), priority=HINT_PRIORITY
    ).defer_async(pair=pair, hints=cast(Any, hints))
