"""HubSpot's rate limits: a ten-second rolling burst per token, a daily count, search per second.

Why rolling windows on the emulator clock: crm-bridge's backoff must react to the same 429 bodies
and ``X-HubSpot-RateLimit-*`` headers as in production, and tests move the clock instead of
waiting for a window to pass.  Search has its own per-second bucket and does not report the burst
headers, as in HubSpot.

Doc: https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
"""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import UTC, datetime

from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, correlation_id
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["RateLimiter"]


class RateLimiter:
    """Counts calls and decides whether the next one is allowed."""

    def __init__(self, settings: HubSpotEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Empty every bucket."""
        with self._lock:
            self._burst: dict[str, deque[float]] = {}
            self._search: deque[float] = deque()
            self._day = ""
            self._daily_used = 0
            # What a test of several clients sharing one token checks: answers refused for the
            # burst window, and the most calls ever counted in one window.
            self._refused = 0
            self._peak_burst = 0

    def set_daily_used(self, used: int) -> None:
        """Pretend ``used`` calls were already made today (to reach the daily limit cheaply)."""
        with self._lock:
            self._roll_day(self.clock.time())
            self._daily_used = used

    def _roll_day(self, now: float) -> None:
        day = datetime.fromtimestamp(now, tz=UTC).date().isoformat()
        if day != self._day:
            self._day, self._daily_used = day, 0

    def admit(self, token_key: str, *, search: bool) -> dict[str, str]:
        """Count one call, or raise the 429 HubSpot would send; returns the headers to add.

        A 429 carries the same ``X-HubSpot-RateLimit-*`` headers as the answers around it (none
        for search): a client that tightens its own budget from those headers must see the
        spent window on the very answer that tells it to back off.
        """
        s = self.settings
        now = self.clock.time()
        with self._lock:
            self._roll_day(now)
            enforce = s.rate_limits_enabled
            daily_spent = enforce and self._daily_used >= s.daily_limit
            if search:
                if daily_spent:
                    raise self._limited("DAILY", "daily", self._seconds_to_midnight(now), {})
                window = _prune(self._search, now - 1.0)
                if enforce and len(window) >= s.search_per_second:
                    raise self._limited("SECONDLY", "secondly", window[0] + 1.0 - now, {})
                window.append(now)
                self._daily_used += 1
                return {}
            bucket = self._burst.setdefault(token_key, deque())
            _prune(bucket, now - s.burst_window_seconds)
            if daily_spent:
                wait = self._seconds_to_midnight(now)
                raise self._limited("DAILY", "daily", wait, self._headers(len(bucket)))
            if enforce and len(bucket) >= s.burst_limit:
                self._refused += 1
                wait = bucket[0] + s.burst_window_seconds - now
                raise self._limited(
                    "TEN_SECONDLY_ROLLING", "ten_secondly_rolling", wait, self._headers(len(bucket))
                )
            bucket.append(now)
            self._peak_burst = max(self._peak_burst, len(bucket))
            self._daily_used += 1
            return self._headers(len(bucket))

    def current_headers(self, token_key: str | None) -> dict[str, str]:
        """The headers an answer to ``token_key`` would carry now, counting nothing.

        Why: an injected 429 stands in for an answer the limiter never saw, so it reports the
        counts as they stand, exactly like the answers around it; a client reading the headers
        then reacts to the fault's status and ``Retry-After``, not to made-up counts.
        """
        s = self.settings
        now = self.clock.time()
        with self._lock:
            self._roll_day(now)
            bucket = self._burst.get(token_key or "", deque())
            _prune(bucket, now - s.burst_window_seconds)
            return self._headers(len(bucket))

    def _headers(self, burst_used: int) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers with ``burst_used`` calls in the window."""
        s = self.settings
        return {
            "X-HubSpot-RateLimit-Max": str(s.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(s.burst_limit - burst_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(s.burst_window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(s.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(s.daily_limit - self._daily_used, 0)),
        }

    def _seconds_to_midnight(self, now: float) -> float:
        return 86400 - (now % 86400)

    def _limited(
        self, policy: str, words: str, wait: float, limit_headers: dict[str, str]
    ) -> HubSpotError:
        s = self.settings
        body: dict[str, object] = {
            "status": "error",
            "message": f"You have reached your {words} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
        }
        if policy == "TEN_SECONDLY_ROLLING":
            body["groupName"] = (
                f"publicapi:private_app-api-calls-ten-secondly:{s.app_id}:{s.portal_id}"
            )
        else:
            body["requestId"] = correlation_id()
        headers = dict(limit_headers)
        if s.send_retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return HubSpotError(429, str(body["message"]), "RATE_LIMITS", body=body, headers=headers)

    def status(self) -> dict[str, object]:
        """What the control plane reports."""
        s = self.settings
        with self._lock:
            return {
                "enabled": s.rate_limits_enabled,
                "burst_limit": s.burst_limit,
                "burst_window_seconds": s.burst_window_seconds,
                "search_per_second": s.search_per_second,
                "daily_limit": s.daily_limit,
                "daily_used": self._daily_used,
                "send_retry_after": s.send_retry_after,
                "burst_refused": self._refused,
                "peak_burst": self._peak_burst,
            }


def _prune(window: deque[float], older_than: float) -> deque[float]:
    while window and window[0] <= older_than:
        window.popleft()
    return window
