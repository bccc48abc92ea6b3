"""Marketo's call limits: 100 calls per 20 s and 10 in flight per instance, 50,000 a day.

Why instance-wide and on the emulator clock: the vendor shares all three limits between every
integration of a subscription, so crm-bridge's own budget must survive another integration
spending it; tests move the clock instead of waiting 20 s.  The daily quota resets at midnight
US Central.  Calls refused with 606/607/615, or answered with an asterisked code (601, 602, ...),
are not counted.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/marketo-integration-best-practices
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import date

from crm_bridge.connectors.marketo.emulator.errors import MarketoError
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.connectors.marketo.emulator.timefmt import central_day
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["InFlight", "RateLimiter"]


class RateLimiter:
    """The sliding 20-second window and the daily count."""

    def __init__(self, settings: MarketoEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._day: date | None = None
        self._daily_used = 0
        self._refused = 0
        self._peak = 0

    def reset(self) -> None:
        """Empty the window and today's count."""
        with self._lock:
            self._window.clear()
            self._day = None
            self._daily_used = 0
            self._refused = 0
            self._peak = 0

    def set_daily_used(self, used: int) -> None:
        """Pretend ``used`` calls were already made today (to reach the quota cheaply)."""
        with self._lock:
            self._roll(self.clock.time())
            self._daily_used = used

    def _roll(self, now: float) -> None:
        today = central_day(now)
        if today != self._day:
            self._day, self._daily_used = today, 0

    def admit(self) -> float:
        """Check one call against the limits without counting it (607 / 606); returns now."""
        s = self.settings
        now = self.clock.time()
        with self._lock:
            self._roll(now)
            while self._window and self._window[0] <= now - s.rate_limit_window_seconds:
                self._window.popleft()
            if not s.rate_limits_enabled:
                return now
            if self._daily_used >= s.daily_quota:
                raise MarketoError(607, "Daily quota reached")
            if len(self._window) >= s.rate_limit_calls:
                self._refused += 1
                raise MarketoError(
                    606,
                    f"Max rate limit '{s.rate_limit_calls}' exceeded with in "
                    f"'{s.rate_limit_window_seconds:g}' secs",
                )
        return now

    def count(self, at: float) -> None:
        """Count an admitted call that was not answered with an uncounted code."""
        with self._lock:
            self._roll(at)
            self._window.append(at)
            self._peak = max(self._peak, len(self._window))
            self._daily_used += 1

    def status(self) -> dict[str, object]:
        """What the control plane reports."""
        s = self.settings
        now = self.clock.time()
        with self._lock:
            self._roll(now)
            in_window = sum(1 for t in self._window if t > now - s.rate_limit_window_seconds)
            return {
                "enabled": s.rate_limits_enabled,
                "rate_limit_calls": s.rate_limit_calls,
                "rate_limit_window_seconds": s.rate_limit_window_seconds,
                "in_window": in_window,
                "concurrency_limit": s.concurrency_limit,
                "daily_quota": s.daily_quota,
                "daily_used": self._daily_used,
                "day": self._day.isoformat() if self._day else None,
                "window_refused": self._refused,
                "peak_in_window": self._peak,
            }


class InFlight:
    """Counts the API calls being served right now (the 615 limit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self, limit: int | None) -> bool:
        """Take a slot; ``False`` (nothing taken) when ``limit`` calls are already in flight."""
        with self._lock:
            if limit is not None and self.current >= limit:
                return False
            self.current += 1
            self.peak = max(self.peak, self.current)
            return True

    def leave(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.current -= 1

    def reset_peak(self) -> None:
        """Forget the high-water mark."""
        with self._lock:
            self.peak = self.current
