from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import httpx
import pytest
import respx

from crm_bridge.errors import (
    AuthError,
    ConfigError,
    CrmBridgeError,
    RateLimitedError,
    RecordRejectedError,
    TransientError,
)
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.describe import describe_httpx
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMED_OUT,
    TLS_FAILED,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    call_with_retries,
)

START = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


class Boom(Exception):
    """A stand-in client exception that already knows its Failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.summary())
        self.failure = failure


def describe(exc: BaseException) -> Failure | None:
    return exc.failure if isinstance(exc, Boom) else None


class Script:
    """Raises the given failures in order, then returns 'ok'; counts calls."""

    def __init__(self, failures: Iterable[Failure]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise Boom(self.failures.pop(0))
        return "ok"


def http(status: int, code: str | None = None, **headers: str) -> Failure:
    return Failure(
        status,
        code,
        f"status {status}",
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


def net(code: str) -> Failure:
    return Failure(None, code, code.lower())


def run(
    fn: Callable[[], str],
    clock: FakeClock,
    *,
    idempotent: bool = True,
    **kwargs: object,
) -> str:
    return call_with_retries(fn, idempotent=idempotent, describe=describe, clock=clock, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# --- waits ------------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured_over_backoff(clock: FakeClock) -> None:
    fn = Script([http(429, retry_after="7"), http(503, retry_after="3")])
    assert run(fn, clock) == "ok"
    assert clock.sleeps == [7.0, 3.0]
    assert fn.calls == 3


def test_retry_after_http_date_is_honoured(clock: FakeClock) -> None:
    fn = Script([http(429, retry_after="Fri, 01 Mar 2024 12:00:42 GMT")])
    assert run(fn, clock) == "ok"
    assert clock.sleeps == [pytest.approx(42.0)]


def test_body_hint_used_when_no_retry_after_header(clock: FakeClock) -> None:
    fn = Script([Failure(429, "TEN_SECONDLY_ROLLING", "limit", retry_after=10.0)])
    assert run(fn, clock) == "ok"
    assert clock.sleeps == [10.0]


def test_exponential_fallback_grows_and_is_bounded(clock: FakeClock) -> None:
    fn = Script([http(503)] * 9)
    assert run(fn, clock, max_attempts=10) == "ok"
    assert len(clock.sleeps) == 9
    for n, slept in enumerate(clock.sleeps):
        assert slept <= 30.0
        assert slept >= min(30.0, 0.5 * 2**n)  # jitter only adds
    assert clock.sleeps[0] <= 1.0
    assert clock.sleeps[-1] == 30.0  # capped


def test_wait_longer_than_max_wait_is_not_slept(clock: FakeClock) -> None:
    fn = Script([http(429, retry_after="3600")])
    with pytest.raises(RateLimitedError) as info:
        run(fn, clock, max_wait=60.0)
    assert info.value.retry_after == 3600.0
    assert clock.sleeps == []
    assert fn.calls == 1
    assert "max_wait" in str(info.value)


# --- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [net(TIMED_OUT), net(CONNECTION_LOST), http(500), http(503)])
def test_non_idempotent_call_is_not_repeated_when_it_may_have_been_applied(
    clock: FakeClock, failure: Failure
) -> None:
    fn = Script([failure])
    with pytest.raises(TransientError) as info:
        run(fn, clock, idempotent=False)
    assert not isinstance(info.value, RateLimitedError)
    assert fn.calls == 1
    assert clock.sleeps == []
    assert "may already have been applied" in str(info.value)


@pytest.mark.parametrize("failure", [net(TIMED_OUT), net(CONNECTION_LOST), http(500), http(503)])
def test_idempotent_call_is_repeated_on_the_same_failures(
    clock: FakeClock, failure: Failure
) -> None:
    fn = Script([failure, failure])
    assert run(fn, clock, idempotent=True) == "ok"
    assert fn.calls == 3


@pytest.mark.parametrize(
    "failure",
    [http(429, retry_after="1"), net(CONNECT_FAILED), http(408)],
)
def test_non_idempotent_call_is_repeated_when_the_request_was_not_applied(
    clock: FakeClock, failure: Failure
) -> None:
    fn = Script([failure])
    assert run(fn, clock, idempotent=False) == "ok"
    assert fn.calls == 2


# --- auth -------------------------------------------------------------------------------------


def test_401_refreshes_once_and_resends(clock: FakeClock) -> None:
    refreshes: list[int] = []
    fn = Script([http(401, "INVALID_SESSION_ID")])
    assert run(fn, clock, idempotent=False, on_refresh=lambda: refreshes.append(fn.calls)) == "ok"
    assert refreshes == [1]  # refreshed after the first send, before the resend
    assert fn.calls == 2
    assert clock.sleeps == []  # the resend does not wait


def test_second_401_is_an_auth_error(clock: FakeClock) -> None:
    refreshes: list[int] = []
    fn = Script([http(401, "INVALID_SESSION_ID"), http(401, "INVALID_SESSION_ID")])
    with pytest.raises(AuthError) as info:
        run(fn, clock, on_refresh=lambda: refreshes.append(1))
    assert refreshes == [1]
    assert fn.calls == 2
    assert "still refused after a token refresh" in str(info.value)
    assert isinstance(info.value.__cause__, Boom)


def test_401_without_refresh_hook_is_an_auth_error_at_once(clock: FakeClock) -> None:
    fn = Script([http(401)])
    with pytest.raises(AuthError):
        run(fn, clock)
    assert fn.calls == 1


def test_refresh_failure_propagates_unchanged(clock: FakeClock) -> None:
    def refuse() -> None:
        raise AuthError("token endpoint refused: invalid_grant")

    fn = Script([http(401)])
    with pytest.raises(AuthError, match="invalid_grant"):
        run(fn, clock, on_refresh=refuse)
    assert fn.calls == 1


def test_refresh_resend_does_not_use_up_a_retry(clock: FakeClock) -> None:
    fn = Script([http(401), http(503)])
    assert run(fn, clock, max_attempts=2, on_refresh=lambda: None) == "ok"
    assert fn.calls == 3


# --- giving up --------------------------------------------------------------------------------


def test_exhausted_rate_limit_raises_rate_limited_error_with_retry_after(clock: FakeClock) -> None:
    fn = Script([http(429, retry_after="5")] * 10)
    with pytest.raises(RateLimitedError) as info:
        run(fn, clock, max_attempts=4)
    assert info.value.retry_after == 5.0
    assert fn.calls == 4
    assert clock.sleeps == [5.0, 5.0, 5.0]
    assert "gave up after 4 attempt(s)" in str(info.value)


def test_exhausted_server_errors_raise_transient_error(clock: FakeClock) -> None:
    fn = Script([http(502)] * 10)
    with pytest.raises(TransientError) as info:
        run(fn, clock, max_attempts=3)
    assert type(info.value) is TransientError
    assert fn.calls == 3
    assert "HTTP 502" in str(info.value)


def test_a_row_capped_at_one_attempt_gives_up_at_once(clock: FakeClock) -> None:
    quota = Resolution(Action.RATE_LIMITED, Kind.TRANSIENT, "daily quota", max_attempts=1)
    fn = Script([Failure(403, "QUOTA_EXCEEDED", "TotalRequests Limit exceeded.")])
    with pytest.raises(RateLimitedError) as info:
        run(fn, clock, policy=RetryPolicy({(403, "QUOTA_EXCEEDED"): quota}))
    assert fn.calls == 1
    assert clock.sleeps == []
    assert info.value.retry_after is None
    assert "TotalRequests Limit exceeded." in str(info.value)


def test_skip_record_raises_record_rejected_with_code(clock: FakeClock) -> None:
    fn = Script([Failure(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]")])
    with pytest.raises(RecordRejectedError) as info:
        run(fn, clock)
    assert info.value.code == "REQUIRED_FIELD_MISSING"
    assert "[Company]" in str(info.value)
    assert fn.calls == 1


def test_fail_maps_by_kind_or_explicit_error(clock: FakeClock) -> None:
    with pytest.raises(AuthError):
        run(Script([http(403, "MISSING_SCOPES")]), clock)
    with pytest.raises(ConfigError):
        run(Script([net(TLS_FAILED)]), clock)
    with pytest.raises(CrmBridgeError) as info:
        run(Script([http(405)]), clock)
    assert type(info.value) is CrmBridgeError


def test_connector_row_changes_behaviour(clock: FakeClock) -> None:
    policy = RetryPolicy({(400, "INVALID_OPTION"): Resolution(Action.RETRY, Kind.TRANSIENT, "x")})
    fn = Script([http(400, "INVALID_OPTION")])
    assert run(fn, clock, policy=policy) == "ok"
    assert fn.calls == 2


def test_unrecognised_exceptions_propagate_untouched_and_unretried(clock: FakeClock) -> None:
    calls = 0

    def buggy() -> str:
        nonlocal calls
        calls += 1
        raise KeyError("Id")

    with pytest.raises(KeyError):
        run(buggy, clock)
    assert calls == 1


def test_max_attempts_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        run(Script([]), clock, max_attempts=0)


# --- end to end through httpx -----------------------------------------------------------------


def test_httpx_429_then_200_through_describe_httpx(clock: FakeClock) -> None:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        route = router.post("https://api.example.test/crm/v3/objects/contacts/batch/upsert").mock(
            side_effect=[
                httpx.Response(
                    429,
                    headers={"Retry-After": "2"},
                    json={
                        "status": "error",
                        "message": "You have reached your ten_secondly_rolling limit.",
                        "errorType": "RATE_LIMIT",
                        "policyName": "TEN_SECONDLY_ROLLING",
                    },
                ),
                httpx.Response(200, json={"results": []}),
            ]
        )
        with httpx.Client() as client:

            def upsert() -> str:
                response = client.post(
                    "https://api.example.test/crm/v3/objects/contacts/batch/upsert",
                    json={"inputs": []},
                )
                response.raise_for_status()
                return str(response.json()["results"])

            result = call_with_retries(
                upsert, idempotent=True, describe=describe_httpx, clock=clock
            )
    assert result == "[]"
    assert route.call_count == 2
    assert clock.sleeps == [2.0]


def test_httpx_connect_error_retried_for_post(clock: FakeClock) -> None:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        route = router.post("https://api.example.test/create").mock(
            side_effect=[httpx.ConnectError("[Errno 111] Connection refused"), httpx.Response(201)]
        )
        with httpx.Client() as client:

            def create() -> str:
                response = client.post("https://api.example.test/create")
                response.raise_for_status()
                return str(response.status_code)

            assert (
                call_with_retries(create, idempotent=False, describe=describe_httpx, clock=clock)
                == "201"
            )
    assert route.call_count == 2
    assert len(clock.sleeps) == 1
