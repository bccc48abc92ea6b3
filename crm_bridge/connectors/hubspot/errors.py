"""How HubSpot reports failures, and what the retry loop does about each.

Why here and not in :mod:`crm_bridge.http`: the shared seam knows statuses and transports; how
hubspot-api-client raises, which HubSpot rate-limit policy a 429 names and how long it means to
wait are HubSpot knowledge, kept next to the connector that meets it.

* :func:`describe_hubspot` -- every hubspot-api-client sub-package has its *own*
  ``ApiException`` class, so we duck-type on ``.status`` / ``.body`` / ``.headers`` instead of
  importing dozens of classes.  Network trouble and urllib3's exhausted retries arrive as raw
  ``urllib3.exceptions.*``, which :func:`~crm_bridge.http.describe_transport` reads.
* :func:`describe_hubspot_httpx` -- :func:`~crm_bridge.http.describe_httpx` plus the same wait
  hint, for our own httpx calls (the OAuth token endpoint).
* :data:`HUBSPOT_ROWS` / :data:`HUBSPOT_POLICY` -- HubSpot's retry rows over the generic table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from crm_bridge.http.describe import clip, describe_httpx, describe_transport, parse_error_body
from crm_bridge.http.headers import lower_headers
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    TLS_FAILED,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    TableKey,
)

__all__ = [
    "HUBSPOT_POLICY",
    "HUBSPOT_ROWS",
    "describe_hubspot",
    "describe_hubspot_httpx",
    "window_hint",
]

HUBSPOT_ROWS: Final[Mapping[TableKey, Resolution]] = MappingProxyType(
    {
        # The daily quota resets at midnight in the account's time zone: waiting inside one call
        # cannot help, so give up at once and let the engine schedule the next cycle.
        (429, "DAILY"): Resolution(
            Action.RATE_LIMITED, Kind.TRANSIENT, "HubSpot daily API limit reached", max_attempts=1
        ),
    }
)
"""HubSpot's error codes over the generic table; ``docs/http.md`` has the reasoning."""

HUBSPOT_POLICY: Final[RetryPolicy] = DEFAULT_POLICY.extended(HUBSPOT_ROWS)
"""The policy every HubSpot call starts from; extend it to change a row."""


def window_hint(status: int, error_code: str | None, headers: Mapping[str, str]) -> float | None:
    """A wait hint for a HubSpot 429 without ``Retry-After``: the length of the rolling window.

    The burst window is rolling, so after one full interval every earlier call has aged out;
    waiting that long is the shortest wait that is sure to work.  ``headers`` keys are lower-case.
    """
    if status != 429:
        return None
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
    if interval is not None:
        try:
            return max(0.0, float(interval) / 1000.0)
        except ValueError:
            pass
    return {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}.get(error_code or "")


def describe_hubspot(exc: BaseException) -> Failure | None:
    """Any hubspot-api-client ``ApiException`` (duck-typed), plus raw urllib3 errors."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "body") and hasattr(exc, "reason"):
        if status == 0:  # rest.py turns urllib3 SSLError into ApiException(status=0)
            return Failure(None, TLS_FAILED, clip(getattr(exc, "reason", "")))
        headers = lower_headers(getattr(exc, "headers", None))
        error_code, message = parse_error_body(getattr(exc, "body", None))
        return Failure(
            status,
            error_code,
            message or clip(getattr(exc, "reason", "")),
            retry_after=window_hint(status, error_code, headers),
            headers=headers,
        )
    return describe_transport(exc)


def describe_hubspot_httpx(exc: BaseException) -> Failure | None:
    """:func:`~crm_bridge.http.describe_httpx` plus HubSpot's rolling-window wait hint."""
    failure = describe_httpx(exc)
    if failure is None or failure.status is None:
        return failure
    hint = window_hint(failure.status, failure.error_code, failure.headers)
    return dataclasses.replace(failure, retry_after=hint) if hint is not None else failure
