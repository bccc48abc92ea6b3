"""The store-wide feature jobs (SLA clock, reason capture) as queue jobs: once per interval.

Why jobs like the pairs' and not a loop in one worker: any worker may die, so the feature jobs
must be scheduled by every worker and run by whichever is free, exactly as pair cycles are.
Three things make "once per interval across the fleet" hold:

* every scheduling worker defers the next run of a job at its last start plus
  ``daemon.interval_seconds`` (:class:`FeatureRuns`, the ``feature_runs`` table every worker
  reads), and ``queueing_lock=feature:<name>`` keeps at most one waiting, so the other workers'
  deferrals are no-ops;
* ``lock=crm-bridge-writer`` runs one feature job at a time fleet-wide (the SLA engine and the
  reason capture both write store-wide state);
* the job holds the store lock :data:`~crm_bridge.sync.daemon.WRITER_LOCK` while it runs, the
  one the daemon and ``crm-bridge sla run`` take, as defence in depth against everything that
  does not go through the queue;
* under that lock the job looks at the last good run once more and skips itself when one started
  less than an interval ago.  Scheduling is check-then-defer: a worker that saw no job waiting
  can defer its copy just after another worker's copy left ``todo`` for ``doing`` (the
  queueing lock holds only while a job waits), and that late copy, due at the same instant,
  would run right after the first.  Only the job itself sees the truth, under the lock.

The jobs go on a queue of their own, :data:`FEATURES_QUEUE`: only workers that run feature jobs
listen to it (by default those serving every pair, see docs/operations.md), and only they
schedule it, so a fleet of ``--pair`` workers never piles up jobs that nobody takes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import procrastinate
import sqlalchemy as sa
from procrastinate import exceptions as pq_exceptions
from sqlalchemy.engine import Engine

from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import get_logger
from crm_bridge.store import Store
from crm_bridge.store.schema import feature_runs
from crm_bridge.sync.daemon import WRITER_LOCK

__all__ = [
    "FEATURES_QUEUE",
    "FEATURE_TASK",
    "FeatureCallback",
    "FeatureJobs",
    "FeatureRuns",
    "defer_feature",
    "feature_jobs_waiting",
]

FEATURE_TASK = "crm_bridge.feature_job"
"""The task name in ``procrastinate_jobs.task_name``."""
FEATURES_QUEUE = "crm_bridge.features"
"""A dot, not the colon of pair queues, so no pair's queue can be called the same."""
KEEP_RUNS = 200
"""Runs kept per feature job in ``feature_runs`` (a few hours at the default interval)."""

_log = get_logger("crm_bridge.worker")

FeatureCallback = Callable[[str, str, str | None, CrmBridgeError | None], None]
"""``(worker name, job name, summary, error)`` after each feature job: the CLI prints it."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FeatureRuns:
    """The ``feature_runs`` table: one row per run of a feature job, for the schedule and status."""

    def __init__(self, engine: Engine, now: Callable[[], dt.datetime] = _utcnow) -> None:
        self.engine = engine
        self.now = now

    def start(self, name: str, worker: str) -> int:
        """A run of ``name`` starts on ``worker``; its id.  Old runs beyond :data:`KEEP_RUNS` go."""
        with self.engine.begin() as conn:
            run_id = conn.execute(
                feature_runs.insert()
                .values(name=name, worker=worker, started_at=self.now(), status="running")
                .returning(feature_runs.c.id)
            ).scalar_one()
            keep = (
                sa.select(feature_runs.c.id)
                .where(feature_runs.c.name == name)
                .order_by(feature_runs.c.id.desc())
                .limit(KEEP_RUNS)
            )
            conn.execute(
                feature_runs.delete().where(
                    feature_runs.c.name == name, feature_runs.c.id.not_in(keep.scalar_subquery())
                )
            )
        return int(run_id)

    def finish(self, run_id: int, *, summary: str | None = None, error: str | None = None) -> None:
        """The run ended: ``ok`` with its summary, or ``failed`` with the error."""
        with self.engine.begin() as conn:
            conn.execute(
                feature_runs.update()
                .where(feature_runs.c.id == run_id)
                .values(
                    finished_at=self.now(),
                    status="failed" if error is not None else "ok",
                    summary=summary,
                    error=error,
                )
            )

    def last_started(self, name: str, *, ok_only: bool = False) -> dt.datetime | None:
        """When the latest run of ``name`` started (the anchor of the next), if any did.

        ``ok_only``: the latest run that succeeded (a failed one leaves its retry free to run).
        """
        query = sa.select(sa.func.max(feature_runs.c.started_at)).where(feature_runs.c.name == name)
        if ok_only:
            query = query.where(feature_runs.c.status == "ok")
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return found if isinstance(found, dt.datetime) else None

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every kept run of ``name``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(feature_runs)
                .where(feature_runs.c.name == name)
                .order_by(feature_runs.c.started_at)
            ).mappings()
            return [dict(r) for r in rows]

    def latest(self) -> list[dict[str, Any]]:
        """The latest run of each feature job, by name (``crm-bridge status``)."""
        newest = (
            sa.select(sa.func.max(feature_runs.c.id))
            .group_by(feature_runs.c.name)
            .scalar_subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(feature_runs)
                .where(feature_runs.c.id.in_(newest))
                .order_by(feature_runs.c.name)
            ).mappings()
            return [dict(r) for r in rows]


def feature_jobs_waiting(engine: Engine) -> set[str]:
    """Names of the feature jobs with a job waiting or running."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT args->>'name' FROM procrastinate_jobs"
                " WHERE task_name = :t AND status IN ('todo', 'doing')"
            ),
            {"t": FEATURE_TASK},
        ).scalars()
        return {str(name) for name in rows}


async def defer_feature(
    app: procrastinate.App, name: str, *, at: dt.datetime | None = None
) -> int | None:
    """Queue one run of feature job ``name`` (at ``at``); ``None`` if one is already waiting."""
    try:
        return await app.configure_task(
            FEATURE_TASK,
            lock=WRITER_LOCK,
            queueing_lock=f"feature:{name}",
            queue=FEATURES_QUEUE,
            schedule_at=at,
        ).defer_async(name=name)
    except pq_exceptions.AlreadyEnqueued:
        return None


class FeatureJobs:
    """Runs and schedules the configured feature jobs of one worker."""

    def __init__(
        self,
        store: Store,
        jobs: Mapping[str, Callable[[], str]],
        *,
        worker: str,
        interval: float,
        lock_wait: float,
        on_feature: FeatureCallback | None = None,
    ) -> None:
        self.store = store
        self.jobs = dict(jobs)
        self.worker = worker
        self.interval = interval
        self.lock_wait = lock_wait
        self.on_feature = on_feature
        self.runs = FeatureRuns(store.engine)

    def run(self, name: str) -> str:
        """One run of ``name`` under the store-wide lock (the procrastinate task, in a thread)."""
        job = self.jobs.get(name)
        if job is None:
            raise CrmBridgeError(f"worker {self.worker} has no feature job {name!r} configured")
        try:
            with self.store.writer_lock(WRITER_LOCK, wait=self.lock_wait):
                last = self.runs.last_started(name, ok_only=True)
                now = self.runs.now()
                if last is not None and now - last < dt.timedelta(seconds=self.interval):
                    ago = (now - last).total_seconds()
                    _log.info("worker.feature.skip", worker=self.worker, job=name, ago=ago)
                    return f"skipped: the last run started {ago:.1f} s ago"
                run_id = self.runs.start(name, self.worker)
                _log.info("worker.feature.start", worker=self.worker, job=name)
                try:
                    summary = job()
                except CrmBridgeError as exc:
                    self.runs.finish(run_id, error=str(exc))
                    raise
                self.runs.finish(run_id, summary=summary)
        except CrmBridgeError as exc:
            _log.error("worker.feature.failed", worker=self.worker, job=name, error=str(exc))
            if self.on_feature:
                self.on_feature(self.worker, name, None, exc)
            raise
        _log.info("worker.feature.end", worker=self.worker, job=name, summary=summary)
        if self.on_feature:
            self.on_feature(self.worker, name, summary, None)
        return summary

    def next_due(self, name: str) -> dt.datetime | None:
        """When the next run of ``name`` should start (``None``: now)."""
        last = self.runs.last_started(name)
        if last is None:
            return None
        due = last + dt.timedelta(seconds=self.interval)
        return due if due > _utcnow() else None

    async def schedule_once(self, app: procrastinate.App) -> list[str]:
        """Queue the next run of each job with none waiting or running; the jobs queued."""
        if not self.jobs:
            return []
        waiting = await asyncio.to_thread(feature_jobs_waiting, self.store.engine)
        queued = []
        for name in self.jobs:
            if name in waiting:
                continue
            due = await asyncio.to_thread(self.next_due, name)
            if await defer_feature(app, name, at=due) is not None:
                queued.append(name)
        return queued
