"""Progress on long runs: a rich progress line in a terminal, periodic log lines otherwise.

Why both: an admin watching a 20k+20k initial load in a terminal wants to see it move; the same
run under systemd or cron has no terminal, and there a ``sync.progress`` event every
``every_seconds`` (default 30) is what shows in the journal.  Cycles shorter than that log
nothing extra.

What it shows: the pair, the object being worked on (n of m), seconds elapsed, API calls so far
(the live counters of the connectors, so the number moves while a big read or write runs), and
the backlog still to read when it is known -- the objects whose previous read stopped at
``max_records_per_cycle``, with how far behind now their cursor is.  How many *records* are left
is not known: no vendor API in use returns a count for "changed since", and counting would
cost the calls the cap is there to save.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from crm_bridge.log import get_logger
from crm_bridge.ops.events import CycleResult, CycleStart, ObjectResult, Sink

__all__ = ["ProgressSink", "describe_backlog"]

_log = get_logger("crm_bridge.progress")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def describe_backlog(backlog: dict[tuple[str, str], float]) -> str:
    """``leads.crm 3.2h behind, accounts.map 40m behind`` (or ``none known``)."""
    if not backlog:
        return "none known"
    parts = [
        f"{obj}.{side} {_duration(behind)} behind"
        for (obj, side), behind in sorted(backlog.items(), key=lambda kv: -kv[1])
    ]
    return ", ".join(parts)


@dataclass
class _Cycle:
    start: CycleStart
    began: float
    done: int = 0
    current: str = ""
    read: int = 0
    backlog: dict[tuple[str, str], float] = field(default_factory=dict)
    task: TaskID | None = None


class ProgressSink(Sink):
    """Follows each cycle; a ticker thread refreshes the display or logs every ``every_seconds``.

    ``interactive`` defaults to whether ``console`` (stderr) is a terminal.  ``tick()`` is what
    the thread calls; tests call it directly with an injected ``monotonic``.
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        interactive: bool | None = None,
        every_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        thread: bool = True,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal if interactive is None else interactive
        self.every_seconds = every_seconds
        self.monotonic = monotonic
        self.use_thread = thread
        self._lock = threading.Lock()
        self._cycles: dict[str, _Cycle] = {}
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines: list[str] = []
        """Every progress line logged (non-interactive), for tests and ``--plan`` summaries."""

    # -- sink ---------------------------------------------------------------------------------
    def cycle_begun(self, start: CycleStart) -> None:
        """Start following the cycle (and the display or ticker if none is running)."""
        with self._lock:
            cycle = _Cycle(start, self.monotonic(), backlog=dict(start.backlog))
            self._cycles[start.pair] = cycle
            self._last_line = cycle.began
            if self.interactive:
                if self._progress is None:
                    self._progress = Progress(
                        SpinnerColumn(),
                        TextColumn("{task.description}"),
                        BarColumn(),
                        TextColumn("{task.completed}/{task.total} objects"),
                        TimeElapsedColumn(),
                        console=self.console,
                        transient=True,
                    )
                    self._progress.start()
                cycle.task = self._progress.add_task(
                    self._describe(cycle), total=len(start.objects) or 1
                )
            cycle.current = start.objects[0] if start.objects else ""
        self._ensure_thread()

    def object_done(self, result: ObjectResult) -> None:
        """One more object done; the backlog updated with where its read stopped."""
        with self._lock:
            cycle = self._cycles.get(result.pair)
            if cycle is None:
                return
            cycle.done += 1
            cycle.read += sum(v for k, v in result.counts.items() if k.startswith("read_"))
            for side, behind in result.lag_seconds.items():
                if behind > 0:
                    cycle.backlog[(result.obj, side)] = behind
                else:
                    cycle.backlog.pop((result.obj, side), None)
            objects = cycle.start.objects
            cycle.current = objects[cycle.done] if cycle.done < len(objects) else "finishing"
            if self._progress is not None and cycle.task is not None:
                self._progress.update(
                    cycle.task, completed=cycle.done, description=self._describe(cycle)
                )

    def cycle_done(self, result: CycleResult) -> None:
        """Stop following the cycle; the display goes when no cycle is left."""
        with self._lock:
            cycle = self._cycles.pop(result.pair, None)
            if cycle is not None and self._progress is not None and cycle.task is not None:
                self._progress.remove_task(cycle.task)
            idle = not self._cycles
            if idle and self._progress is not None:
                self._progress.stop()
                self._progress = None
        if idle:
            self._stop_thread()

    # -- the ticker ---------------------------------------------------------------------------
    def tick(self) -> list[str]:
        """Refresh the display, or log a ``sync.progress`` line if ``every_seconds`` passed."""
        now = self.monotonic()
        lines: list[str] = []
        with self._lock:
            if self._progress is not None:
                for cycle in self._cycles.values():
                    if cycle.task is not None:
                        self._progress.update(cycle.task, description=self._describe(cycle))
                return lines
            if now - self._last_line < self.every_seconds:
                return lines
            self._last_line = now
            for cycle in self._cycles.values():
                line = self._describe(cycle)
                lines.append(line)
                _log.info(
                    "sync.progress",
                    pair=cycle.start.pair,
                    object=cycle.current,
                    objects_done=cycle.done,
                    objects=len(cycle.start.objects),
                    seconds=round(now - cycle.began, 1),
                    api_calls=cycle.start.api_calls(),
                    read=cycle.read,
                    backlog={f"{o}.{s}": round(v, 1) for (o, s), v in cycle.backlog.items()},
                )
            self.lines.extend(lines)
        return lines

    def _describe(self, cycle: _Cycle) -> str:
        elapsed = self.monotonic() - cycle.began
        return (
            f"pair {cycle.start.pair}: {cycle.current or '-'} "
            f"({min(cycle.done + 1, len(cycle.start.objects))}/{len(cycle.start.objects)}), "
            f"{cycle.start.api_calls()} API calls, {_duration(elapsed)}; "
            f"backlog: {describe_backlog(cycle.backlog)}"
        )

    def _ensure_thread(self) -> None:
        if not self.use_thread or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        period = 1.0 if self.interactive else min(self.every_seconds, 5.0)

        def run() -> None:
            while not self._stop.wait(period):
                try:
                    self.tick()
                except Exception as exc:  # a display problem must never stop a sync
                    _log.warning("progress.failed", error=exc)
                    return

        self._thread = threading.Thread(target=run, name="crm-bridge-progress", daemon=True)
        self._thread.start()

    def _stop_thread(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    def close(self) -> None:
        """Stop the ticker and the display."""
        self._stop_thread()
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
