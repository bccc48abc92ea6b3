"""The daemon: the same cycle ``crm-bridge sync`` runs, on a schedule, with one writer per store.

Why a loop around the one-shot cycle rather than a separate engine: there is one code path to
test, and an admin can always reproduce what the daemon did with ``crm-bridge sync``.  The
pairs' writer locks (``writer:<pair>``) keep a second daemon, a worker or a manual ``sync`` of
the same pair from interleaving with a running one.
``stop()`` (wired to SIGTERM/SIGINT by the CLI) lets the current write batch finish, records the
run, and returns -- the cursors of an unfinished object are not advanced, so nothing is lost.

With push channels (``feeds``, :mod:`crm_bridge.sync.push`) the daemon also runs a hinted cycle
as soon as a channel names changed records, and a pair whose sides all have channels is polled
only every ``safety_poll`` seconds.

The daemon logs its own start, stop and job events; each pair's cycle events come from the
runners' observer (:mod:`crm_bridge.ops.events`), so ``sync`` and the daemon log alike.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from crm_bridge.connector import ChangeHint
from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import get_logger
from crm_bridge.store import Side, Store
from crm_bridge.sync.push import PairFeeds, act_on, poll_every
from crm_bridge.sync.runner import CycleReport, SyncRunner

__all__ = ["Daemon", "DaemonStats"]

WRITER_LOCK = "crm-bridge-writer"
"""The store-wide lock of the feature jobs (SLA, reasons); pairs have their own, ``writer:<pair>``."""

_log = get_logger("crm_bridge.daemon")


@dataclass
class DaemonStats:
    """Totals since the daemon started."""

    cycles: int = 0
    failures: int = 0
    hinted_cycles: int = 0
    fallbacks: int = 0
    """Full cycles run at once because a push channel lost its place."""


class Daemon:
    """Runs every pair's cycle, then the other jobs (SLA, reason capture), each ``interval``."""

    def __init__(
        self,
        *,
        runners: Sequence[SyncRunner],
        store: Store,
        interval: float,
        on_cycle: Callable[[int, CycleReport, float], None] | None = None,
        on_error: Callable[[str, CrmBridgeError], None] | None = None,
        max_cycles: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        jobs: Sequence[tuple[str, Callable[[], str]]] = (),
        on_job: Callable[[str, str], None] | None = None,
        feeds: Sequence[PairFeeds] = (),
        safety_poll: float = 600.0,
    ) -> None:
        self.runners = list(runners)
        self.store = store
        self.interval = interval
        self.on_cycle = on_cycle
        self.on_error = on_error
        self.max_cycles = max_cycles
        self.monotonic = monotonic
        self.jobs = list(jobs)
        self.on_job = on_job
        self.feeds = list(feeds)
        self.safety_poll = safety_poll
        self.stats = DaemonStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the daemon to finish the batch in flight and return."""
        self._stop.set()
        for runner in self.runners:
            runner.request_stop()

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds``, ending early on :meth:`stop` (a push channel's idle pause)."""
        self._stop.wait(seconds)

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stop.is_set()

    def run(self) -> DaemonStats:
        """Hold the store's writer lock and run cycles until stopped or ``max_cycles``."""
        with self._writer_locks():
            _log.info(
                "daemon.start",
                pairs=[r.name for r in self.runners],
                jobs=[name for name, _ in self.jobs],
                interval=self.interval,
                push=[f.runner.name for f in self.feeds],
            )
            if self.feeds:
                self._run_pushed()
            else:
                self._run_polled()
            _log.info("daemon.stop", cycles=self.stats.cycles, failures=self.stats.failures)
        return self.stats

    @contextlib.contextmanager
    def _writer_locks(self) -> Iterator[None]:
        """Each pair's writer lock, plus the store-wide one when the daemon runs feature jobs.

        Per pair so that a daemon for some pairs and workers for others (or two daemons with
        ``--pair``) write side by side; the SLA and reason jobs are not per pair, so they keep
        :data:`WRITER_LOCK` (which ``crm-bridge sla run`` also takes).
        """
        with self.store.pair_locks(r.name for r in self.runners):
            if self.jobs:
                with self.store.writer_lock(WRITER_LOCK):
                    yield
            else:
                yield

    def _run_polled(self) -> None:
        while not self._stop.is_set():
            started = self.monotonic()
            for runner in self.runners:
                if self._stop.is_set():
                    break
                self._cycle(runner, started)
            self._run_jobs()
            self.stats.cycles += 1
            if self.max_cycles is not None and self.stats.cycles >= self.max_cycles:
                break
            remaining = self.interval - (self.monotonic() - started)
            if remaining > 0:
                self._stop.wait(remaining)

    def _run_pushed(self) -> None:
        """Full cycles on the poll schedule, hinted cycles whenever a channel speaks.

        A pair whose every side has a channel is polled only every ``safety_poll`` seconds; a
        pair with a side that has none keeps the ordinary ``interval`` (that side has nothing
        else to bring its changes).  Jobs keep ``interval``.  ``max_cycles`` counts rounds of
        full cycles, as without push.
        """
        by_name = {f.runner.name: f for f in self.feeds}
        due: dict[str, float] = {r.name: self.monotonic() for r in self.runners}
        jobs_due = self.monotonic()
        while not self._stop.is_set():
            now = self.monotonic()
            polled = [r for r in self.runners if due[r.name] <= now]
            for runner in polled:
                if self._stop.is_set():
                    break
                feeds = by_name.get(runner.name)
                begun = feeds.start() if feeds is not None else None
                report = self._cycle(runner, now)
                if report is not None and feeds is not None and begun is not None:
                    feeds.commit(begun)
                due[runner.name] = self.monotonic() + self._poll_every(feeds, report)
            if polled:
                self.stats.cycles += 1
                if self.max_cycles is not None and self.stats.cycles >= self.max_cycles:
                    break
            if self.monotonic() >= jobs_due:
                self._run_jobs()
                jobs_due = self.monotonic() + self.interval
            for feeds in self.feeds:
                if self._stop.is_set():
                    break
                wait = min([*due.values(), jobs_due]) - self.monotonic()
                collected = feeds.collect(max(0.0, wait) / len(self.feeds))
                acted, report = act_on(feeds, collected, self._hinted_cycle(feeds.runner))
                if acted == "fallback":
                    self.stats.fallbacks += 1
                    if report is not None:
                        due[feeds.runner.name] = self.monotonic() + self._poll_every(feeds, report)
                elif acted == "hinted":
                    self.stats.hinted_cycles += 1
            if not self.feeds:  # pragma: no cover - _run_pushed is only entered with feeds
                break
        for feeds in self.feeds:
            feeds.close()

    def _poll_every(self, feeds: PairFeeds | None, report: CycleReport | None) -> float:
        """When the pair's next full cycle is due (:func:`~crm_bridge.sync.push.poll_every`)."""
        return poll_every(
            self.interval,
            self.safety_poll,
            complete=feeds is not None and feeds.complete,
            capped=report is not None and bool(report.counts["capped_reads"]),
        )

    def _hinted_cycle(
        self, runner: SyncRunner
    ) -> Callable[[Mapping[Side, Sequence[ChangeHint]] | None], CycleReport | None]:
        """``runner``'s cycle as :func:`act_on` calls it: hinted, or full for ``None``."""

        def cycle(hints: Mapping[Side, Sequence[ChangeHint]] | None) -> CycleReport | None:
            return self._cycle(runner, self.monotonic(), hints=hints)

        return cycle

    def _cycle(
        self,
        runner: SyncRunner,
        started: float,
        hints: Mapping[Side, Sequence[ChangeHint]] | None = None,
    ) -> CycleReport | None:
        """One cycle of ``runner``; its report, or ``None`` if it failed (counted, reported)."""
        try:
            report = runner.run_cycle(hints=hints)
        except CrmBridgeError as exc:
            self.stats.failures += 1
            if self.on_error:
                self.on_error(runner.name, exc)
            return None
        if self.on_cycle:
            self.on_cycle(self.stats.cycles + 1, report, self.monotonic() - started)
        return report

    def _run_jobs(self) -> None:
        for name, job in self.jobs:
            if self._stop.is_set():
                break
            try:
                summary = job()
            except CrmBridgeError as exc:
                self.stats.failures += 1
                _log.error("daemon.job.failed", job=name, error=exc)
                if self.on_error:
                    self.on_error(name, exc)
                continue
            _log.info("daemon.job.end", job=name, summary=summary)
            if self.on_job:
                self.on_job(name, summary)
