"""The vendor-neutral describers: httpx, requests and urllib3 errors, and error bodies.

The vendor clients' describers are tested next to their connectors:
tests/connectors/salesforce/test_describe.py and tests/connectors/hubspot/test_describe.py.
"""

from __future__ import annotations

import json

import httpx
import pytest
import requests
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)

from crm_bridge.http.describe import (
    describe_httpx,
    describe_transport,
    first_of,
    lower_headers,
    parse_error_body,
)
from crm_bridge.http.headers import int_header
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMED_OUT,
    TLS_FAILED,
    Failure,
    classify,
)

POOL = urllib3.HTTPConnectionPool("127.0.0.1", 9)


def refused() -> NewConnectionError:
    return NewConnectionError(
        HTTPConnection("127.0.0.1", 9),
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )


# --- requests ---------------------------------------------------------------------------------


def test_requests_connection_refused_never_reached_the_server() -> None:
    exc = requests.exceptions.ConnectionError(
        MaxRetryError(POOL, "/services/data/v59.0/", reason=refused())
    )
    failure = describe_transport(exc)
    assert failure is not None and failure.error_code == CONNECT_FAILED
    assert classify(None, failure.error_code).may_have_applied is False


def test_requests_connection_aborted_may_have_been_applied() -> None:
    exc = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )
    failure = describe_transport(exc)
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
    failure = describe_transport(exc)
    assert failure is not None and failure.status is None and failure.error_code == code


def test_requests_http_error_from_raise_for_status() -> None:
    response = requests.Response()
    response.status_code = 503
    response.reason = "Service Unavailable"
    response.headers.update({"Retry-After": "4"})
    response._content = json.dumps(
        [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]
    ).encode()
    failure = describe_transport(requests.exceptions.HTTPError(response=response))
    assert failure is not None
    assert (failure.status, failure.error_code, failure.headers["retry-after"]) == (
        503,
        "SERVER_UNAVAILABLE",
        "4",
    )


# --- urllib3 ----------------------------------------------------------------------------------


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
def test_raw_urllib3_errors(exc: Exception, status: int | None, code: str | None) -> None:
    failure = describe_transport(exc)
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


def test_httpx_status_error_with_error_list_body_and_headers() -> None:
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


def test_httpx_429_gets_no_vendor_window_hint() -> None:
    request = httpx.Request("GET", "https://x.test/")
    response = httpx.Response(
        429,
        headers={"X-RateLimit-Interval-Milliseconds": "10000"},
        json={"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "message": "slow"},
        request=request,
    )
    failure = describe_httpx(httpx.HTTPStatusError("429", request=request, response=response))
    assert failure is not None and failure.error_code == "TEN_SECONDLY_ROLLING"
    assert failure.retry_after is None  # vendor hints are the vendor's describer's job


def test_non_http_exceptions_are_not_described() -> None:
    for describer in (describe_httpx, describe_transport):
        assert describer(KeyError("Id")) is None
        assert describer(ValueError("x")) is None


def test_first_of_asks_each_describer_in_turn() -> None:
    class Mine(Exception):
        pass

    def mine(exc: BaseException) -> Failure | None:
        return Failure(418, "MINE", "mine") if isinstance(exc, Mine) else None

    describe = first_of(describe_httpx, mine, describe_transport)
    hx = describe(httpx.ConnectError("refused"))
    own = describe(Mine())
    raw = describe(ProtocolError("Connection aborted."))
    assert hx is not None and hx.error_code == CONNECT_FAILED
    assert own is not None and own.error_code == "MINE"
    assert raw is not None and raw.error_code == CONNECTION_LOST
    assert describe(KeyError("Id")) is None


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
    assert parse_error_body({"error": "invalid_grant", "error_description": "no"}) == (
        "invalid_grant",
        "no",
    )
    assert parse_error_body({"status": "error", "message": "m"}) == (None, "m")
    assert int_header({"x-n": " 7 "}, "x-n") == 7
    assert int_header({"x-n": "seven"}, "x-n") is None
    assert int_header({}, "x-n") is None
