"""Feed the daily budget from Salesforce's ``Sforce-Limit-Info`` response header.

Why a parser of its own: :class:`~crm_bridge.http.DailyBudget` takes plain numbers so it can
serve every vendor; which header carries them, and in what syntax, is Salesforce's.  Every REST
answer carries ``Sforce-Limit-Info: api-usage=N/M`` (the org's 24-hour allocation), sometimes
followed by ``per-app-api-usage=n/m(appName=...)``, which is one connected app's share and must
not be mistaken for the org's count.
"""

from __future__ import annotations

import re
from typing import Any

from crm_bridge.http.headers import lower_headers
from crm_bridge.http.ratelimit import DailyBudget

__all__ = ["observe_limit_info", "parse_limit_info"]

_API_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")  # not per-app-api-usage


def parse_limit_info(headers: Any) -> tuple[int, int] | None:
    """``(used, limit)`` of the org allocation from ``Sforce-Limit-Info``; ``None`` if absent."""
    info = lower_headers(headers).get("sforce-limit-info")
    if info is None:
        return None
    match = _API_USAGE.search(info)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def observe_limit_info(budget: DailyBudget, headers: Any) -> None:
    """Tell ``budget`` the org's usage if ``headers`` (any mapping or pair list) report it."""
    usage = parse_limit_info(headers)
    if usage is not None:
        budget.observe_usage(*usage)
