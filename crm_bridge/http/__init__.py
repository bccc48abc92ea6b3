"""The HTTP seam: auth, retries and rate limits that every connector shares.

Why one package: a connector should not decide on its own whether a 503 may be retried or how
long a 429 means to wait.  Each concern lives in one small module:

* :mod:`~crm_bridge.http.clock` -- time as a dependency (tests never sleep);
* :mod:`~crm_bridge.http.retry` -- the retry table and the tenacity loop that runs it;
* :mod:`~crm_bridge.http.describe` -- client exceptions (simple-salesforce, hubspot-api-client,
  httpx) reduced to a :class:`Failure`;
* :mod:`~crm_bridge.http.ratelimit` -- pacing under a rolling window and a daily reserve;
* :mod:`~crm_bridge.http.oauth` -- token providers and the ``BearerAuth`` httpx flow.

See ``docs/http.md`` for how a connector puts them together.
"""

from crm_bridge.http.clock import Clock, FakeClock, SystemClock
from crm_bridge.http.describe import (
    describe_any,
    describe_httpx,
    describe_hubspot,
    describe_salesforce,
    describe_transport,
    first_of,
)
from crm_bridge.http.oauth import (
    BearerAuth,
    HubSpotTokenProvider,
    SalesforceTokenProvider,
    StaticTokenProvider,
    Token,
    TokenProvider,
)
from crm_bridge.http.ratelimit import DailyBudget, Lease, RollingWindowLimiter
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    Action,
    Failure,
    Kind,
    Resolution,
    RetryPolicy,
    call_with_retries,
    classify,
)

__all__ = [
    "DEFAULT_POLICY",
    "Action",
    "BearerAuth",
    "Clock",
    "DailyBudget",
    "Failure",
    "FakeClock",
    "HubSpotTokenProvider",
    "Kind",
    "Lease",
    "Resolution",
    "RetryPolicy",
    "RollingWindowLimiter",
    "SalesforceTokenProvider",
    "StaticTokenProvider",
    "SystemClock",
    "Token",
    "TokenProvider",
    "call_with_retries",
    "classify",
    "describe_any",
    "describe_httpx",
    "describe_hubspot",
    "describe_salesforce",
    "describe_transport",
    "first_of",
]
