"""One ``crm-bridge worker`` process: pair cycles from the queue, scheduling, stalled-job recovery.

Every worker does three things, so any one of them can die without the others noticing more
than a delay:

* **runs jobs**: procrastinate's worker loop fetches ``sync_pair`` jobs (one at a time) and
  runs the pair's :meth:`SyncRunner.run_cycle` under the pair's store writer lock -- the queue's
  ``lock`` already keeps two jobs of a pair apart, the store lock also keeps out a manual
  ``crm-bridge sync``, a daemon, or a worker with a different queue;
* **schedules**: each pass it queues the next cycle of every pair that has no job waiting or
  running, at the pair's last run start plus ``daemon.interval_seconds``.  Every worker does
  it, and the ``queueing_lock`` turns the duplicates into no-ops, so scheduling survives any
  worker.  Why not procrastinate's periodic tasks: those are cron-like (fixed wall-clock
  ticks), while a pair's cycle should start an interval after the previous one did, however
  long that one took, and a pair that is still running must not pile up cycles;
* **recovers**: a job whose worker stopped sending heartbeats for ``stalled_after`` seconds
  (``kill -9``, a lost host) is put back in the queue at once, and another worker runs it; the
  cycle is crash-safe (pending links, cursors after outcomes), so the re-run loses and doubles
  nothing.

A worker also keeps a row in the store's ``workers`` table (heartbeat, the pair it runs now,
cycles and failures) for ``crm-bridge status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from procrastinate import exceptions as pq_exceptions
from sqlalchemy.engine import Engine

from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import get_logger
from crm_bridge.session import Session
from crm_bridge.store.locking import pair_lock_name
from crm_bridge.store.schema import workers as workers_table
from crm_bridge.sync.runner import CycleReport
from crm_bridge.workers.queue import (
    QUEUE,
    SYNC_TASK,
    defer_pair,
    ensure_schema,
    make_app,
    pair_jobs,
    pair_queue,
    retry_strategy,
)

__all__ = ["PairWorker", "WorkerOptions", "WorkerRegistry", "default_worker_name"]

_log = get_logger("crm_bridge.worker")


def default_worker_name() -> str:
    """``<host>:<pid>``: unique among live workers, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker runs (the CLI's options)."""

    name: str
    pairs: tuple[str, ...]
    interval: float
    heartbeat: float = 10.0
    stalled_after: float = 30.0
    tick: float = 1.0
    lock_wait: float = 30.0
    retry_attempts: int = 3
    retry_base: float = 1.0
    poll: float = 1.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WorkerRegistry:
    """A worker's row in the store's ``workers`` table."""

    def __init__(self, engine: Engine, name: str, now: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self.name = name
        self.now = now

    def register(self) -> None:
        """(Re)start the row: a restarted worker of the same name takes its row over."""
        now = self.now()
        values: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
            "pair": None,
            "pair_since": None,
            "cycles": 0,
            "failures": 0,
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                workers_table.update().where(workers_table.c.name == self.name).values(**values)
            ).rowcount
            if not updated:
                conn.execute(workers_table.insert().values(name=self.name, **values))

    def _update(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                workers_table.update()
                .where(workers_table.c.name == self.name)
                .values(heartbeat_at=self.now(), **values)
            )

    def heartbeat(self) -> None:
        """Still alive."""
        self._update()

    def running(self, pair: str) -> None:
        """A cycle of ``pair`` started here."""
        self._update(pair=pair, pair_since=self.now())

    def finished(self, ok: bool) -> None:
        """The cycle ended (``ok``: it succeeded)."""
        changes: dict[str, Any] = {"pair": None, "pair_since": None}
        changes["cycles" if ok else "failures"] = (
            workers_table.c.cycles + 1 if ok else workers_table.c.failures + 1
        )
        self._update(**changes)

    def stopped(self) -> None:
        """The worker shut down cleanly."""
        self._update(stopped_at=self.now(), pair=None, pair_since=None)


JobCallback = Callable[[str, str, CycleReport | None, CrmBridgeError | None], None]
"""``(worker name, pair, report, error)`` after each job: the CLI prints it."""


class PairWorker:
    """Runs pair jobs, schedules cycles and recovers stalled jobs until :meth:`stop`."""

    def __init__(
        self, session: Session, options: WorkerOptions, *, on_job: JobCallback | None = None
    ) -> None:
        if session.store.backend != "postgresql":
            raise ValueError("PairWorker needs a PostgreSQL store")
        self.session = session
        self.options = options
        self.on_job = on_job
        self.engine = session.store.engine
        self.registry = WorkerRegistry(self.engine, options.name)
        self.app = make_app(session.config.settings.store.url)
        self.app.task(
            name=SYNC_TASK,
            queue=QUEUE,
            retry=retry_strategy(options.retry_attempts, options.retry_base),
        )(self.sync_pair)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker_task: asyncio.Task[None] | None = None

    # -- the job ---------------------------------------------------------------------------------

    def sync_pair(self, pair: str) -> str:
        """One cycle of ``pair`` under its writer lock (the procrastinate task, run in a thread)."""
        if pair not in self.options.pairs:
            raise CrmBridgeError(f"worker {self.options.name} does not serve pair {pair!r}")
        runner = self.session.runner(pair)
        store = self.session.store
        try:
            with store.writer_lock(pair_lock_name(pair), wait=self.options.lock_wait):
                self.registry.running(pair)
                _log.info("worker.job.start", worker=self.options.name, pair=pair)
                try:
                    report = runner.run_cycle()
                except CrmBridgeError:
                    self.registry.finished(ok=False)
                    raise
                self.registry.finished(ok=True)
        except CrmBridgeError as exc:
            _log.error("worker.job.failed", worker=self.options.name, pair=pair, error=str(exc))
            if self.on_job:
                self.on_job(self.options.name, pair, None, exc)
            raise
        _log.info("worker.job.end", worker=self.options.name, pair=pair, counts=report.counts)
        if self.on_job:
            self.on_job(self.options.name, pair, report, None)
        return pair

    # -- scheduling and recovery -----------------------------------------------------------------

    def next_due(self, pair: str) -> datetime | None:
        """When the next cycle of ``pair`` should start (``None``: now)."""
        with self.session.store.transaction(readonly=True) as tx:
            runs = tx.last_runs(pair, limit=1)
        if not runs:
            return None
        due = runs[0].started_at + timedelta(seconds=self.options.interval)
        return due if due > _utcnow() else None

    async def schedule_once(self) -> list[str]:
        """Queue a cycle for each pair with no job waiting or running; the pairs queued."""
        jobs = await asyncio.to_thread(pair_jobs, self.engine)
        queued = []
        for pair in self.options.pairs:
            if jobs.get(pair):
                continue
            due = await asyncio.to_thread(self.next_due, pair)
            if await defer_pair(self.app, pair, at=due) is not None:
                queued.append(pair)
        return queued

    async def recover_stalled(self) -> list[int]:
        """Put the jobs of workers without a heartbeat back in the queue; their ids."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(
            task_name=SYNC_TASK, seconds_since_heartbeat=self.options.stalled_after
        )
        recovered = []
        for job in stalled:
            assert job.id is not None
            try:
                await manager.retry_job(job)
            except pq_exceptions.ProcrastinateException as exc:
                # Another worker recovered it first, or a cycle of the pair is already waiting
                # (the queueing lock): either way the pair will run; this copy is not needed.
                _log.info("worker.recover.skipped", job=job.id, pair=job.lock, error=str(exc))
                with contextlib.suppress(pq_exceptions.ProcrastinateException):
                    await manager.finish_job_by_id_async(
                        job.id, status=pq_job_status("failed"), delete_job=False
                    )
                continue
            _log.warning("worker.recover", job=job.id, pair=job.lock, worker=self.options.name)
            recovered.append(job.id)
        return recovered

    async def _housekeeping(self) -> None:
        beat_due = 0.0
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                if loop.time() >= beat_due:
                    await asyncio.to_thread(self.registry.heartbeat)
                    beat_due = loop.time() + self.options.heartbeat
                await self.recover_stalled()
                await self.schedule_once()
            except Exception as exc:  # the database may be briefly away: keep trying
                _log.error("worker.housekeeping.failed", worker=self.options.name, error=str(exc))
            await asyncio.to_thread(self._stop.wait, self.options.tick)

    # -- the process -----------------------------------------------------------------------------

    async def run_async(self) -> None:
        """Run until :meth:`stop`; the job in flight finishes its batch first."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_schema, self.engine)
        await asyncio.to_thread(self.registry.register)
        _log.info("worker.start", worker=self.options.name, pairs=list(self.options.pairs))
        async with self.app.open_async():
            self._worker_task = asyncio.create_task(
                self.app.run_worker_async(
                    name=self.options.name,
                    queues=[pair_queue(p) for p in self.options.pairs],
                    concurrency=1,
                    wait=True,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.options.heartbeat,
                    stalled_worker_timeout=self.options.stalled_after,
                    fetch_job_polling_interval=self.options.poll,
                    abort_job_polling_interval=max(self.options.poll, 5.0),
                    listen_notify=True,
                    delete_jobs="successful",
                )
            )
            housekeeping = asyncio.create_task(self._housekeeping())
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker_task
            finally:
                self._stop.set()
                await housekeeping
        await asyncio.to_thread(self.registry.stopped)
        _log.info("worker.stop", worker=self.options.name)

    def run(self) -> None:
        """:meth:`run_async` on a fresh event loop."""
        asyncio.run(self.run_async())

    def stop(self) -> None:
        """Finish the batch in flight and stop (safe from a signal handler or another thread)."""
        self._stop.set()
        for pair in self.options.pairs:
            self.session.runner(pair).request_stop()
        loop, task = self._loop, self._worker_task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)


def pq_job_status(name: str) -> Any:
    """Procrastinate's job status enum member called ``name``."""
    from procrastinate.jobs import Status

    return Status(name)


def live_workers(engine: Engine, *, stale_after: float) -> list[dict[str, Any]]:
    """Rows of the ``workers`` table with an ``alive`` flag (a heartbeat in ``stale_after`` s)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(workers_table).order_by(workers_table.c.name)).mappings()
        found = [dict(r) for r in rows]
    now = _utcnow()
    for row in found:
        beat = row["heartbeat_at"]
        row["alive"] = row["stopped_at"] is None and (now - beat).total_seconds() <= stale_after
    return found


def serving(pairs: Iterable[str]) -> tuple[str, ...]:
    """The pairs a worker serves, sorted (every worker of a fleet should serve the same set)."""
    return tuple(sorted(pairs))
