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

Two more duties, each in a module of its own: the store-wide **feature jobs** (SLA clock,
reason capture; :mod:`crm_bridge.workers.features`), scheduled and run like pairs but once per
interval for the whole fleet, and, with ``daemon.push``, the **push channels**
(:mod:`crm_bridge.workers.listener`): one listener per pair across the fleet defers hinted
cycles as high-priority pair jobs, and a fully fed pair is polled only every
``daemon.safety_poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
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
from crm_bridge.store.models import Run
from crm_bridge.store.schema import workers as workers_table
from crm_bridge.sync.push import poll_every
from crm_bridge.sync.runner import CycleReport
from crm_bridge.workers.features import (
    FEATURE_TASK,
    FEATURES_QUEUE,
    FeatureCallback,
    FeatureJobs,
)
from crm_bridge.workers.hints import decode_hints
from crm_bridge.workers.listener import PushCallback, PushListener, fed_pairs
from crm_bridge.workers.queue import (
    QUEUE,
    SYNC_TASK,
    defer_hinted,
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
    push: bool = False
    """Listen to the pairs' push channels (``daemon.push``)."""
    safety_poll: float = 600.0
    """With push, seconds between full cycles of a fully fed pair."""


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
        self,
        session: Session,
        options: WorkerOptions,
        *,
        on_job: JobCallback | None = None,
        feature_jobs: Sequence[tuple[str, Callable[[], str]]] = (),
        on_feature: FeatureCallback | None = None,
        on_push: PushCallback | None = None,
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
        self.features = FeatureJobs(
            session.store,
            dict(feature_jobs),
            worker=options.name,
            interval=options.interval,
            lock_wait=options.lock_wait,
            on_feature=on_feature,
        )
        self.app.task(
            name=FEATURE_TASK,
            queue=FEATURES_QUEUE,
            retry=retry_strategy(options.retry_attempts, options.retry_base),
        )(self.features.run)
        for pair in options.pairs:  # made here: the job and listener threads share them
            session.runner(pair)
        self._stop = threading.Event()
        self.listener: PushListener | None = None
        if options.push:
            self.listener = PushListener(
                session,
                options.pairs,
                session.config.settings.daemon,
                worker=options.name,
                submit=self._submit_push,
                stop=self._stop,
                poll=options.poll,
                claim_every=options.stalled_after,
                on_push=on_push,
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker_task: asyncio.Task[None] | None = None

    # -- the job ---------------------------------------------------------------------------------

    def sync_pair(self, pair: str, hints: dict[str, list[dict[str, Any]]] | None = None) -> str:
        """One cycle of ``pair`` under its writer lock (the procrastinate task, run in a thread).

        ``hints`` (a push job's, :mod:`crm_bridge.workers.hints`) make it a hinted cycle.
        """
        if pair not in self.options.pairs:
            raise CrmBridgeError(f"worker {self.options.name} does not serve pair {pair!r}")
        runner = self.session.runner(pair)
        hinted = decode_hints(hints) if hints is not None else None
        store = self.session.store
        try:
            with store.writer_lock(pair_lock_name(pair), wait=self.options.lock_wait):
                self.registry.running(pair)
                _log.info("worker.job.start", worker=self.options.name, pair=pair)
                try:
                    report = runner.run_cycle(hints=hinted)
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

    def next_due(self, pair: str, fed: bool = False) -> datetime | None:
        """When the next full cycle of ``pair`` should start (``None``: now).

        An interval after the last full cycle started -- hinted cycles do not count, they read
        only what a channel named; with push, a ``fed`` pair (every side listened to) waits
        ``safety_poll`` instead, unless its last full cycle was capped
        (:func:`~crm_bridge.sync.push.poll_every`, the daemon's rule).
        """
        with self.session.store.transaction(readonly=True) as tx:
            runs = tx.last_runs(pair, limit=50)
        full = next((r for r in runs if not _hinted(r)), runs[-1] if runs else None)
        if full is None:
            return None
        every = self.options.interval
        if self.options.push:
            capped = bool(full.counts.get("capped_reads"))
            every = poll_every(every, self.options.safety_poll, complete=fed, capped=capped)
        due = full.started_at + timedelta(seconds=every)
        return due if due > _utcnow() else None

    async def schedule_once(self) -> list[str]:
        """Queue a cycle for each pair with no job waiting or running; the pairs queued.

        A waiting first attempt due later than the pair is now due (its listener died, so it
        is no longer fed) is cancelled and queued again at the earlier time.
        """
        jobs = await asyncio.to_thread(pair_jobs, self.engine)
        fed: set[str] = set()
        if self.options.push:
            fed = await asyncio.to_thread(
                fed_pairs, self.engine, stale_after=self.options.stalled_after
            )
        queued = []
        for pair in self.options.pairs:
            entry = jobs.get(pair, {})
            if "doing" in entry:
                continue
            due = await asyncio.to_thread(self.next_due, pair, pair in fed)
            waiting = entry.get("todo")
            if waiting is not None:
                if not self._too_late(waiting, due):
                    continue
                if not await self.app.job_manager.cancel_job_by_id_async(waiting["id"]):
                    continue  # it started meanwhile
                _log.info("worker.reschedule", worker=self.options.name, pair=pair, due=due)
            if await defer_pair(self.app, pair, at=due) is not None:
                queued.append(pair)
        return queued

    def _too_late(self, waiting: dict[str, Any], due: datetime | None) -> bool:
        """Whether a waiting first attempt is due more than a tick after ``due``."""
        if not self.options.push or waiting["attempts"]:
            return False  # without push the due time only moves forward; retries keep theirs
        at: datetime | None = waiting["scheduled_at"]
        limit = (due or _utcnow()) + timedelta(seconds=max(1.0, self.options.tick))
        return at is not None and at > limit

    def _submit_push(self, pair: str, hints: dict[str, list[dict[str, Any]]] | None) -> int:
        """Defer a push job from the listener thread on the worker's event loop; its id."""
        loop = self._loop
        if loop is None:
            raise CrmBridgeError("the worker is not running")
        future = asyncio.run_coroutine_threadsafe(defer_hinted(self.app, pair, hints), loop)
        return future.result(timeout=60)

    async def recover_stalled(self) -> list[int]:
        """Put the jobs of workers without a heartbeat back in the queue; their ids."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(
            seconds_since_heartbeat=self.options.stalled_after
        )  # pair and feature jobs alike
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
                await self.features.schedule_once(self.app)
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
                    queues=self.queues(),
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
            listening = (
                asyncio.create_task(asyncio.to_thread(self.listener.run))
                if self.listener is not None
                else None
            )
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker_task
            finally:
                self._stop.set()
                await housekeeping
                if listening is not None:
                    await listening
        await asyncio.to_thread(self.registry.stopped)
        _log.info("worker.stop", worker=self.options.name)

    def queues(self) -> list[str]:
        """The served pairs' queues, and the feature jobs' when this worker runs them."""
        queues = [pair_queue(p) for p in self.options.pairs]
        return [*queues, FEATURES_QUEUE] if self.features.jobs else queues

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


def _hinted(run: Run) -> bool:
    """Whether ``run`` was a hinted cycle (it counted hints), not a full poll."""
    return bool(run.counts.get("hints") or run.counts.get("hints_ours"))


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
