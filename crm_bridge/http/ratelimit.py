"""Stay under vendor limits *before* they bite, instead of waiting for 429s.

Why client-side limiting when the retry loop already honours 429: every 429 is a wasted call
that still counts against the daily allocation, a burst window is often shared by every process
using the same app, and a sync that hits its ceiling repeatedly finishes later than one that
paces itself.  Two tools, each with one job:

* :class:`RollingWindowLimiter` -- at most ``max_calls`` in any ``window_seconds``, counted the
  way the *server* counts them: when they arrive, not when we send them.  ``with
  limiter.paced():`` around the request sleeps just long enough and books the call when its
  answer is back; :meth:`~RollingWindowLimiter.observe` lets the server's own numbers (ceiling,
  remaining, window) tighten the local view when other processes share the budget.
* :class:`DailyBudget` -- fed the allocation's ``used``/``limit`` as the server reports them, it
  refuses calls that would eat into a reserve kept for people and other integrations, raising
  :class:`~crm_bridge.errors.RateLimitedError` so the engine stops the cycle cleanly rather than
  draining the allocation.

Both take plain numbers, never headers: which header carries which number is vendor knowledge,
so each connector has a small parser (``crm_bridge/connectors/<vendor>/limit_headers.py``) that
reads its vendor's headers and calls ``observe`` / ``observe_usage``.

Both are thread-safe (the engine may run connector calls from a pool) and count calls so a run
report can say how many were made and how long pacing cost.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from crm_bridge.errors import RateLimitedError
from crm_bridge.http.clock import Clock, SystemClock

__all__ = ["BudgetSnapshot", "DailyBudget", "Lease", "LimiterStats", "RollingWindowLimiter"]


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """What a run report needs from a limiter."""

    calls: int
    waited_seconds: float
    max_calls: int
    window_seconds: float


class Lease:
    """A call :meth:`RollingWindowLimiter.lease` let through whose answer is not back yet.

    ``slot`` is when the call was allowed out (monotonic); the server sees it no earlier.  Why
    an object and not just that time: the limiter must know which of its open calls finished,
    and two calls may share a slot.
    """

    __slots__ = ("slot",)

    def __init__(self) -> None:
        self.slot = 0.0

    def __repr__(self) -> str:
        return f"Lease(slot={self.slot:g})"


class RollingWindowLimiter:
    """At most ``max_calls`` calls in any ``window_seconds``-long window *as the server sees it*.

    Why completion times: the server counts a call when it *arrives*, somewhere between the moment
    we send it and the moment its answer is back, and we cannot see where.  A limiter that books
    calls at send time spaces the sends exactly one window apart, so a call delayed on its way in
    (a slow first search, a busy connection pool) and a quick call one window later land inside
    the same server window -- the 429s the benchmark showed.  With :meth:`paced` (or
    :meth:`lease` + :meth:`release`) a call holds its place in the window while it is open, and
    when it is done it is booked at its completion time, the latest moment the server can have
    counted it.  The next call in that position then goes out at least one window after that
    moment, so no window of arrival times ever holds more than ``max_calls``, whatever the delays.
    The price is one round trip per ``max_calls`` calls, spent only when the limiter is the
    bottleneck.

    Each reservation picks a *slot* (a point in time) under the lock and then sleeps until it
    outside the lock, so waiting threads do not block each other's bookkeeping and slots are
    handed out in arrival order.  A new slot is placed at least one window after the booked call
    it would push over the limit, which guarantees the limit for every window, not only for
    windows aligned to some tick.  When ``max_calls`` calls are open at once, the next caller
    waits until one of them is released: any of them may still reach the server at any moment.

    :meth:`acquire` is the older, fire-and-forget form for callers that cannot report completion:
    it books the call at its send time, which is exact only if requests arrive instantly.
    """

    def __init__(
        self,
        max_calls: int,
        window_seconds: float,
        clock: Clock | None = None,
        *,
        name: str = "limiter",
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.name = name
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._max_calls = max_calls
        self._window = float(window_seconds)
        self._slots: list[float] = []  # sorted booked times; every one newer than now - window
        self._open: set[Lease] = set()  # leased, not yet released: may arrive at any time
        self._calls = 0
        self._waited = 0.0

    @property
    def max_calls(self) -> int:
        """The current ceiling (it only goes down, when the server reports a lower one)."""
        with self._lock:
            return self._max_calls

    @property
    def window_seconds(self) -> float:
        """The current window length (it only grows, when the server reports a longer one)."""
        with self._lock:
            return self._window

    @contextmanager
    def paced(self) -> Iterator[Lease]:
        """Wait for room, run the body (send the request), then book the call as finished.

        Leave the block as soon as the answer (or the failure) is back: the server counted the
        call by then, and everything after that only delays the next call.
        """
        lease = self.lease()
        try:
            yield lease
        finally:
            self.release(lease)

    def lease(self) -> Lease:
        """Wait until one more call fits and hold its place until :meth:`release`."""
        lease = Lease()
        self._reserve(lease)
        return lease

    def release(self, lease: Lease) -> float:
        """Book a leased call at its completion time (now); return that time.

        Call it once the answer is back or the request failed.  A lease that is never released
        keeps its place forever, so prefer :meth:`paced`.
        """
        with self._released:
            if lease not in self._open:
                raise ValueError(f"{lease!r} is not open on {self!r}")
            self._open.remove(lease)
            done = max(self._clock.monotonic(), lease.slot)
            bisect.insort(self._slots, done)
            self._released.notify_all()
        return done

    def acquire(self) -> float:
        """Wait until one more call fits under the limit; return the slot time (monotonic).

        The call is booked at the slot, as if the server saw it the moment it was sent; use
        :meth:`paced` when the caller can say when the answer came back.
        """
        return self._reserve(None)

    def _reserve(self, lease: Lease | None) -> float:
        with self._released:
            start = self._clock.monotonic()
            while len(self._open) >= self._max_calls:
                self._released.wait()
            now = self._clock.monotonic()
            self._prune(now)
            room = self._max_calls - len(self._open)  # booked calls that may share our window
            slot = now
            if len(self._slots) >= room:
                slot = max(now, self._slots[-room] + self._window)
            if lease is None:
                bisect.insort(self._slots, slot)
            else:
                lease.slot = slot
                self._open.add(lease)
            self._calls += 1
            wait = slot - now
            self._waited += slot - start
        if wait > 0:
            self._clock.sleep(wait)
        return slot

    def observe(
        self,
        *,
        max_calls: int | None = None,
        remaining: int | None = None,
        window_seconds: float | None = None,
    ) -> None:
        """Tighten the local view from the server's own count of this window.

        ``max_calls`` lower than ours lowers the ceiling; a longer ``window_seconds`` widens the
        window; ``remaining`` lower than we expect means someone else is spending the same
        budget, so their calls are booked as if made now.  Nothing here ever loosens the limit
        configured by the operator.  ``None`` means the answer did not say.
        """
        with self._lock:
            if max_calls is not None and 0 < max_calls < self._max_calls:
                self._max_calls = max_calls
            if window_seconds is not None and window_seconds > self._window:
                self._window = window_seconds
            if remaining is None:
                return
            now = self._clock.monotonic()
            self._prune(now)
            ceiling = max_calls if max_calls is not None else self._max_calls
            used_by_server = ceiling - remaining
            used_by_us = bisect.bisect_right(self._slots, now)
            used_by_us += sum(1 for lease in self._open if lease.slot <= now)
            for _ in range(max(0, used_by_server - used_by_us)):
                bisect.insort(self._slots, now)

    def stats(self) -> LimiterStats:
        """Calls granted and seconds spent waiting so far."""
        with self._lock:
            return LimiterStats(self._calls, self._waited, self._max_calls, self._window)

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._slots, now - self._window)
        del self._slots[:cut]

    def __repr__(self) -> str:
        return (
            f"RollingWindowLimiter(name={self.name!r}, max_calls={self._max_calls}, "
            f"window_seconds={self._window:g})"
        )


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """The daily allocation as last reported, plus our calls since then."""

    used: int | None
    limit: int | None
    calls_since_report: int
    calls: int
    reserve_fraction: float

    @property
    def estimated_used(self) -> int | None:
        """The server's last count plus the calls we made since it was reported."""
        return None if self.used is None else self.used + self.calls_since_report


class DailyBudget:
    """Refuse calls that would spend the part of a daily allocation kept for others.

    The allocation belongs to the whole org or account, not to crm-bridge: people, other
    integrations and admins need calls too, and running it to zero breaks them all until the
    window rolls over.  So the budget only lets us use ``1 - reserve_fraction`` of the limit.
    Until a first report arrives the budget is unknown and every call is allowed.
    """

    def __init__(self, *, reserve_fraction: float = 0.10, name: str = "daily API") -> None:
        if not 0.0 <= reserve_fraction < 1.0:
            raise ValueError("reserve_fraction must be in [0, 1)")
        self.name = name
        self.reserve_fraction = reserve_fraction
        self._lock = threading.Lock()
        self._used: int | None = None
        self._limit: int | None = None
        self._since = 0
        self._calls = 0

    def observe_usage(self, used: int, limit: int) -> None:
        """Record the server's count: ``used`` of ``limit`` calls in the current allocation.

        Call it with every report the vendor sends (a response header, a limits resource); the
        calls we make afterwards are added locally until the next report replaces the count.
        """
        with self._lock:
            self._used, self._limit, self._since = used, limit, 0

    def acquire(self) -> None:
        """Count one call, or raise ``RateLimitedError`` if it would cross into the reserve."""
        with self._lock:
            if self._used is not None and self._limit is not None:
                allowed = int(self._limit * (1.0 - self.reserve_fraction))
                projected = self._used + self._since + 1
                if projected > allowed:
                    raise RateLimitedError(
                        f"{self.name} budget reached: {self._used + self._since:,} of "
                        f"{self._limit:,} calls used; the last {self.reserve_fraction:.0%} "
                        f"({self._limit - allowed:,} calls) is kept for people and other "
                        "integrations, so crm-bridge stops until the allocation resets",
                        retry_after=None,
                    )
            self._since += 1
            self._calls += 1

    def snapshot(self) -> BudgetSnapshot:
        """The budget as it stands, for reports."""
        with self._lock:
            return BudgetSnapshot(
                self._used, self._limit, self._since, self._calls, self.reserve_fraction
            )

    def __repr__(self) -> str:
        return f"DailyBudget(name={self.name!r}, reserve_fraction={self.reserve_fraction:g})"
