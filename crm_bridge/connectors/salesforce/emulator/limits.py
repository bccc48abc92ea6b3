"""``limits``, the version list and the per-version resource directory.

Why: crm-bridge budgets its daily API calls from ``DailyApiRequests`` and from the
``Sforce-Limit-Info`` header; both must agree with what the emulator actually counted.
"""

from __future__ import annotations

from typing import Any

from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router

__all__ = ["register", "versions"]

_RELEASES = {
    "57.0": "Spring '23",
    "58.0": "Summer '23",
    "59.0": "Winter '24",
    "60.0": "Spring '24",
    "61.0": "Summer '24",
    "62.0": "Winter '25",
}


def versions(newest: str) -> list[dict[str, str]]:
    """``GET /services/data`` -- the API versions served (no authentication needed).

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_versions.htm
    """
    top = float(newest)
    return [
        {"label": label, "url": f"/services/data/v{v}", "version": v}
        for v, label in _RELEASES.items()
        if float(v) <= top
    ]


def resources(ctx: Ctx) -> Resp:
    """``GET /services/data/vXX.X`` -- the resource directory.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_discoveryresource.htm
    """
    base = ctx.version_path()
    names = ["sobjects", "query", "queryAll", "composite", "limits", "tooling", "jobs"]
    return Resp(200, {n: f"{base}/{n}" for n in names})


def limits(ctx: Ctx) -> Resp:
    """``GET /limits`` -- the org's allocations; DailyApiRequests matches Sforce-Limit-Info.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
    """
    org = ctx.org
    used, cap = org.api_used, org.daily_api_limit

    def lim(maximum: int, remaining: int) -> dict[str, Any]:
        return {"Max": maximum, "Remaining": remaining}

    jobs = len(org.bulk_jobs)
    return Resp(
        200,
        {
            "ConcurrentAsyncGetReportInstances": lim(200, 200),
            "ConcurrentSyncReportRuns": lim(20, 20),
            "DailyApiRequests": lim(cap, max(cap - used, 0)),
            "DailyAsyncApexExecutions": lim(250000, 250000),
            "DailyBulkApiBatches": lim(15000, 15000 - jobs),
            "DailyBulkV2QueryFileStorageMB": lim(976562, 976562),
            "DailyBulkV2QueryJobs": lim(
                10000, 10000 - sum(1 for j in org.bulk_jobs.values() if j.is_query)
            ),
            "DataStorageMB": lim(
                1024, 1024 - sum(len(s.records) for s in org.stores.values()) // 500
            ),
            "FileStorageMB": lim(20480, 20480),
            "HourlyODataCallout": lim(20000, 20000),
            "SingleEmail": lim(5000, 5000),
        },
    )


def register(router: Router) -> None:
    """Add ``limits`` and the resource directory."""
    router.add("GET", "")(resources)
    router.add("GET", "limits")(limits)
