"""Rate limits through the real client: headers, 429 bodies, and Retry-After's effect on urllib3."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from hubspot.crm.contacts import PublicObjectSearchRequest, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import ApiException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def _limits(hs: RunningHubSpot, **changes: object) -> dict[str, object]:
    return hs.control("POST", "rate-limits", {"enabled": True, **changes})  # type: ignore[no-any-return]


def _headers(api: object) -> Any:
    """The last response's headers (urllib3's case-insensitive HTTPHeaderDict)."""
    return api.api_client.last_response.getheaders()  # type: ignore[attr-defined]


def test_headers_count_down(hubspot: RunningHubSpot) -> None:
    hubspot.emulator.clock.freeze()  # no window may roll over between the two calls
    _limits(hubspot, burst_limit=5, daily_limit=1000)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    first = _headers(api)
    api.get_page()
    second = _headers(api)
    assert first["X-HubSpot-RateLimit-Max"] == "5"
    assert first["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert (first["X-HubSpot-RateLimit-Remaining"], second["X-HubSpot-RateLimit-Remaining"]) == (
        "4",
        "3",
    )
    assert first["X-HubSpot-RateLimit-Daily"] == "1000"
    assert int(second["X-HubSpot-RateLimit-Daily-Remaining"]) == 998


def test_post_over_burst_raises_429_with_documented_body(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, burst_limit=2)
    api = hubspot.client().crm.contacts.basic_api
    for i in range(2):
        api.create(SimplePublicObjectInputForCreate(properties={"email": f"r{i}@example.com"}))
    with pytest.raises(ApiException) as exc:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "r9@example.com"}))
    assert exc.value.status == 429
    body = json.loads(exc.value.body)
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["groupName"].startswith("publicapi:private_app-api-calls-ten-secondly:")
    assert exc.value.headers["Retry-After"] == "10"
    hubspot.control("POST", "clock", {"advance": 10})
    api.create(SimplePublicObjectInputForCreate(properties={"email": "r9@example.com"}))


def test_get_without_retry_after_raises_at_once(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, burst_limit=1, send_retry_after=False)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert exc.value.status == 429
    assert "Retry-After" not in exc.value.headers
    assert hubspot.control("GET", "calls")["objects"] == 2  # no hidden retry


def test_get_with_retry_after_is_retried_by_urllib3(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, burst_limit=2)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    api.get_page()
    hubspot.control("POST", "clock", {"advance": 9.5})  # the window frees up 0.5 s from now
    page = api.get_page()  # 429 + Retry-After: 1, urllib3 sleeps 1 s and retries
    assert page.results == []
    assert hubspot.control("GET", "calls")["objects"] == 4


def test_retry_zero_surfaces_the_raw_429(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, burst_limit=1)
    hubspot.client().crm.contacts.basic_api.get_page()
    strict = hubspot.client(retry=urllib3.Retry(0)).crm.contacts.basic_api
    with pytest.raises(ApiException) as exc:
        strict.get_page()
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "10"
    assert hubspot.control("GET", "calls")["objects"] == 2


def test_search_has_its_own_per_second_limit(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, search_per_second=2, burst_limit=1)
    search = hubspot.client().crm.contacts.search_api
    request = PublicObjectSearchRequest(filter_groups=[], limit=1, after="0")
    search.do_search(request)
    search.do_search(request)  # search is outside the burst bucket (limit 1)
    with pytest.raises(ApiException) as exc:
        search.do_search(request)
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["policyName"]) == (429, "SECONDLY")
    assert body["message"] == "You have reached your secondly limit."
    hubspot.control("POST", "clock", {"advance": 1.01})
    assert search.do_search(request).total == 0


def test_daily_limit(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, daily_limit=500, daily_used=500)
    with pytest.raises(ApiException) as exc:
        hubspot.client(
            retry=urllib3.Retry(0, raise_on_status=False)
        ).crm.contacts.basic_api.get_page()
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["policyName"]) == (429, "DAILY")
    assert body["message"] == "You have reached your daily limit."


def test_tier_and_per_token_buckets(hubspot: RunningHubSpot) -> None:
    status = _limits(hubspot, tier="starter")
    assert (status["burst_limit"], status["daily_limit"]) == (100, 250_000)
    _limits(hubspot, burst_limit=1)
    hubspot.client().crm.contacts.basic_api.get_page()
    human = hubspot.client(access_token=hubspot.emulator.as_user("mark.marketer@example.com"))
    human_api = human.crm.contacts.basic_api
    human_api.get_page()  # a different token has its own ten-second bucket
    assert _headers(human_api)["X-HubSpot-RateLimit-Remaining"] == "0"


def test_unknown_rate_limit_key_is_rejected(hubspot: RunningHubSpot) -> None:
    import httpx

    resp = httpx.post(f"{hubspot.base_url}/__emulator__/rate-limits", json={"burst": 3})
    assert resp.status_code == 400


def test_reset_turns_limits_back_off(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, burst_limit=1)
    hubspot.emulator.reset()
    api = hubspot.client().crm.contacts.basic_api
    for _ in range(3):
        api.get_page()
    assert hubspot.control("GET", "rate-limits")["enabled"] is False


def _limit_names(headers: Any) -> set[str]:
    """The ``X-HubSpot-RateLimit-*`` header names of one answer, lower-cased."""
    return {k.lower() for k in headers if k.lower().startswith("x-hubspot-ratelimit-")}


FIVE = {
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
    "x-hubspot-ratelimit-interval-milliseconds",
    "x-hubspot-ratelimit-daily",
    "x-hubspot-ratelimit-daily-remaining",
}


def test_burst_429_carries_the_headers_of_other_answers(hubspot: RunningHubSpot) -> None:
    hubspot.emulator.clock.freeze()
    _limits(hubspot, burst_limit=1, send_retry_after=False)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    normal = _limit_names(_headers(api))
    assert normal == FIVE
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert exc.value.status == 429
    assert _limit_names(exc.value.headers) == normal
    assert exc.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_daily_429_carries_the_headers_of_other_answers(hubspot: RunningHubSpot) -> None:
    _limits(hubspot, daily_limit=500, send_retry_after=False)
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    normal = _limit_names(_headers(api))
    _limits(hubspot, daily_used=500)
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert (exc.value.status, json.loads(exc.value.body)["policyName"]) == (429, "DAILY")
    assert _limit_names(exc.value.headers) == normal == FIVE
    assert exc.value.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_injected_429_carries_the_headers_of_other_answers(hubspot: RunningHubSpot) -> None:
    """A fault-injected 429 (limits on or off) carries the headers of the answer before it, with
    the counts as they stand (the fault counts nothing); the fault's own headers still win."""
    hubspot.emulator.clock.freeze()  # no window may roll over between the calls
    api = hubspot.client().crm.contacts.basic_api
    api.get_page()
    normal = _headers(api)
    hubspot.control(
        "POST",
        "faults",
        {
            "path": "/crm/v3/objects/contacts$",
            "status": 429,
            "headers": {"X-HubSpot-RateLimit-Max": "7"},
        },
    )
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert exc.value.status == 429
    assert _limit_names(exc.value.headers) == _limit_names(normal) == FIVE
    for name in FIVE - {"x-hubspot-ratelimit-max"}:
        assert exc.value.headers[name] == normal[name], name
    assert exc.value.headers["X-HubSpot-RateLimit-Max"] == "7"
