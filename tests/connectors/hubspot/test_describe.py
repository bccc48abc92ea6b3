from __future__ import annotations

import json
from collections.abc import Mapping

import httpx
import pytest
import urllib3
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.contacts.exceptions import ServiceException as ContactsServiceException
from hubspot.crm.contacts.rest import RESTResponse as ContactsRESTResponse
from hubspot.crm.lists.exceptions import ApiException as ListsApiException
from hubspot.crm.lists.rest import RESTResponse as ListsRESTResponse
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from crm_bridge.connectors.hubspot.errors import (
    HUBSPOT_POLICY,
    HUBSPOT_ROWS,
    describe_hubspot,
    describe_hubspot_httpx,
    window_hint,
)
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    DEFAULT_POLICY,
    TLS_FAILED,
    Action,
)

POOL = urllib3.HTTPConnectionPool("127.0.0.1", 9)
classify = HUBSPOT_POLICY.classify


# --- hubspot-api-client -----------------------------------------------------------------------


def hubspot_response(
    rest_response: type, status: int, body: Mapping[str, object], **headers: str
) -> object:
    raw = urllib3.HTTPResponse(
        body=json.dumps(body).encode(),
        headers=headers,
        status=status,
        reason="x",
        preload_content=True,
    )
    return rest_response(raw)


def test_hubspot_429_with_retry_after_and_rate_headers() -> None:
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c1b2",
        "policyName": "TEN_SECONDLY_ROLLING",
        "groupName": "publicapi:private_app-api-calls-ten-secondly:1:2",
    }
    exc = ContactsApiException(
        http_resp=hubspot_response(
            ContactsRESTResponse,
            429,
            body,
            **{
                "Retry-After": "3",
                "X-HubSpot-RateLimit-Max": "190",
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )
    )
    failure = describe_hubspot(exc)
    assert failure is not None
    assert failure.status == 429
    assert failure.error_code == "TEN_SECONDLY_ROLLING"
    assert failure.headers["retry-after"] == "3"
    assert failure.headers["x-hubspot-ratelimit-remaining"] == "0"
    assert failure.retry_after == 10.0  # window hint, used only when Retry-After is absent


def test_hubspot_daily_limit_and_search_limit() -> None:
    daily = ContactsApiException(
        http_resp=hubspot_response(
            ContactsRESTResponse,
            429,
            {
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
            },
        )
    )
    failure = describe_hubspot(daily)
    assert failure is not None and failure.error_code == "DAILY"
    assert classify(failure.status, failure.error_code).max_attempts == 1
    search = ContactsApiException(
        http_resp=hubspot_response(
            ContactsRESTResponse,
            429,
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "SECONDLY",
            },
        )
    )
    failure = describe_hubspot(search)
    assert failure is not None and failure.retry_after == 1.0


def test_hubspot_exceptions_from_different_subpackages_are_both_understood() -> None:
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "category": "VALIDATION_ERROR",
        "errors": [
            {
                "message": "bad option",
                "code": "INVALID_OPTION",
                "context": {"propertyName": ["hs_lead_status"]},
            }
        ],
    }
    contacts = ContactsApiException(http_resp=hubspot_response(ContactsRESTResponse, 400, body))
    lists = ListsApiException(http_resp=hubspot_response(ListsRESTResponse, 400, body))
    assert not isinstance(lists, ContactsApiException)  # the reason we duck-type
    for exc in (contacts, lists):
        failure = describe_hubspot(exc)
        assert failure is not None
        assert (failure.status, failure.error_code, failure.message) == (
            400,
            "INVALID_OPTION",
            "Property values were not valid",
        )


def test_hubspot_category_used_without_nested_code() -> None:
    exc = ContactsServiceException(
        http_resp=hubspot_response(
            ContactsRESTResponse,
            409,
            {
                "status": "error",
                "message": "Contact already exists. Existing ID: 512",
                "category": "CONFLICT",
            },
        )
    )
    failure = describe_hubspot(exc)
    assert failure is not None and failure.error_code == "CONFLICT"
    assert classify(failure.status, failure.error_code).action is Action.SKIP_RECORD


def test_hubspot_ssl_error_is_tls_failure() -> None:
    failure = describe_hubspot(
        ContactsApiException(status=0, reason="SSLError\ncertificate verify failed")
    )
    assert failure is not None and failure.error_code == TLS_FAILED


def test_raw_urllib3_errors_fall_back_to_transport() -> None:
    refused = NewConnectionError(HTTPConnection("127.0.0.1", 9), "Connection refused")
    failure = describe_hubspot(MaxRetryError(POOL, "/crm/v3/objects/contacts", reason=refused))
    assert failure is not None and (failure.status, failure.error_code) == (None, CONNECT_FAILED)
    failure = describe_hubspot(ProtocolError("Connection aborted."))
    assert failure is not None and failure.error_code == CONNECTION_LOST
    assert describe_hubspot(KeyError("Id")) is None


# --- our own httpx calls (the token endpoint) -------------------------------------------------


def test_httpx_429_gets_the_window_hint() -> None:
    request = httpx.Request("POST", "https://api.hubapi.com/oauth/v1/token")
    response = httpx.Response(
        429,
        headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
        json={"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "message": "slow"},
        request=request,
    )
    failure = describe_hubspot_httpx(
        httpx.HTTPStatusError("429", request=request, response=response)
    )
    assert failure is not None and failure.retry_after == 10.0
    ok_400 = httpx.Response(400, json={"status": "BAD_REFRESH_TOKEN"}, request=request)
    failure = describe_hubspot_httpx(httpx.HTTPStatusError("400", request=request, response=ok_400))
    assert failure is not None and failure.error_code == "BAD_REFRESH_TOKEN"
    assert failure.retry_after is None
    failure = describe_hubspot_httpx(httpx.ConnectError("refused"))
    assert failure is not None and failure.error_code == CONNECT_FAILED
    assert describe_hubspot_httpx(KeyError("Id")) is None


@pytest.mark.parametrize(
    ("status", "code", "headers", "hint"),
    [
        (429, None, {"x-hubspot-ratelimit-interval-milliseconds": "12000"}, 12.0),
        (429, "TEN_SECONDLY_ROLLING", {"x-hubspot-ratelimit-interval-milliseconds": "x"}, 10.0),
        (429, "SECONDLY", {}, 1.0),
        (429, "DAILY", {}, None),
        (503, "TEN_SECONDLY_ROLLING", {}, None),
    ],
)
def test_window_hint(
    status: int, code: str | None, headers: Mapping[str, str], hint: float | None
) -> None:
    assert window_hint(status, code, headers) == hint


# --- the HubSpot retry rows -------------------------------------------------------------------


def test_daily_limit_gives_up_at_once_and_burst_limits_wait() -> None:
    assert classify(429, "DAILY").action is Action.RATE_LIMITED
    assert classify(429, "DAILY").max_attempts == 1
    assert classify(429, "TEN_SECONDLY_ROLLING").max_attempts is None
    assert DEFAULT_POLICY.classify(429, "DAILY").max_attempts is None  # HubSpot's row only
    assert dict(HUBSPOT_POLICY.extra) == dict(HUBSPOT_ROWS)
