"""API usage accounting, the limits resource, and injected faults as the real client sees them."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)


def test_limit_info_header_counts_every_data_call(sf: Any) -> None:
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 15000
    sf.Lead.create({"LastName": "A", "Company": "B"})
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 3


def test_limits_resource(sf: Any) -> None:
    sf.query("SELECT Id FROM User")
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 2}
    assert "DailyBulkV2QueryJobs" in limits


def test_daily_limit_exceeded_is_403(sf: Any, control: Any) -> None:
    control("limits", {"daily_api_limit": 2})
    sf.query("SELECT Id FROM User")
    sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM User")
    assert exc.value.status == 403
    assert exc.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]


def test_allocation_resets_on_a_new_day(salesforce: Any, sf: Any, control: Any) -> None:
    control("limits", {"daily_api_limit": 1})
    sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM User")
    control("clock", {"advance": 86400})
    tomorrow = salesforce.simple_salesforce()  # yesterday's token has expired as well
    assert tomorrow.query("SELECT Id FROM User")["totalSize"] == 1
    tomorrow.session.close()


def test_call_counter_families(salesforce: Any, sf: Any, http: Any) -> None:
    sf.query("SELECT Id FROM User")
    sf.Lead.create({"LastName": "A", "Company": "B"})
    sf.Lead.describe()
    sf.limits()
    counts = http.get("/__emulator__/calls").json()
    assert counts == {"query": 1, "sobject": 1, "describe": 1, "limits": 1, "total": 4}


@pytest.mark.parametrize(
    "status,exc_type,code",
    [
        (401, SalesforceExpiredSession, "INVALID_SESSION_ID"),
        (403, SalesforceRefusedRequest, "REQUEST_LIMIT_EXCEEDED"),
        (400, SalesforceMalformedRequest, "UNABLE_TO_LOCK_ROW"),
        (503, SalesforceGeneralError, "SERVER_UNAVAILABLE"),
        (500, SalesforceGeneralError, "UNKNOWN_EXCEPTION"),
        (404, SalesforceResourceNotFound, "NOT_FOUND"),
    ],
)
def test_injected_status_faults(
    sf: Any, control: Any, status: int, exc_type: type[Exception], code: str
) -> None:
    control("faults", {"path": "/query", "status": status})
    with pytest.raises(exc_type) as exc:
        sf.query("SELECT Id FROM User")
    assert exc.value.status == status  # type: ignore[attr-defined]
    assert exc.value.content[0]["errorCode"] == code  # type: ignore[attr-defined]
    assert sf.query("SELECT Id FROM User")["totalSize"] == 1  # the fault was used up


def test_injected_fault_with_custom_body_and_skip(sf: Any, control: Any) -> None:
    body = [
        {
            "message": "unable to obtain exclusive access to this record or 1 records: 00Q",
            "errorCode": "UNABLE_TO_LOCK_ROW",
            "fields": [],
        }
    ]
    control(
        "faults",
        {"path": "/sobjects/Lead", "method": "POST", "status": 400, "body": body, "skip": 1},
    )
    sf.Lead.create({"LastName": "A", "Company": "B"})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.create({"LastName": "A", "Company": "B"})
    assert exc.value.content == body


def test_dropped_connection(sf: Any, control: Any) -> None:
    control("faults", {"path": "/query", "drop": True})
    with pytest.raises(
        (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        sf.query("SELECT Id FROM User")


def test_latency_fault_still_answers(sf: Any, control: Any) -> None:
    control("faults", {"path": "/limits", "latency": 0.05})
    assert "DailyApiRequests" in sf.limits()


def test_reset_route_clears_state_and_faults(sf: Any, control: Any, http: Any) -> None:
    sf.Lead.create({"LastName": "A", "Company": "B"})
    control("faults", {"path": "/query", "status": 500, "times": None})
    assert http.post("/__emulator__/reset").status_code == 204
    fresh = sf.__class__(
        session_id=http.post("/__emulator__/token", json={}).json()["access_token"],
        instance_url=str(http.base_url).rstrip("/"),
        session=sf.session,
        version="59.0",
    )
    assert fresh.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_limit_header_on_raw_responses_including_errors(salesforce: Any, http: Any) -> None:
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    ok = http.get(
        "/services/data/v59.0/query", params={"q": "SELECT Id FROM User"}, headers=headers
    )
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    bad = http.get("/services/data/v59.0/query", params={"q": "SELECT FROM"}, headers=headers)
    assert bad.status_code == 400
    assert bad.headers["Sforce-Limit-Info"] == "api-usage=2/15000"
    assert bad.headers["content-type"].startswith("application/json")
