"""How Salesforce reports failures, and what the retry loop does about each.

Why here and not in :mod:`crm_bridge.http`: the shared seam knows statuses and transports; which
Salesforce error code means "wait for the allocation", "retry, the row was locked" or "our bug"
is Salesforce knowledge, kept next to the connector that meets it.

* :func:`describe_salesforce` -- simple-salesforce (requests) reports HTTP errors as
  ``SalesforceError`` subclasses with ``.status`` and ``.content`` (the parsed
  ``[{"errorCode", "message"}]`` list, or text) and drops the response headers; network trouble
  arrives as raw ``requests.exceptions.*``, which :func:`~crm_bridge.http.describe_transport`
  reads.
* :data:`SALESFORCE_ROWS` -- the retry rows for Salesforce error codes, and
  :data:`SALESFORCE_POLICY` = the generic table plus those rows, the connector's and the token
  provider's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from simple_salesforce.exceptions import SalesforceError

from crm_bridge.http.describe import clip, describe_transport, parse_error_body
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    TableKey,
)

__all__ = ["SALESFORCE_POLICY", "SALESFORCE_ROWS", "describe_salesforce"]


SALESFORCE_ROWS: Final[Mapping[TableKey, Resolution]] = MappingProxyType(
    {
        # The org allocation is a rolling 24-hour window (the same code also covers the
        # concurrent long-transaction limit).  No Retry-After is sent, so backoff would only burn
        # seconds and calls: raise RateLimitedError now and let the next cycle try.
        (403, "REQUEST_LIMIT_EXCEEDED"): Resolution(
            Action.RATE_LIMITED,
            Kind.TRANSIENT,
            "Salesforce org API request limit exceeded",
            max_attempts=1,
        ),
        # Another transaction holds the row; the lock is released within seconds and the refused
        # request was not applied, so even a create may be resent.
        (None, "UNABLE_TO_LOCK_ROW"): Resolution(
            Action.RETRY,
            Kind.TRANSIENT,
            "record locked by another transaction",
            may_have_applied=False,
        ),
        (400, "INVALID_FIELD"): Resolution(
            Action.FAIL, Kind.CONFIG, "a mapped field does not exist on the object"
        ),
        (400, "MALFORMED_QUERY"): Resolution(
            Action.FAIL, Kind.SYSTEM, "crm-bridge built a query Salesforce cannot parse"
        ),
        (400, "JSON_PARSER_ERROR"): Resolution(
            Action.FAIL, Kind.SYSTEM, "crm-bridge sent a body Salesforce cannot parse"
        ),
    }
)
"""Salesforce's error codes over the generic table; ``docs/http.md`` has the reasoning."""

SALESFORCE_POLICY: Final[RetryPolicy] = DEFAULT_POLICY.extended(SALESFORCE_ROWS)
"""The policy every Salesforce call starts from; extend it to change a row."""


def describe_salesforce(exc: BaseException) -> Failure | None:
    """simple-salesforce's ``SalesforceError`` family, plus the requests errors under it."""
    status = getattr(exc, "status", None)
    if isinstance(exc, SalesforceError) and isinstance(status, int):
        code = getattr(exc, "code", None)  # SalesforceAuthenticationFailed: OAuth error code
        if code is not None:
            return Failure(status, str(code), clip(getattr(exc, "auth_message", "")))
        content = getattr(exc, "content", None)
        error_code, message = parse_error_body(content)
        return Failure(status, error_code, message)
    return describe_transport(exc)
