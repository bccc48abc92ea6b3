"""The HTTP seam: auth, retries and rate limits that every connector shares.

Why one package: a connector should not decide on its own whether a 503 may be retried or how
long a 429 means to wait.  Each concern lives in one small module:

* :mod:`~crm_bridge.http.clock` -- time as a dependency (tests never sleep);
* :mod:`~crm_bridge.http.retry` -- the generic retry table and the tenacity loop that runs it;
* :mod:`~crm_bridge.http.describe` -- httpx, requests and urllib3 exceptions reduced to a
  :class:`Failure`;
* :mod:`~crm_bridge.http.headers` -- response headers as a lower-case dict, lenient numbers;
* :mod:`~crm_bridge.http.ratelimit` -- pacing under a rolling window and a daily reserve;
* :mod:`~crm_bridge.http.oauth` -- the OAuth provider base class, static tokens and the
  ``BearerAuth`` httpx flow.

Nothing here knows a vendor.  What is one vendor's (its token grants, its client library's
exceptions, its error codes' retry rows, its limit headers, its endpoint families) lives with its
connector under ``crm_bridge/connectors/<vendor>/``.  See ``docs/http.md`` for how a connector
puts them together.
"""

from crm_bridge.http.clock import Clock, FakeClock, SystemClock
from crm_bridge.http.describe import (
    describe_httpx,
    describe_transport,
    first_of,
    parse_error_body,
)
from crm_bridge.http.headers import int_header, lower_headers
from crm_bridge.http.oauth import (
    BearerAuth,
    OAuthTokenProvider,
    StaticTokenProvider,
    Token,
    TokenProvider,
)
from crm_bridge.http.ratelimit import DailyBudget, Lease, RollingWindowLimiter
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    Action,
    Describe,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    TableKey,
    call_with_retries,
    classify,
)

__all__ = [
    "DEFAULT_POLICY",
    "Action",
    "BearerAuth",
    "Clock",
    "DailyBudget",
    "Describe",
    "Failure",
    "FakeClock",
    "Kind",
    "Lease",
    "OAuthTokenProvider",
    "Resolution",
    "RetryPolicy",
    "RollingWindowLimiter",
    "StaticTokenProvider",
    "SystemClock",
    "TableKey",
    "Token",
    "TokenProvider",
    "call_with_retries",
    "classify",
    "describe_httpx",
    "describe_transport",
    "first_of",
    "int_header",
    "lower_headers",
    "parse_error_body",
]
