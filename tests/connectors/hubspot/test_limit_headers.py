from __future__ import annotations

import pytest

from crm_bridge.connectors.hubspot.limit_headers import (
    observe_burst_headers,
    observe_daily_headers,
)
from crm_bridge.errors import RateLimitedError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.ratelimit import DailyBudget, RollingWindowLimiter


def test_burst_headers_lower_max_and_widen_window_but_never_loosen() -> None:
    limiter = RollingWindowLimiter(190, 10.0, FakeClock())
    observe_burst_headers(
        limiter,
        {"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Interval-Milliseconds": "12000"},
    )
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)
    observe_burst_headers(
        limiter,
        {"X-HubSpot-RateLimit-Max": "250", "X-HubSpot-RateLimit-Interval-Milliseconds": "5000"},
    )
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)
    observe_burst_headers(limiter, {"Content-Type": "application/json"})  # search: no headers
    observe_burst_headers(limiter, {"X-HubSpot-RateLimit-Max": "many"})  # junk: ignored
    assert (limiter.max_calls, limiter.window_seconds) == (100, 12.0)


def test_burst_remaining_books_other_processes_calls() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(10, 10.0, clock)
    limiter.acquire()
    # The server says only 2 calls remain: 8 were used, 7 of them by someone else.
    observe_burst_headers(
        limiter, {"x-hubspot-ratelimit-max": "10", "x-hubspot-ratelimit-remaining": "2"}
    )
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(10.0)]


def test_daily_headers_feed_the_budget() -> None:
    budget = DailyBudget(reserve_fraction=0.1)
    observe_daily_headers(
        budget, {"X-HubSpot-RateLimit-Daily": "1000", "X-HubSpot-RateLimit-Daily-Remaining": "101"}
    )
    budget.acquire()  # 900th call
    with pytest.raises(RateLimitedError):
        budget.acquire()


def test_daily_headers_need_both_numbers() -> None:
    budget = DailyBudget()
    observe_daily_headers(budget, {"X-HubSpot-RateLimit-Daily": "x"})
    observe_daily_headers(budget, {"X-HubSpot-RateLimit-Daily": "1000"})
    budget.acquire()
    assert budget.snapshot().used is None
