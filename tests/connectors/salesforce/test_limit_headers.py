from __future__ import annotations

import pytest

from crm_bridge.connectors.salesforce.limit_headers import observe_limit_info, parse_limit_info
from crm_bridge.errors import RateLimitedError
from crm_bridge.http.ratelimit import DailyBudget


def test_daily_budget_keeps_the_reserve_from_the_header() -> None:
    budget = DailyBudget(reserve_fraction=0.1)
    observe_limit_info(budget, {"Sforce-Limit-Info": "api-usage=4497/5000"})
    for _ in range(3):
        budget.acquire()  # 4500 = 90 % of 5000: the last allowed call
    with pytest.raises(RateLimitedError):
        budget.acquire()
    assert (budget.snapshot().used, budget.snapshot().limit) == (4497, 5000)


def test_org_usage_is_read_next_to_per_app_usage() -> None:
    budget = DailyBudget(reserve_fraction=0.5)
    observe_limit_info(
        budget,
        {"sforce-limit-info": "api-usage=40/100; per-app-api-usage=17/250(appName=crm-bridge)"},
    )
    assert (budget.snapshot().used, budget.snapshot().limit) == (40, 100)
    observe_limit_info(budget, [("Sforce-Limit-Info", "api-usage=20/100")])  # pair lists work
    assert budget.snapshot().used == 20


@pytest.mark.parametrize(
    "headers",
    [
        {"Sforce-Limit-Info": "garbage"},
        {"Sforce-Limit-Info": "per-app-api-usage=249/250(appName=crm-bridge)"},
        {"Content-Type": "application/json"},
        None,
    ],
)
def test_junk_per_app_usage_and_absence_report_nothing(headers: object) -> None:
    budget = DailyBudget(reserve_fraction=0.1)
    observe_limit_info(budget, headers)
    budget.acquire()
    assert budget.snapshot().used is None
    assert parse_limit_info(headers) is None
