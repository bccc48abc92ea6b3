"""The daemon: the same cycle ``crm-bridge sync`` runs, on a schedule, with one writer per store.

Why a loop around the one-shot cycle rather than a separate engine: there is one code path to
test, and an admin can always reproduce what the daemon did with ``crm-bridge sync``.  The store's
writer lock keeps a second daemon (or a manual ``sync``) from interleaving with a running one.
``stop()`` (wired to SIGTERM/SIGINT by the CLI) lets the current write batch finish, records the
run, and returns -- the cursors of an unfinished object are not advanced, so nothing is lost.

The daemon logs its own start, stop and job events; each pair's cycle events come from the
runners' observer (:mod:`crm_bridge.ops.events`), so ``sync`` and the daemon log alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import get_logger
from crm_bridge.store import Store
from crm_bridge.sync.runner import CycleReport, SyncRunner

__all__ = ["Daemon", "DaemonStats"]

WRITER_LOCK = "crm-bridge-writer"

_log = get_logger("crm_bridge.daemon")


@dataclass
class DaemonStats:
    """Totals since the daemon started."""

    cycles: int = 0
    failures: int = 0


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
        self.stats = DaemonStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the daemon to finish the batch in flight and return."""
        self._stop.set()
        for runner in self.runners:
            runner.request_stop()

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stop.is_set()

    def run(self) -> DaemonStats:
        """Hold the store's writer lock and run cycles until stopped or ``max_cycles``."""
        with self.store.writer_lock(WRITER_LOCK):
            _log.info(
                "daemon.start",
                pairs=[r.name for r in self.runners],
                jobs=[name for name, _ in self.jobs],
                interval=self.interval,
            )
            while not self._stop.is_set():
                started = self.monotonic()
                for runner in self.runners:
                    if self._stop.is_set():
                        break
                    try:
                        report = runner.run_cycle()
                    except CrmBridgeError as exc:
                        self.stats.failures += 1
                        if self.on_error:
                            self.on_error(runner.name, exc)
                        continue
                    if self.on_cycle:
                        self.on_cycle(self.stats.cycles + 1, report, self.monotonic() - started)
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
                self.stats.cycles += 1
                if self.max_cycles is not None and self.stats.cycles >= self.max_cycles:
                    break
                remaining = self.interval - (self.monotonic() - started)
                if remaining > 0:
                    self._stop.wait(remaining)
            _log.info("daemon.stop", cycles=self.stats.cycles, failures=self.stats.failures)
        return self.stats
