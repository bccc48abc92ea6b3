from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import urllib3
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
from urllib3.exceptions import MaxRetryError, NewConnectionError

from crm_bridge.connectors.salesforce.errors import (
    SALESFORCE_POLICY,
    SALESFORCE_ROWS,
    describe_salesforce,
)
from crm_bridge.errors import CrmBridgeError, RateLimitedError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    DEFAULT_POLICY,
    TIMED_OUT,
    Action,
    Failure,
    call_with_retries,
)

SF_URL = "https://127.0.0.1:8443/services/data/v59.0/sobjects/Lead/"
POOL = urllib3.HTTPConnectionPool("127.0.0.1", 9)
classify = SALESFORCE_POLICY.classify


def sf_error(cls: type[Exception], status: int, body: object) -> Exception:
    """simple-salesforce annotates ``content`` as bytes but passes the parsed JSON (util.py)."""
    content: Any = body
    return cls(SF_URL, status, "Lead", content)


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


def test_requests_errors_under_simple_salesforce_fall_back_to_transport() -> None:
    refused = NewConnectionError(HTTPConnection("127.0.0.1", 9), "Connection refused")
    failure = describe_salesforce(
        requests.exceptions.ConnectionError(MaxRetryError(POOL, "/services/data/", reason=refused))
    )
    assert failure is not None and failure.error_code == CONNECT_FAILED
    failure = describe_salesforce(requests.exceptions.ReadTimeout("read timed out"))
    assert failure is not None and failure.error_code == TIMED_OUT
    response = requests.Response()
    response.status_code = 503
    response._content = json.dumps([{"errorCode": "SERVER_UNAVAILABLE", "message": "x"}]).encode()
    failure = describe_salesforce(requests.exceptions.HTTPError(response=response))
    assert failure is not None and (failure.status, failure.error_code) == (
        503,
        "SERVER_UNAVAILABLE",
    )
    assert describe_salesforce(KeyError("Id")) is None


# --- the Salesforce retry rows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "action", "may_have_applied"),
    [
        (403, "REQUEST_LIMIT_EXCEEDED", Action.RATE_LIMITED, False),
        (400, "UNABLE_TO_LOCK_ROW", Action.RETRY, False),
        (500, "UNABLE_TO_LOCK_ROW", Action.RETRY, False),  # the code wins under any status
        (400, "INVALID_FIELD", Action.FAIL, False),
        (400, "MALFORMED_QUERY", Action.FAIL, False),
        (400, "JSON_PARSER_ERROR", Action.FAIL, False),
        (401, "INVALID_SESSION_ID", Action.REFRESH_AUTH, False),  # generic rows still there
        (400, "REQUIRED_FIELD_MISSING", Action.SKIP_RECORD, False),
    ],
)
def test_salesforce_rows(status: int, code: str, action: Action, may_have_applied: bool) -> None:
    resolution = classify(status, code)
    assert resolution.action is action
    assert resolution.may_have_applied is may_have_applied
    assert resolution.message


def test_org_limit_gives_up_at_once() -> None:
    assert classify(403, "REQUEST_LIMIT_EXCEEDED").max_attempts == 1


def test_salesforce_rows_are_not_in_the_generic_table() -> None:
    for status, code in SALESFORCE_ROWS:
        assert DEFAULT_POLICY.classify(status, code) is not SALESFORCE_ROWS[(status, code)]
    assert dict(SALESFORCE_POLICY.extra) == dict(SALESFORCE_ROWS)


# --- the rows in the retry loop ---------------------------------------------------------------


class Boom(Exception):
    """A stand-in client exception that already knows its Failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.summary())
        self.failure = failure


class Script:
    """Raises the given failures in order, then returns 'ok'; counts calls."""

    def __init__(self, *failures: Failure) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise Boom(self.failures.pop(0))
        return "ok"


def run(fn: Callable[[], str], clock: FakeClock, *, idempotent: bool) -> str:
    return call_with_retries(
        fn,
        idempotent=idempotent,
        describe=lambda exc: exc.failure if isinstance(exc, Boom) else None,
        policy=SALESFORCE_POLICY,
        clock=clock,
    )


def test_org_limit_in_the_loop_gives_up_at_once_without_sleeping() -> None:
    clock = FakeClock()
    fn = Script(Failure(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    with pytest.raises(RateLimitedError) as info:
        run(fn, clock, idempotent=True)
    assert fn.calls == 1
    assert clock.sleeps == []
    assert info.value.retry_after is None
    assert "TotalRequests Limit exceeded." in str(info.value)


def test_locked_row_is_resent_even_for_a_create() -> None:
    clock = FakeClock()
    fn = Script(Failure(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access"))
    assert run(fn, clock, idempotent=False) == "ok"
    assert fn.calls == 2


def test_malformed_query_is_our_bug() -> None:
    with pytest.raises(CrmBridgeError) as info:
        run(
            Script(Failure(400, "MALFORMED_QUERY", "unexpected token")),
            FakeClock(),
            idempotent=True,
        )
    assert type(info.value) is CrmBridgeError
