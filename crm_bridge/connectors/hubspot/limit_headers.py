"""Feed the shared limiters from HubSpot's ``X-HubSpot-RateLimit-*`` response headers.

Why a parser of its own: :class:`~crm_bridge.http.RollingWindowLimiter` and
:class:`~crm_bridge.http.DailyBudget` take plain numbers so they can serve every vendor; which
header carries which number is HubSpot's.  Every answer but search's carries the burst window
(``-Max``, ``-Remaining``, ``-Interval-Milliseconds``) and the daily quota (``-Daily``,
``-Daily-Remaining``); when other processes spend the same app's budget, these numbers are the
only way we learn of their calls.
"""

from __future__ import annotations

from typing import Any

from crm_bridge.http.headers import int_header, lower_headers
from crm_bridge.http.ratelimit import DailyBudget, RollingWindowLimiter

__all__ = ["observe_burst_headers", "observe_daily_headers"]


def observe_burst_headers(limiter: RollingWindowLimiter, headers: Any) -> None:
    """Tighten ``limiter`` from the burst headers in ``headers`` (any mapping or pair list).

    Answers without them (search, errors ahead of the limiter) tell the limiter nothing.
    """
    lower = lower_headers(headers)
    interval_ms = int_header(lower, "x-hubspot-ratelimit-interval-milliseconds")
    limiter.observe(
        max_calls=int_header(lower, "x-hubspot-ratelimit-max"),
        remaining=int_header(lower, "x-hubspot-ratelimit-remaining"),
        window_seconds=interval_ms / 1000.0 if interval_ms is not None else None,
    )


def observe_daily_headers(budget: DailyBudget, headers: Any) -> None:
    """Tell ``budget`` the day's usage if ``headers`` carry both daily numbers."""
    lower = lower_headers(headers)
    daily = int_header(lower, "x-hubspot-ratelimit-daily")
    remaining = int_header(lower, "x-hubspot-ratelimit-daily-remaining")
    if daily is not None and remaining is not None:
        budget.observe_usage(daily - remaining, daily)
