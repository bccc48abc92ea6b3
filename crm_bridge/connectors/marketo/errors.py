"""How Marketo reports failures, and what the retry loop does about each.

Why a vendor module: Marketo answers almost every failure with **HTTP 200** and ``success:
false`` plus ``errors: [{code, message}]`` (codes are strings), so nothing generic can see them.
:class:`MarketoApiError` carries such an envelope out of the client, :func:`describe_marketo`
turns it into a :class:`~crm_bridge.http.Failure` (status 200, the vendor code), and
:data:`MARKETO_ROWS` says what each code means to the shared retry table.  Per-record problems
(``status: "skipped"`` with 1xxx ``reasons``) are not exceptions at all: the writer maps them to
failed :class:`~crm_bridge.connector.WriteResult` values.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from crm_bridge.errors import AuthError
from crm_bridge.http.describe import clip, describe_httpx
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    TableKey,
)

__all__ = [
    "DAILY_QUOTA",
    "MARKETO_POLICY",
    "MARKETO_ROWS",
    "RATE_LIMIT",
    "TOKEN_CODES",
    "TOO_MANY_IN_FLIGHT",
    "MarketoApiError",
    "make_describe",
    "seconds_to_central_midnight",
]

RATE_LIMIT: Final = "606"
TOO_MANY_IN_FLIGHT: Final = "615"
DAILY_QUOTA: Final = "607"
TOKEN_CODES: Final = frozenset({"600", "601", "602"})
"""Empty, invalid, expired access token: fetch a token and resend once."""

_CENTRAL = ZoneInfo("America/Chicago")


class MarketoApiError(Exception):
    """A ``success: false`` envelope: the first error's ``code`` and ``message``.

    The message is the vendor's text, never the URL or the headers (the token travels in the
    ``Authorization`` header, but a query string may still hold values we would rather not log).
    """

    def __init__(self, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(f"Marketo {code}: {message}")
        self.code = code
        self.message = message
        self.errors = errors or [{"code": code, "message": message}]


def _fail(message: str, kind: Kind = Kind.SYSTEM, **extra: Any) -> Resolution:
    return Resolution(Action.FAIL, kind, message, **extra)


MARKETO_ROWS: Final[Mapping[TableKey, Resolution]] = MappingProxyType(
    {
        **{
            (None, code): Resolution(
                Action.REFRESH_AUTH, Kind.CONFIG, "Marketo refused the access token"
            )
            for code in TOKEN_CODES
        },
        (None, "603"): _fail(
            "Marketo denied access (API user role or IP allow-list)", Kind.CONFIG, error=AuthError
        ),
        (None, "604"): Resolution(
            Action.RETRY, Kind.TRANSIENT, "Marketo timed out", may_have_applied=True
        ),
        (None, RATE_LIMIT): Resolution(
            Action.RATE_LIMITED, Kind.TRANSIENT, "Marketo rate limit (calls per 20 s) exceeded"
        ),
        (None, TOO_MANY_IN_FLIGHT): Resolution(
            Action.RATE_LIMITED, Kind.TRANSIENT, "Marketo concurrent call limit reached"
        ),
        # The day resets at midnight US Central: waiting inside a call cannot help, and every
        # retry would be refused again -- stop the cycle at once (no retry storm).
        (None, DAILY_QUOTA): Resolution(
            Action.RATE_LIMITED,
            Kind.TRANSIENT,
            "Marketo daily API quota reached; it resets at midnight US Central",
            max_attempts=1,
        ),
        (None, "608"): Resolution(Action.RETRY, Kind.TRANSIENT, "Marketo API unavailable"),
        (None, "611"): Resolution(
            Action.RETRY, Kind.TRANSIENT, "Marketo system error", may_have_applied=True
        ),
        (None, "713"): Resolution(
            Action.RETRY, Kind.TRANSIENT, "Marketo transient error", may_have_applied=True
        ),
        (None, "502"): Resolution(
            Action.RETRY, Kind.TRANSIENT, "Marketo bad gateway", may_have_applied=True
        ),
        (None, "1006"): _fail("a configured lead field does not exist in Marketo", Kind.CONFIG),
        (None, "1018"): _fail("refused because native CRM sync is enabled", Kind.CONFIG),
        (None, "1016"): Resolution(
            Action.RATE_LIMITED, Kind.TRANSIENT, "Marketo import queue full", max_attempts=1
        ),
        (None, "1029"): Resolution(
            Action.RATE_LIMITED,
            Kind.TRANSIENT,
            "Marketo export queue or quota full",
            max_attempts=1,
        ),
        (413, None): _fail("request body above Marketo's 1 MB limit"),
        (414, None): _fail("request URI above Marketo's 8 KB limit"),
    }
)
"""Marketo's codes over the generic table; every other ``success: false`` code is a
:class:`~crm_bridge.errors.CrmBridgeError` (the table's "unexpected response" default for a
status-200 failure), so nothing unknown is retried."""

MARKETO_POLICY: Final[RetryPolicy] = DEFAULT_POLICY.extended(MARKETO_ROWS)


def seconds_to_central_midnight(now: datetime) -> float:
    """Seconds until the next midnight in US Central, when Marketo's daily quota resets."""
    local = now.astimezone(_CENTRAL)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(0.0, (midnight - local).total_seconds())


def make_describe(
    *, rate_wait: float, concurrency_wait: float, now: Callable[[], datetime]
) -> Callable[[BaseException], Failure | None]:
    """A describer for the connector's calls, with its configured 606/615 waits.

    Why a factory: the wait after a 606 is the rate window's length and after a 607 the time to
    US Central midnight -- both need the connector's settings or clock, which a plain function
    cannot see.
    """
    waits = {RATE_LIMIT: rate_wait, TOO_MANY_IN_FLIGHT: concurrency_wait}

    def describe(exc: BaseException) -> Failure | None:
        if isinstance(exc, MarketoApiError):
            hint = waits.get(exc.code)
            if exc.code == DAILY_QUOTA:
                hint = seconds_to_central_midnight(now())
            return Failure(200, exc.code, clip(exc.message), retry_after=hint)
        failure = describe_httpx(exc)
        if failure is not None and failure.status in (413, 414):
            return dataclasses.replace(failure, error_code=None)
        return failure

    return describe
