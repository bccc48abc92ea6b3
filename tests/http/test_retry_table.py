from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_bridge.errors import AuthError
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    DEFAULT_POLICY,
    DEFAULT_TABLE,
    TIMED_OUT,
    TLS_FAILED,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    classify,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "code", "action", "may_have_applied"),
    [
        (429, None, Action.RATE_LIMITED, False),
        (429, "TEN_SECONDLY_ROLLING", Action.RATE_LIMITED, False),
        (401, "INVALID_SESSION_ID", Action.REFRESH_AUTH, False),
        (403, "MISSING_SCOPES", Action.FAIL, False),
        (408, None, Action.RETRY, False),
        (500, None, Action.RETRY, True),
        (502, None, Action.RETRY, True),
        (503, None, Action.RETRY, True),
        (504, None, Action.RETRY, True),
        (599, None, Action.RETRY, True),
        (None, CONNECT_FAILED, Action.RETRY, False),
        (None, TIMED_OUT, Action.RETRY, True),
        (None, CONNECTION_LOST, Action.RETRY, True),
        (None, None, Action.RETRY, True),
        (400, "REQUIRED_FIELD_MISSING", Action.SKIP_RECORD, False),
        (404, "ENTITY_IS_DELETED", Action.SKIP_RECORD, False),
        (409, "CONFLICT", Action.SKIP_RECORD, False),
        (422, None, Action.SKIP_RECORD, False),
        (400, "SOME_VENDOR_CODE", Action.SKIP_RECORD, False),  # unknown codes: by status
        (405, None, Action.FAIL, False),
        (400, "invalid_grant", Action.FAIL, False),
    ],
)
def test_default_table(
    status: int | None, code: str | None, action: Action, may_have_applied: bool
) -> None:
    resolution = classify(status, code)
    assert resolution.action is action
    assert resolution.may_have_applied is may_have_applied
    assert resolution.message


def test_generic_table_holds_no_vendor_error_codes() -> None:
    """Vendor codes are rows in each connector's errors.py; here only statuses and pseudo codes."""
    codes = {code for _, code in DEFAULT_TABLE if code is not None}
    assert codes == {
        CONNECT_FAILED,
        CONNECTION_LOST,
        TIMED_OUT,
        TLS_FAILED,
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "unsupported_grant_type",
    }
    assert classify(429, "ANY_POLICY").max_attempts is None


def test_permission_failures_raise_auth_error() -> None:
    assert classify(403, None).error is AuthError
    assert classify(400, "invalid_grant").error is AuthError


def test_connector_rows_extend_and_override_without_touching_the_default() -> None:
    picklist = Resolution(Action.SKIP_RECORD, Kind.CONFIG, "bad picklist value")
    slow_503 = Resolution(Action.RATE_LIMITED, Kind.TRANSIENT, "maintenance window")
    policy = DEFAULT_POLICY.extended({(400, "INVALID_OPTION"): picklist, (503, None): slow_503})
    assert policy.classify(400, "INVALID_OPTION") is picklist
    assert policy.classify(503, None) is slow_503
    assert policy.classify(429, None).action is Action.RATE_LIMITED  # defaults still there
    assert DEFAULT_POLICY.classify(503, None).action is Action.RETRY  # default unchanged
    twice = policy.extended({(400, "X"): picklist})
    assert twice.classify(400, "INVALID_OPTION") is picklist  # rows accumulate
    assert "INVALID_OPTION" in repr(policy)


def test_specific_code_beats_status_and_wildcard_code_beats_status() -> None:
    generic = Resolution(Action.FAIL, Kind.SYSTEM, "generic")
    specific = Resolution(Action.RETRY, Kind.TRANSIENT, "specific")
    anywhere = Resolution(Action.SKIP_RECORD, Kind.CONFIG, "anywhere")
    policy = RetryPolicy(
        {(418, None): generic, (418, "TEAPOT"): specific, (None, "KETTLE"): anywhere}
    )
    assert policy.classify(418, "TEAPOT") is specific
    assert policy.classify(418, "KETTLE") is anywhere
    assert policy.classify(418, "OTHER") is generic
    assert policy.classify(418, None) is generic


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)
    assert parse_retry_after("  7 ", now) == 7.0
    assert parse_retry_after("1.5", now) == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0  # past -> now
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None


def test_failure_wait_hint_prefers_retry_after_header_over_body_hint() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with_header = Failure(429, None, "slow down", retry_after=10.0, headers={"retry-after": "2"})
    assert with_header.wait_hint(now) == 2.0
    junk_header = Failure(429, None, "slow down", retry_after=10.0, headers={"retry-after": "?"})
    assert junk_header.wait_hint(now) == 10.0
    assert Failure(429, None, "").wait_hint(now) is None


def test_failure_summary() -> None:
    assert Failure(429, "DAILY", "limit").summary() == "HTTP 429 DAILY: limit"
    assert Failure(None, CONNECT_FAILED, "refused").summary() == "CONNECT_FAILED: refused"
    assert Failure(None, None, "").summary() == "unknown failure"
