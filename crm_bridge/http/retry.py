"""The retry policy as a table, and the one loop (tenacity) that runs it.

Why a table: whether to retry depends on *what went wrong* (a status code, a vendor error code, a
dropped connection), not on which connector made the call.  Keeping the decisions in one mapping
of ``(status, error_code) -> Resolution`` makes them reviewable in one place, lets a connector add
its vendor's codes as data (``DEFAULT_POLICY.extended({...})``, kept in the connector's own
``errors.py``) instead of overriding methods, and lets tests check each row without any HTTP.

How a call goes:

1. ``fn()`` raises; a ``describe`` function (:mod:`crm_bridge.http.describe` for httpx, requests
   and urllib3; the connector's ``errors.py`` for its vendor client) turns the exception into a
   :class:`Failure`, or returns ``None`` for anything that is not an HTTP failure (a bug, a
   ``KeyError``) -- those propagate untouched, never retried.
2. :meth:`RetryPolicy.classify` looks the failure up and returns a :class:`Resolution`.
3. The loop retries, refreshes auth once, or gives up by raising the matching error from
   :mod:`crm_bridge.errors`, chained to the original exception.

Two rules matter most:

* **The server's word wins.** A ``Retry-After`` header (seconds or an HTTP date) or a vendor
  reset hint sets the wait; only without one do we fall back to jittered exponential backoff.
  A wait longer than ``max_wait`` is not slept inside a call: we raise
  :class:`~crm_bridge.errors.RateLimitedError` carrying ``retry_after`` so the engine can stop
  the cycle and come back later.
* **Never repeat a write that may have happened.** A timeout, a dropped response or a 5xx leaves
  us not knowing whether a non-idempotent request (a create, a POST) was applied, so it is not
  retried.  Failures that prove the request was *not* applied -- 429, connection refused, 401,
  a locked row -- are retried for every call.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar

import tenacity
from tenacity.wait import wait_base

from crm_bridge.errors import (
    AuthError,
    ConfigError,
    ConfigProblem,
    CrmBridgeError,
    RateLimitedError,
    RecordRejectedError,
    TransientError,
)
from crm_bridge.http.clock import Clock, SystemClock
from crm_bridge.log import get_logger

__all__ = [
    "CONNECTION_LOST",
    "CONNECT_FAILED",
    "DEFAULT_POLICY",
    "DEFAULT_TABLE",
    "TIMED_OUT",
    "TLS_FAILED",
    "Action",
    "Describe",
    "Failure",
    "Kind",
    "Resolution",
    "RetryPolicy",
    "TableKey",
    "call_with_retries",
    "classify",
    "default_backoff",
    "parse_retry_after",
]

T = TypeVar("T")

_log = get_logger(__name__)

# Pseudo error codes for failures that never produced an HTTP status.  The describe functions set
# them (with ``status=None``) so transport failures go through the same table as HTTP errors.
CONNECT_FAILED: Final = "CONNECT_FAILED"
"""The request never reached the server (refused, DNS, connect timeout, pool timeout)."""
CONNECTION_LOST: Final = "CONNECTION_LOST"
"""The connection dropped after the request was (maybe) sent: it may have been applied."""
TIMED_OUT: Final = "TIMED_OUT"
"""Sent, then no answer in time (read/write timeout): it may have been applied."""
TLS_FAILED: Final = "TLS_FAILED"
"""The TLS handshake failed; retrying cannot help until the CA bundle or ``verify`` is fixed."""


class Action(StrEnum):
    """What the loop does about a failure."""

    RETRY = "retry"
    """Try again after backoff (or ``Retry-After``); gives up with ``TransientError``."""
    RATE_LIMITED = "rate_limited"
    """The vendor said slow down; wait as told; gives up with ``RateLimitedError``."""
    REFRESH_AUTH = "refresh_auth"
    """Refresh the token once and resend once; a second refusal is an ``AuthError``."""
    FAIL = "fail"
    """Stop now: retrying cannot help.  The error raised follows :class:`Kind`."""
    SKIP_RECORD = "skip_record"
    """This record was refused; raise ``RecordRejectedError`` so it goes to the dead letters."""


class Kind(StrEnum):
    """Who has to act for the failure to go away (the Airbyte ``FailureType`` idea)."""

    CONFIG = "config"
    """A person: credentials, permissions, mapping or the record's data must change."""
    TRANSIENT = "transient"
    """Time: the same request will probably work later."""
    SYSTEM = "system"
    """crm-bridge's developers: we sent something the vendor can never accept."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """One row of the table: what to do, who must act, and a sentence for the error message.

    ``may_have_applied`` marks failures after which a non-idempotent request may already have
    taken effect, so it must not be repeated.  ``max_attempts`` caps attempts for this failure
    below the call's own limit (``1`` = give up at once, e.g. a daily quota that will not reset
    within a call).  ``error`` overrides the error class raised on giving up; by default it
    follows ``action`` (and ``kind`` for ``FAIL``).
    """

    action: Action
    kind: Kind
    message: str
    may_have_applied: bool = False
    max_attempts: int | None = None
    error: type[CrmBridgeError] | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A client library's exception, reduced to what the policy needs.

    ``headers`` keys are lower-case.  ``retry_after`` is a wait hint (seconds) the describe
    function derived from the body or vendor headers, e.g. a rate-limit window; the standard
    ``Retry-After`` header stays in ``headers`` and is read by :meth:`wait_hint`, because an HTTP
    date can only be turned into seconds with the caller's clock.
    """

    status: int | None
    error_code: str | None
    message: str
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def wait_hint(self, now: datetime) -> float | None:
        """Seconds the server asked us to wait: ``Retry-After`` first, then ``retry_after``."""
        raw = self.headers.get("retry-after")
        if raw is not None:
            parsed = parse_retry_after(raw, now)
            if parsed is not None:
                return parsed
        return self.retry_after

    def summary(self) -> str:
        """``HTTP 429 TEN_SECONDLY_ROLLING: You have reached...`` -- for error messages and logs."""
        head = " ".join(
            part
            for part in (
                f"HTTP {self.status}" if self.status is not None else None,
                self.error_code,
            )
            if part
        )
        if head and self.message:
            return f"{head}: {self.message}"
        return head or self.message or "unknown failure"


Describe = Callable[[BaseException], Failure | None]
"""Turns a client exception into a :class:`Failure`; ``None`` means "not an HTTP failure"."""

TableKey = tuple[int | None, str | None]
"""``(status, error_code)``; ``None`` in either place matches any value."""


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); ``None`` if junk.

    A date in the past means "now" (0.0), not a negative wait.
    """
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _retry(message: str, *, applied: bool) -> Resolution:
    return Resolution(Action.RETRY, Kind.TRANSIENT, message, may_have_applied=applied)


def _skip(message: str) -> Resolution:
    return Resolution(Action.SKIP_RECORD, Kind.CONFIG, message)


_OAUTH_REFUSED = Resolution(
    Action.FAIL, Kind.CONFIG, "the token endpoint refused our credentials", error=AuthError
)

DEFAULT_TABLE: Final[Mapping[TableKey, Resolution]] = MappingProxyType(
    {
        # --- rate limits -------------------------------------------------------------------
        (429, None): Resolution(Action.RATE_LIMITED, Kind.TRANSIENT, "rate limited by the vendor"),
        # --- auth ----------------------------------------------------------------------------
        (401, None): Resolution(Action.REFRESH_AUTH, Kind.CONFIG, "credentials refused"),
        (403, None): Resolution(
            Action.FAIL,
            Kind.CONFIG,
            "access refused: the integration user or app lacks a permission or scope",
            error=AuthError,
        ),
        (None, "invalid_grant"): _OAUTH_REFUSED,
        (None, "invalid_client"): _OAUTH_REFUSED,
        (None, "unauthorized_client"): _OAUTH_REFUSED,
        (None, "unsupported_grant_type"): _OAUTH_REFUSED,
        # --- server and transport trouble ----------------------------------------------------
        # 408: the server gave up waiting for our request, so it did not process it.
        (408, None): _retry("the server timed out waiting for the request", applied=False),
        (500, None): _retry("vendor internal error", applied=True),
        (502, None): _retry("bad gateway", applied=True),
        (503, None): _retry("vendor unavailable", applied=True),
        (504, None): _retry("gateway timeout", applied=True),
        (None, CONNECT_FAILED): _retry("could not connect", applied=False),
        (None, CONNECTION_LOST): _retry("connection dropped mid-request", applied=True),
        (None, TIMED_OUT): _retry("no answer in time", applied=True),
        (None, TLS_FAILED): Resolution(
            Action.FAIL, Kind.CONFIG, "TLS handshake failed; check the CA bundle / verify setting"
        ),
        # --- our requests or the record's data -----------------------------------------------
        (300, None): _skip("the external id matches several records"),
        (400, None): _skip("the record was refused"),
        (404, None): _skip("the record does not exist (or was deleted)"),
        (409, None): _skip("the record conflicts with an existing one"),
        (422, None): _skip("the record was refused as unprocessable"),
    }
)
"""The rows every connector starts from; see ``docs/http.md`` for the reasoning per row.

Only statuses, transport pseudo codes and RFC 6749 OAuth codes live here: what one vendor's error
codes mean is that vendor's knowledge, so each connector adds its rows in its own ``errors.py``
(``crm_bridge/connectors/<vendor>/errors.py``) and builds its policy with
``DEFAULT_POLICY.extended(rows)``.
"""

_SERVER_ERROR = _retry("vendor server error", applied=True)
_CLIENT_ERROR = Resolution(Action.FAIL, Kind.SYSTEM, "the vendor refused the request")
_UNKNOWN_TRANSPORT = _retry("transport failure", applied=True)
_UNEXPECTED = Resolution(Action.FAIL, Kind.SYSTEM, "unexpected response")


class RetryPolicy:
    """The generic table plus a connector's own rows; rows in ``extra`` win on the same key.

    A connector's policy is ``DEFAULT_POLICY.extended(<its vendor's rows>)``; a caller who wants
    to change one row extends the connector's policy again, so generic, vendor and caller rows
    stack in that order.

    Lookup order, most specific first: ``(status, code)``, ``(None, code)`` (the code under any
    status), ``(status, None)``, then the status class (5xx retry, other 4xx fail).  Example::

        policy = DEFAULT_POLICY.extended(
            {(400, "INVALID_OPTION"): Resolution(Action.SKIP_RECORD, Kind.CONFIG, "bad picklist value")}
        )
    """

    __slots__ = ("_table", "extra")

    def __init__(self, extra: Mapping[TableKey, Resolution] | None = None) -> None:
        self.extra: Mapping[TableKey, Resolution] = MappingProxyType(dict(extra or {}))
        self._table: Mapping[TableKey, Resolution] = MappingProxyType(
            {**DEFAULT_TABLE, **self.extra}
        )

    def extended(self, extra: Mapping[TableKey, Resolution]) -> RetryPolicy:
        """A new policy with ``extra`` rows added over this one's."""
        return RetryPolicy({**self.extra, **extra})

    def classify(self, status: int | None, error_code: str | None) -> Resolution:
        """The resolution for a failure; never raises, unknown failures get a safe default."""
        table = self._table
        if error_code is not None:
            for key in ((status, error_code), (None, error_code)):
                if key in table:
                    return table[key]
        if status is None:
            return _UNKNOWN_TRANSPORT
        if (status, None) in table:
            return table[(status, None)]
        if 500 <= status <= 599:
            return _SERVER_ERROR
        if 400 <= status <= 499:
            return _CLIENT_ERROR
        return _UNEXPECTED

    def __repr__(self) -> str:
        return f"RetryPolicy(extra={dict(self.extra)!r})"


DEFAULT_POLICY: Final = RetryPolicy()


def classify(status: int | None, error_code: str | None) -> Resolution:
    """:meth:`RetryPolicy.classify` on :data:`DEFAULT_POLICY`."""
    return DEFAULT_POLICY.classify(status, error_code)


def default_backoff() -> wait_base:
    """Jittered exponential backoff: about 0.5, 1, 2, 4 ... seconds, never more than 30."""
    return tenacity.wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)


class _Classified(Exception):
    """Carries a classified failure through tenacity; never escapes this module."""

    def __init__(self, original: Exception, failure: Failure, resolution: Resolution) -> None:
        super().__init__(failure.summary())
        self.original = original
        self.failure = failure
        self.resolution = resolution


class _Call:
    """State of one ``call_with_retries``: the decision, wait and attempt hooks tenacity calls."""

    def __init__(
        self,
        *,
        idempotent: bool,
        describe: Describe,
        policy: RetryPolicy,
        clock: Clock,
        max_attempts: int,
        max_wait: float,
        backoff: wait_base,
        on_refresh: Callable[[], None] | None,
    ) -> None:
        self.idempotent = idempotent
        self.describe = describe
        self.policy = policy
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.backoff = backoff
        self.on_refresh = on_refresh
        self.refreshed = False
        self.refresh_pending = False
        self.give_up_note = ""

    def attempt(self, fn: Callable[[], T]) -> T:
        if self.refresh_pending:
            self.refresh_pending = False
            assert self.on_refresh is not None
            self.on_refresh()
        try:
            return fn()
        except Exception as exc:
            failure = self.describe(exc)
            if failure is None:
                raise
            resolution = self.policy.classify(failure.status, failure.error_code)
            raise _Classified(exc, failure, resolution) from exc

    def should_retry(self, state: tenacity.RetryCallState) -> bool:
        classified = _classified(state)
        if classified is None:
            return False
        action = classified.resolution.action
        if action is Action.REFRESH_AUTH:
            if self.on_refresh is None or self.refreshed:
                return False
            self.refreshed = self.refresh_pending = True
            return True
        if action not in (Action.RETRY, Action.RATE_LIMITED):
            return False
        if classified.resolution.may_have_applied and not self.idempotent:
            self.give_up_note = "not retried: the request may already have been applied"
            return False
        limit = min(self.max_attempts, classified.resolution.max_attempts or self.max_attempts)
        attempts = state.attempt_number - (1 if self.refreshed else 0)
        if attempts >= limit:
            self.give_up_note = f"gave up after {state.attempt_number} attempt(s)"
            return False
        hint = classified.failure.wait_hint(self.clock.now())
        if hint is not None and hint > self.max_wait:
            self.give_up_note = f"the vendor asked for {hint:g}s, more than max_wait"
            return False
        return True

    def wait(self, state: tenacity.RetryCallState) -> float:
        classified = _classified(state)
        if classified is None or classified.resolution.action is Action.REFRESH_AUTH:
            return 0.0
        hint = classified.failure.wait_hint(self.clock.now())
        if hint is not None:
            return hint
        return float(self.backoff(state))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.sleep(seconds)

    def log_retry(self, state: tenacity.RetryCallState) -> None:
        classified = _classified(state)
        if classified is None:  # pragma: no cover - should_retry said no already
            return
        _log.warning(
            "http.retry",
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
            action=str(classified.resolution.action),
            failure=classified.failure.summary(),
        )

    def error_for(self, classified: _Classified) -> CrmBridgeError:
        resolution, failure = classified.resolution, classified.failure
        message = f"{resolution.message} ({failure.summary()})"
        if resolution.action is Action.REFRESH_AUTH:
            message += (
                "; still refused after a token refresh"
                if self.refreshed
                else "; no token refresh available"
            )
        elif self.give_up_note:
            message += f"; {self.give_up_note}"
        cls = resolution.error or _default_error(resolution)
        if issubclass(cls, RateLimitedError):
            return cls(message, retry_after=failure.wait_hint(self.clock.now()))
        if issubclass(cls, RecordRejectedError):
            return cls(message, code=failure.error_code)
        if issubclass(cls, ConfigError):
            return ConfigError([ConfigProblem(key="connector", problem=message)], heading=message)
        return cls(message)


def _classified(state: tenacity.RetryCallState) -> _Classified | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    exc = outcome.exception()
    return exc if isinstance(exc, _Classified) else None


def _default_error(resolution: Resolution) -> type[CrmBridgeError]:
    by_action: dict[Action, type[CrmBridgeError]] = {
        Action.RETRY: TransientError,
        Action.RATE_LIMITED: RateLimitedError,
        Action.REFRESH_AUTH: AuthError,
        Action.SKIP_RECORD: RecordRejectedError,
    }
    if resolution.action in by_action:
        return by_action[resolution.action]
    by_kind: dict[Kind, type[CrmBridgeError]] = {
        Kind.CONFIG: ConfigError,
        Kind.TRANSIENT: TransientError,
        Kind.SYSTEM: CrmBridgeError,
    }
    return by_kind[resolution.kind]


def call_with_retries(
    fn: Callable[[], T],
    *,
    idempotent: bool,
    describe: Describe,
    policy: RetryPolicy = DEFAULT_POLICY,
    clock: Clock | None = None,
    max_attempts: int = 5,
    max_wait: float = 60.0,
    backoff: wait_base | None = None,
    on_refresh: Callable[[], None] | None = None,
) -> T:
    """Call ``fn()`` until it succeeds or the policy says stop; return its result.

    ``idempotent`` says whether repeating the request is harmless (reads, upserts on an external
    id, deletes).  ``on_refresh`` is called once, before the single resend, when the vendor
    answers 401; leave it ``None`` when the transport refreshes itself (:class:`BearerAuth`).
    ``max_attempts`` counts sends, not counting the post-refresh resend.

    Raises the :mod:`crm_bridge.errors` class the resolution maps to (``TransientError``,
    ``RateLimitedError`` with ``retry_after``, ``AuthError``, ``RecordRejectedError`` with
    ``code``, ``ConfigError``), chained to the client's exception.  Exceptions ``describe``
    does not recognise propagate unchanged on the first occurrence.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    call = _Call(
        idempotent=idempotent,
        describe=describe,
        policy=policy,
        clock=clock or SystemClock(),
        max_attempts=max_attempts,
        max_wait=max_wait,
        backoff=backoff or default_backoff(),
        on_refresh=on_refresh,
    )
    retrying = tenacity.Retrying(
        retry=call.should_retry,
        wait=call.wait,
        sleep=call.sleep,
        before_sleep=call.log_retry,
        reraise=True,
    )
    try:
        result: T = retrying(call.attempt, fn)
    except _Classified as classified:
        raise call.error_for(classified) from classified.original
    return result
