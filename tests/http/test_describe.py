from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import requests
import urllib3
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.contacts.exceptions import ServiceException as ContactsServiceException
from hubspot.crm.contacts.rest import RESTResponse as ContactsRESTResponse
from hubspot.crm.lists.exceptions import ApiException as ListsApiException
from hubspot.crm.lists.rest import RESTResponse as ListsRESTResponse
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)

from crm_bridge.http.describe import (
    describe_any,
    describe_httpx,
    describe_hubspot,
    describe_salesforce,
    describe_transport,
    lower_headers,
    parse_error_body,
)
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMED_OUT,
    TLS_FAILED,
    Action,
    classify,
)

SF_URL = "https://127.0.0.1:8443/services/data/v59.0/sobjects/Lead/"
POOL = urllib3.HTTPConnectionPool("127.0.0.1", 9)


def sf_error(cls: type[Exception], status: int, body: object) -> Exception:
    """simple-salesforce annotates ``content`` as bytes but passes the parsed JSON (util.py)."""
    content: Any = body
    return cls(SF_URL, status, "Lead", content)


def refused() -> NewConnectionError:
    return NewConnectionError(
        HTTPConnection("127.0.0.1", 9),
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )


# --- simple-salesforce ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "status", "body", "code", "action"),
    [
        (
            SalesforceExpiredSession,
            401,
            [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            "INVALID_SESSION_ID",
            Action.REFRESH_AUTH,
        ),
        (
            SalesforceRefusedRequest,
            403,
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            "REQUEST_LIMIT_EXCEEDED",
            Action.RATE_LIMITED,
        ),
        (
            SalesforceMalformedRequest,
            400,
            [
                {
                    "message": "unable to obtain exclusive access to this record or 1 records: 0035c00000AbCdE",
                    "errorCode": "UNABLE_TO_LOCK_ROW",
                    "fields": [],
                }
            ],
            "UNABLE_TO_LOCK_ROW",
            Action.RETRY,
        ),
        (
            SalesforceMalformedRequest,
            400,
            [
                {
                    "message": "Required fields are missing: [Company]",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": ["Company"],
                }
            ],
            "REQUIRED_FIELD_MISSING",
            Action.SKIP_RECORD,
        ),
        (
            SalesforceResourceNotFound,
            404,
            [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}],
            "ENTITY_IS_DELETED",
            Action.SKIP_RECORD,
        ),
        (
            SalesforceMoreThanOneRecord,
            300,
            ["/services/data/v59.0/sobjects/Lead/00Q1", "/services/data/v59.0/sobjects/Lead/00Q2"],
            None,
            Action.SKIP_RECORD,
        ),
        (SalesforceGeneralError, 503, "Service Unavailable", None, Action.RETRY),
    ],
)
def test_salesforce_errors(
    cls: type[Exception], status: int, body: object, code: str | None, action: Action
) -> None:
    exc = sf_error(cls, status, body)
    failure = describe_salesforce(exc)
    assert failure is not None
    assert failure.status == status
    assert failure.error_code == code
    assert classify(failure.status, failure.error_code).action is action
    if isinstance(body, list) and isinstance(body[0], dict):
        assert failure.message == body[0]["message"]


def test_salesforce_collections_status_code_is_read() -> None:
    body = [
        {"statusCode": "DUPLICATE_VALUE", "message": "duplicate value found", "fields": ["Email"]}
    ]
    failure = describe_salesforce(sf_error(SalesforceMalformedRequest, 400, body))
    assert failure is not None and failure.error_code == "DUPLICATE_VALUE"


def test_salesforce_authentication_failed_keeps_the_oauth_code() -> None:
    failure = describe_salesforce(
        SalesforceAuthenticationFailed("invalid_grant", "authentication failure")
    )
    assert failure is not None
    assert (failure.status, failure.error_code, failure.message) == (
        401,
        "invalid_grant",
        "authentication failure",
    )
    assert classify(failure.status, failure.error_code).action is Action.FAIL


def test_requests_connection_refused_never_reached_the_server() -> None:
    exc = requests.exceptions.ConnectionError(
        MaxRetryError(POOL, "/services/data/v59.0/", reason=refused())
    )
    failure = describe_salesforce(exc)
    assert failure is not None and failure.error_code == CONNECT_FAILED
    assert classify(None, failure.error_code).may_have_applied is False


def test_requests_connection_aborted_may_have_been_applied() -> None:
    exc = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )
    failure = describe_salesforce(exc)
    assert failure is not None and failure.error_code == CONNECTION_LOST
    assert classify(None, failure.error_code).may_have_applied is True


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), TIMED_OUT),
        (requests.exceptions.ConnectTimeout("connect timed out"), CONNECT_FAILED),
        (
            requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
            CONNECTION_LOST,
        ),
        (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), TLS_FAILED),
        (requests.exceptions.ConnectionError("something else"), CONNECTION_LOST),
    ],
)
def test_requests_transport_errors(exc: Exception, code: str) -> None:
    failure = describe_salesforce(exc)
    assert failure is not None and failure.status is None and failure.error_code == code


def test_requests_http_error_from_raise_for_status() -> None:
    response = requests.Response()
    response.status_code = 503
    response.reason = "Service Unavailable"
    response.headers.update({"Retry-After": "4"})
    response._content = json.dumps(
        [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]
    ).encode()
    failure = describe_salesforce(requests.exceptions.HTTPError(response=response))
    assert failure is not None
    assert (failure.status, failure.error_code, failure.headers["retry-after"]) == (
        503,
        "SERVER_UNAVAILABLE",
        "4",
    )


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


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (MaxRetryError(POOL, "/crm/v3/objects/contacts", reason=refused()), None, CONNECT_FAILED),
        (
            MaxRetryError(
                POOL,
                "/crm/v3/objects/contacts",
                reason=ReadTimeoutError(POOL, "/crm/v3/objects/contacts", "Read timed out."),
            ),
            None,
            TIMED_OUT,
        ),
        (
            MaxRetryError(
                POOL,
                "/crm/v3/objects/contacts",
                reason=ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
            ),
            None,
            CONNECTION_LOST,
        ),
        (
            MaxRetryError(
                POOL,
                "/crm/v3/objects/contacts",
                reason=ResponseError(ResponseError.SPECIFIC_ERROR.format(status_code=429)),
            ),
            429,
            None,
        ),
        (
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
            None,
            CONNECTION_LOST,
        ),
        (refused(), None, CONNECT_FAILED),
    ],
)
def test_hubspot_raw_urllib3_errors(exc: Exception, status: int | None, code: str | None) -> None:
    failure = describe_hubspot(exc)
    assert failure is not None
    assert (failure.status, failure.error_code) == (status, code)


# --- httpx ------------------------------------------------------------------------------------


def test_httpx_status_error_with_oauth_body() -> None:
    request = httpx.Request("POST", "https://127.0.0.1:8443/services/oauth2/token")
    response = httpx.Response(
        400,
        json={"error": "invalid_grant", "error_description": "authentication failure"},
        request=request,
    )
    exc = httpx.HTTPStatusError("400", request=request, response=response)
    failure = describe_httpx(exc)
    assert failure is not None
    assert (failure.status, failure.error_code, failure.message) == (
        400,
        "invalid_grant",
        "authentication failure",
    )


def test_httpx_status_error_with_salesforce_body_and_headers() -> None:
    request = httpx.Request("POST", "https://127.0.0.1:8443/services/data/v59.0/composite/sobjects")
    response = httpx.Response(
        503,
        headers={"Retry-After": "9"},
        json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "later"}],
        request=request,
    )
    failure = describe_httpx(httpx.HTTPStatusError("503", request=request, response=response))
    assert failure is not None
    assert (failure.status, failure.error_code, failure.headers["retry-after"]) == (
        503,
        "SERVER_UNAVAILABLE",
        "9",
    )


def test_httpx_status_error_with_non_json_body_uses_reason_phrase() -> None:
    request = httpx.Request("GET", "https://x.test/")
    response = httpx.Response(502, text="", request=request)
    failure = describe_httpx(httpx.HTTPStatusError("502", request=request, response=response))
    assert failure is not None and failure.message == "Bad Gateway" and failure.error_code is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), CONNECT_FAILED),
        (httpx.ConnectTimeout("timed out"), CONNECT_FAILED),
        (httpx.PoolTimeout("pool"), CONNECT_FAILED),
        (httpx.ReadTimeout("timed out"), TIMED_OUT),
        (httpx.WriteTimeout("timed out"), TIMED_OUT),
        (httpx.ReadError("reset"), CONNECTION_LOST),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            CONNECTION_LOST,
        ),
    ],
)
def test_httpx_transport_errors(exc: Exception, code: str) -> None:
    failure = describe_httpx(exc)
    assert failure is not None and failure.status is None and failure.error_code == code


def test_non_http_exceptions_are_not_described() -> None:
    for describer in (
        describe_salesforce,
        describe_hubspot,
        describe_httpx,
        describe_transport,
        describe_any,
    ):
        assert describer(KeyError("Id")) is None
        assert describer(ValueError("x")) is None


def test_describe_any_routes_every_client() -> None:
    sf = describe_any(
        sf_error(
            SalesforceExpiredSession, 401, [{"errorCode": "INVALID_SESSION_ID", "message": "m"}]
        )
    )
    hs = describe_any(ProtocolError("Connection aborted."))
    hx = describe_any(httpx.ConnectError("refused"))
    assert sf is not None and sf.error_code == "INVALID_SESSION_ID"
    assert hs is not None and hs.error_code == CONNECTION_LOST
    assert hx is not None and hx.error_code == CONNECT_FAILED


def test_helpers() -> None:
    assert lower_headers({"Retry-After": "1"}) == {"retry-after": "1"}
    assert lower_headers([("X-A", 2)]) == {"x-a": "2"}
    assert lower_headers(None) == {}
    assert parse_error_body(b"not json") == (None, "not json")
    assert parse_error_body(None) == (None, "")
    assert parse_error_body(
        '{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token"}'
    ) == ("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
    code, message = parse_error_body([{"errorCode": "X", "message": "y" * 2000}])
    assert code == "X" and len(message) == 500
