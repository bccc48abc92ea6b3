"""What a cycle did, as events: the one hook the runner calls, and the sinks that listen.

Why one hook in the runner and everything else here: the runner already holds the cycle's
report; it only has to say "a cycle started", "an object is done" and "the cycle ended (with
this error)".  :class:`CycleTracker` turns those three calls into complete results -- counts by
outcome, API calls by connector and endpoint family, duration, cursor lag, the dead letters the
cycle added, whether a guard tripped or the call budget ran out -- and hands them to sinks: the
log (:class:`LogSink`, always on), metrics, health, alerts and progress.  A sink that raises is
logged and skipped: watching a sync must never break it.

Events (``event`` is the name, every other key a field; JSON output carries all of them):

``sync.cycle.start``   pair, run_id, objects, backlog (what the last cycle left unread)
``sync.object.end``    pair, object, seconds, counts, lag_seconds, capped
``sync.cycle.end``     pair, run_id, status, seconds, counts, calls, lag_seconds, backlog,
                       dead_lettered, open_dead_letters, error, error_class
``sync.dead_letter``   pair, object, side, record, code, reason, attempts (at most
                       :data:`MAX_DEAD_LETTER_EVENTS` per cycle; the end event has the count)
``sync.guard.tripped`` pair, error (the delete-ratio guard stopped the cycle)
``sync.budget.exhausted`` pair, error (a rate limit or the daily budget stopped the cycle)
``http.retry``         (from :mod:`crm_bridge.http.retry`) attempt, wait, action, failure
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from crm_bridge.errors import RateLimitedError, SyncAbortedError
from crm_bridge.log import get_logger
from crm_bridge.store import ChangeCursor, DeadLetter

if TYPE_CHECKING:
    from crm_bridge.sync.runner import CycleReport, SyncRunner

__all__ = [
    "MAX_DEAD_LETTER_EVENTS",
    "NO_OBSERVER",
    "CycleObserver",
    "CycleResult",
    "CycleStart",
    "CycleTracker",
    "LogSink",
    "ObjectResult",
    "Sink",
    "cursor_lag",
]

MAX_DEAD_LETTER_EVENTS = 50
"""Dead-letter events logged per cycle; a first sync that rejects 3,000 records logs 50 lines
and the count, not 3,000 lines (``crm-bridge dlq list`` has them all)."""

CycleStatus = Literal["ok", "failed", "aborted"]

_log = get_logger("crm_bridge.events")


class CycleObserver(Protocol):
    """What :meth:`SyncRunner.run_cycle` tells its observer; every call returns quickly."""

    def cycle_started(self, runner: SyncRunner, report: CycleReport) -> None:
        """The run is recorded (``report.run_id``; ``None`` for ``--plan``), nothing read yet."""

    def object_finished(self, runner: SyncRunner, report: CycleReport, obj: str) -> None:
        """``obj`` was read, planned and written; ``report.counts`` include it."""

    def cycle_finished(
        self, runner: SyncRunner, report: CycleReport, error: BaseException | None
    ) -> None:
        """The run is recorded as ended; ``error`` is what the cycle raises, if anything."""


class _NoObserver:
    """The runner's default: a library user who wires no observer pays nothing."""

    def cycle_started(self, runner: SyncRunner, report: CycleReport) -> None:
        """Nothing."""

    def object_finished(self, runner: SyncRunner, report: CycleReport, obj: str) -> None:
        """Nothing."""

    def cycle_finished(
        self, runner: SyncRunner, report: CycleReport, error: BaseException | None
    ) -> None:
        """Nothing."""


NO_OBSERVER: CycleObserver = _NoObserver()


@dataclass(frozen=True)
class ObjectResult:
    """One object of one cycle: its counts, how long it took, and how far behind it still is."""

    pair: str
    obj: str
    seconds: float
    counts: Mapping[str, int]
    lag_seconds: Mapping[str, float]
    """Per side: how far behind now the cursor stands (0 once the read reached the end)."""
    capped: bool
    """Whether a side's read stopped at ``max_records_per_cycle`` (more is waiting)."""
    plan_only: bool = False


@dataclass(frozen=True)
class CycleResult:
    """One whole cycle, as every sink sees it."""

    pair: str
    run_id: int | None
    status: CycleStatus
    seconds: float
    counts: Mapping[str, int]
    calls: Mapping[str, Mapping[str, int]]
    """API calls per connector, by endpoint family."""
    lag_seconds: Mapping[tuple[str, str], float]
    """(object, side) -> seconds behind now."""
    backlog: tuple[str, ...]
    """Objects whose read was capped: the next cycle continues them."""
    dead_letters: tuple[DeadLetter, ...]
    """Open dead letters added (or failed again) during this cycle."""
    open_dead_letters: int
    started_at: datetime
    finished_at: datetime
    error: BaseException | None = None
    plan_only: bool = False

    @property
    def new_dead_letters(self) -> tuple[DeadLetter, ...]:
        """Dead letters first seen in this cycle (not older ones that failed again)."""
        return tuple(dl for dl in self.dead_letters if dl.first_seen >= self.started_at)

    @property
    def guard_tripped(self) -> bool:
        """A safety guard (the delete ratio) stopped the cycle before it wrote."""
        return isinstance(self.error, SyncAbortedError)

    @property
    def budget_exhausted(self) -> bool:
        """A rate limit or the daily API budget's reserve stopped the cycle."""
        return isinstance(self.error, RateLimitedError)

    @property
    def error_text(self) -> str | None:
        """The error as the CLI would print it (messages never carry secrets)."""
        if self.error is None:
            return None
        return str(self.error) or type(self.error).__name__


@dataclass(frozen=True)
class CycleStart:
    """A cycle that just started: what it will go through and what was left from the last."""

    pair: str
    run_id: int | None
    objects: tuple[str, ...]
    backlog: Mapping[tuple[str, str], float]
    """(object, side) -> seconds behind, for reads the previous cycle left capped."""
    api_calls: Callable[[], int]
    """The API calls this cycle has made so far (live: read it from a progress thread)."""

    @property
    def plan_only(self) -> bool:
        """``crm-bridge sync --plan``: nothing is recorded or written."""
        return self.run_id is None


class Sink:
    """A listener for cycle results; override what you need (the defaults do nothing)."""

    def cycle_begun(self, start: CycleStart) -> None:
        """A cycle started."""

    def object_done(self, result: ObjectResult) -> None:
        """One object of a running cycle is done."""

    def cycle_done(self, result: CycleResult) -> None:
        """A cycle ended (``result.status`` says how)."""


def cursor_lag(cursor: ChangeCursor | None, now: datetime) -> float | None:
    """Seconds between ``now`` and where a capped read stopped; 0 once a read reached the end.

    Why not ``now - newest``: a settled cursor of a quiet object would look hours behind when
    nothing is waiting.  Only a ``scanning`` cursor (its last read was capped) has changes left
    to read, and its position is the modification time of the last one taken.  ``None`` before
    the first read.
    """
    if cursor is None:
        return None
    if cursor.phase != "scanning" or cursor.position is None:
        return 0.0
    return max(0.0, (now - cursor.position[0]).total_seconds())


@dataclass
class _Running:
    """What the tracker remembers of a cycle in flight."""

    started: float
    started_at: datetime
    mark: float
    counts: Counter[str]
    calls: dict[str, Counter[str]]
    lag: dict[tuple[str, str], float] = field(default_factory=dict)
    backlog: list[str] = field(default_factory=list)


class CycleTracker:
    """The runner's observer: builds :class:`ObjectResult` / :class:`CycleResult` for sinks.

    ``monotonic`` times the cycle (inject a fake one in tests); the wall-clock instants come from
    the runner's own ``now`` so dead letters and cursors compare on the store's clock.
    """

    def __init__(
        self, sinks: Iterable[Sink] = (), *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.monotonic = monotonic
        self._running: dict[int, _Running] = {}

    def add(self, sink: Sink) -> None:
        """Listen with ``sink`` too (the daemon adds metrics and health)."""
        self.sinks.append(sink)

    def remove(self, sink: Sink) -> None:
        """Stop telling ``sink``."""
        if sink in self.sinks:
            self.sinks.remove(sink)

    # -- the runner's calls -------------------------------------------------------------------
    def cycle_started(self, runner: SyncRunner, report: CycleReport) -> None:
        """Remember the counts and API calls as they stood, then tell the sinks."""
        now = self.monotonic()
        self._running[id(runner)] = _Running(
            started=now,
            started_at=runner.now(),
            mark=now,
            counts=Counter(report.counts),
            calls={c.name: Counter(c.calls) for c in runner.connectors.values()},
        )
        before = sum(sum(c.calls.values()) for c in runner.connectors.values())
        connectors = list(runner.connectors.values())
        wall = runner.now()
        with runner.store.transaction(readonly=True) as tx:
            backlog = {
                (obj, side): behind
                for obj in runner.settings.ordered_objects()
                for side in ("crm", "map")
                if (behind := cursor_lag(tx.get_change_cursor(runner.name, side, obj), wall))
            }
        start = CycleStart(
            pair=runner.name,
            run_id=report.run_id,
            objects=tuple(runner.settings.ordered_objects()),
            backlog=backlog,
            api_calls=lambda: sum(sum(c.calls.values()) for c in connectors) - before,
        )
        self._tell("cycle_begun", lambda s: s.cycle_begun(start))

    def object_finished(self, runner: SyncRunner, report: CycleReport, obj: str) -> None:
        """The object's share of the counts, its duration and its cursors' lag."""
        state = self._running.get(id(runner))
        if state is None:
            return
        now = self.monotonic()
        counts = Counter(report.counts)
        counts.subtract(state.counts)
        lag: dict[str, float] = {}
        capped = False
        wall = runner.now()
        with runner.store.transaction(readonly=True) as tx:
            for side in ("crm", "map"):
                cursor = tx.get_change_cursor(runner.name, side, obj)
                behind = cursor_lag(cursor, wall)
                if behind is not None:
                    lag[side] = behind
                    state.lag[(obj, side)] = behind
                if cursor is not None and cursor.phase == "scanning":
                    capped = True
        if capped:
            state.backlog.append(obj)
        result = ObjectResult(
            pair=runner.name,
            obj=obj,
            seconds=now - state.mark,
            counts={k: v for k, v in counts.items() if v},
            lag_seconds=lag,
            capped=capped,
            plan_only=report.run_id is None,
        )
        state.mark = now
        state.counts = Counter(report.counts)
        self._tell("object_done", lambda s: s.object_done(result))

    def cycle_finished(
        self, runner: SyncRunner, report: CycleReport, error: BaseException | None
    ) -> None:
        """Compute the whole cycle's result and tell every sink."""
        state = self._running.pop(id(runner), None)
        if state is None:
            return
        calls: dict[str, dict[str, int]] = {}
        for conn in runner.connectors.values():
            spent = Counter(conn.calls)
            spent.subtract(state.calls.get(conn.name, Counter()))
            calls[conn.name] = {family: n for family, n in sorted(spent.items()) if n > 0}
        status: CycleStatus = (
            "ok"
            if error is None
            else "aborted"
            if isinstance(error, SyncAbortedError)
            else "failed"
        )
        plan_only = report.run_id is None
        from crm_bridge.ops import queries

        letters: list[DeadLetter] = []
        open_count = 0
        if not plan_only:
            try:
                letters = queries.dead_letters_since(runner.store, runner.name, state.started_at)
                open_count = queries.open_dead_letters(runner.store, runner.name)
            except Exception as exc:  # the store itself may be what failed
                _log.warning("events.store_unreadable", pair=runner.name, error=exc)
        result = CycleResult(
            pair=runner.name,
            run_id=report.run_id,
            status=status,
            seconds=self.monotonic() - state.started,
            counts={k: v for k, v in report.counts.items() if v},
            calls=calls,
            lag_seconds=dict(state.lag),
            backlog=tuple(state.backlog),
            dead_letters=tuple(letters),
            open_dead_letters=open_count,
            started_at=state.started_at,
            finished_at=runner.now(),
            error=error,
            plan_only=plan_only,
        )
        self._tell("cycle_done", lambda s: s.cycle_done(result))

    def _tell(self, what: str, call: Callable[[Sink], None]) -> None:
        for sink in list(self.sinks):
            try:
                call(sink)
            except Exception as exc:
                _log.error("events.sink_failed", sink=type(sink).__name__, call=what, error=exc)


class LogSink(Sink):
    """The engine's own log events (see the module docstring for names and fields)."""

    def __init__(self, logger_name: str = "crm_bridge.events") -> None:
        self.log = get_logger(logger_name)

    def cycle_begun(self, start: CycleStart) -> None:
        """``sync.cycle.start``."""
        self.log.info(
            "sync.cycle.start",
            pair=start.pair,
            run_id=start.run_id,
            objects=list(start.objects),
            backlog={f"{o}.{s}": round(v, 1) for (o, s), v in start.backlog.items()},
            plan=start.plan_only,
        )

    def object_done(self, result: ObjectResult) -> None:
        """``sync.object.end``."""
        self.log.info(
            "sync.object.end",
            pair=result.pair,
            object=result.obj,
            seconds=round(result.seconds, 3),
            counts=dict(result.counts),
            lag_seconds={k: round(v, 1) for k, v in result.lag_seconds.items()},
            capped=result.capped,
        )

    def cycle_done(self, result: CycleResult) -> None:
        """``sync.cycle.end``, one ``sync.dead_letter`` per new letter, guard and budget events."""
        for dl in result.dead_letters[:MAX_DEAD_LETTER_EVENTS]:
            self.log.warning(
                "sync.dead_letter",
                pair=dl.pair,
                object=dl.obj,
                side=dl.side,
                record=dl.record_key,
                code=dl.error_code,
                reason=dl.reason,
                attempts=dl.attempts,
            )
        if result.guard_tripped:
            self.log.error("sync.guard.tripped", pair=result.pair, error=result.error_text)
        if result.budget_exhausted:
            self.log.error("sync.budget.exhausted", pair=result.pair, error=result.error_text)
        level = self.log.info if result.status == "ok" else self.log.error
        level(
            "sync.cycle.end",
            pair=result.pair,
            run_id=result.run_id,
            status=result.status,
            seconds=round(result.seconds, 3),
            counts=dict(result.counts),
            calls={name: dict(families) for name, families in result.calls.items()},
            api_calls=sum(sum(f.values()) for f in result.calls.values()),
            lag_seconds={f"{o}.{s}": round(v, 1) for (o, s), v in result.lag_seconds.items()},
            backlog=list(result.backlog),
            dead_lettered=len(result.dead_letters),
            open_dead_letters=result.open_dead_letters,
            error=result.error_text,
            error_class=type(result.error).__name__ if result.error else None,
            plan=result.plan_only,
        )
