"""Time as a dependency: every wait, expiry and window in the HTTP seam reads an injected clock.

Why not call :mod:`time` directly: retries, rate limits and token expiry are all about time, and
tests that really sleep are slow and flaky.  Code in :mod:`crm_bridge.http` takes a :class:`Clock`;
production passes :class:`SystemClock`, tests pass :class:`FakeClock`, whose ``sleep`` moves time
forward at once and records how long each wait was, so a test can assert the exact backoff.

Two readings are kept apart on purpose: ``monotonic()`` for durations (never jumps when the wall
clock is corrected) and ``now()`` for the wall clock, needed only to interpret HTTP dates such as
``Retry-After: Wed, 21 Oct 2015 07:28:00 GMT``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the HTTP seam needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward; for durations and deadlines."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (a fake clock just advances)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.sleep` and UTC ``datetime.now``."""

    def monotonic(self) -> float:
        """See :meth:`Clock.monotonic`."""
        return time.monotonic()

    def now(self) -> datetime:
        """See :meth:`Clock.now`."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """See :meth:`Clock.sleep`; negative durations are treated as zero."""
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock for tests: ``sleep`` advances both readings instantly and is recorded in ``sleeps``.

    It is thread-safe so limiter tests can hammer it from several threads; with threads, each
    sleep still advances the one shared time, which keeps every reading consistent.
    """

    def __init__(
        self,
        start: datetime = datetime(2024, 1, 1, 9, 0, tzinfo=UTC),
        *,
        monotonic_start: float = 1_000.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._lock = threading.Lock()
        self._start = start
        self._monotonic_start = monotonic_start
        self._elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """See :meth:`Clock.monotonic`."""
        with self._lock:
            return self._monotonic_start + self._elapsed

    def now(self) -> datetime:
        """See :meth:`Clock.now`."""
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance time by it (never by a negative amount)."""
        with self._lock:
            self.sleeps.append(seconds)
            self._elapsed += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Let time pass without it counting as a sleep by the code under test."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        with self._lock:
            self._elapsed += seconds

    @property
    def slept(self) -> float:
        """Total seconds slept by the code under test."""
        with self._lock:
            return sum(max(0.0, s) for s in self.sleeps)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()}, sleeps={len(self.sleeps)})"
