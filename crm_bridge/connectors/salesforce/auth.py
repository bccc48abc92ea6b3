"""Tokens, the requests transport, and the simple-salesforce client built on them.

Why crm-bridge fetches tokens itself: simple-salesforce's own logins hard-code
``https://login.salesforce.com`` and, when given a ``session_id``, never refresh.  So the token
comes from :class:`~.oauth.SalesforceTokenProvider` (httpx, configurable token URL) and
the client is built with ``session_id=``; on a 401 the connector asks :meth:`SalesforceAuth.refresh`
for a new token and a rebuilt client (``SFType`` objects cache the old headers).

Why a custom ``HTTPAdapter``: it is the one place every request simple-salesforce sends passes
through, so it is where we

* apply a default timeout (simple-salesforce's CRUD helpers pass none and would hang forever);
* count calls honestly, per endpoint family (:mod:`.endpoints`, the emulator's buckets too),
  including retries and Bulk polls;
* spend and refill the :class:`~crm_bridge.http.DailyBudget` from ``Sforce-Limit-Info``
  (:mod:`.limit_headers`);
* remember the last error response's headers, which simple-salesforce's exceptions drop, so a
  ``Retry-After`` still reaches the retry loop.

``trust_env=False`` on the session is required: otherwise ``REQUESTS_CA_BUNDLE`` silently
overrides ``verify`` (psf/requests#3829) and proxies from the environment apply.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from crm_bridge.errors import AuthError
from crm_bridge.http import Clock, DailyBudget, Failure
from crm_bridge.http.headers import lower_headers

from .endpoints import endpoint_family
from .errors import describe_salesforce
from .limit_headers import observe_limit_info
from .oauth import SalesforceTokenProvider
from .settings import SalesforceSettings

__all__ = ["SalesforceAuth", "SalesforceTransport"]

_ID_URL = re.compile(r"/id/(?P<org>00D\w{12,15})/(?P<user>005\w{12,15})/?$")


def _family(method: str, path: str) -> str:
    """The calls key for a request: its endpoint family, ``"other"`` for uncounted paths."""
    return endpoint_family(method, path) or "other"


class SalesforceTransport(HTTPAdapter):
    """The adapter mounted for ``https://``: default timeout, call counts, daily budget."""

    def __init__(
        self,
        *,
        calls: Counter[str],
        budget: DailyBudget,
        timeout: tuple[float, float],
    ) -> None:
        super().__init__(max_retries=0)  # retries belong to call_with_retries, not urllib3
        self.calls = calls
        self.budget = budget
        self.timeout = timeout
        self._local = threading.local()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Count, budget and time-box one request, then remember its headers."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        self.budget.acquire()  # raises RateLimitedError before we eat into the reserve
        path = urlsplit(request.url or "").path
        self.calls[_family(request.method or "GET", path)] += 1
        response = super().send(request, **kwargs)
        observe_limit_info(self.budget, response.headers)
        self._local.last = (response.status_code, lower_headers(response.headers))
        return response

    def last_headers(self, status: int | None) -> Mapping[str, str]:
        """Headers of this thread's last response, if it had ``status``."""
        last: tuple[int, dict[str, str]] | None = getattr(self._local, "last", None)
        if last is None or status is None or last[0] != status:
            return {}
        return last[1]


class SalesforceAuth:
    """Owns the token provider, the requests session and the current simple-salesforce client."""

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        calls: Counter[str],
        budget: DailyBudget,
        clock: Clock,
    ) -> None:
        self.settings = settings
        verify: str | bool = str(settings.ca_bundle) if settings.ca_bundle else True
        connect = min(10.0, settings.timeout_seconds)
        self.identity_url: str | None = None

        def count_request(request: httpx.Request) -> None:
            calls[_family(request.method, request.url.path)] += 1

        def read_identity(response: httpx.Response) -> None:
            # The token response's "id" URL names the integration user; reading it here saves
            # a separate identity call.  The provider parses the same body afterwards.
            if response.status_code == 200 and response.request.url.path.endswith("/token"):
                response.read()
                try:
                    payload = response.json()
                except ValueError:
                    return
                if isinstance(payload, dict) and isinstance(payload.get("id"), str):
                    self.identity_url = payload["id"]

        self._http = httpx.Client(
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else True,
            trust_env=False,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=connect),
            event_hooks={"request": [count_request], "response": [read_identity]},
        )
        self.tokens = SalesforceTokenProvider(
            token_url=settings.token_url,
            client_id=settings.client_id,
            grant_type=settings.grant_type,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            username=settings.username,
            password=settings.password,
            client_auth="body",
            token_lifetime=settings.token_lifetime_seconds,
            http=self._http,
            clock=clock,
        )
        self.transport = SalesforceTransport(
            calls=calls, budget=budget, timeout=(connect, settings.timeout_seconds)
        )
        self.session = requests.Session()
        self.session.trust_env = False
        # Names crm-bridge as the caller on every request: a change event of our own write then
        # carries it in changeOrigin, and the CDC feed drops that echo without reading it back.
        self.session.headers["Sforce-Call-Options"] = f"client={settings.call_options_client}"
        self.session.verify = verify
        self.session.mount("https://", self.transport)
        self.session.mount("http://", self.transport)
        self._lock = threading.RLock()
        self._token: SecretStr | None = None
        self._client: Any = None

    # -- the client -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The simple-salesforce client for the current token (renewed when it is due)."""
        with self._lock:
            token = self.tokens.token()  # no network unless the token is due for renewal
            if self._client is None or self._token is None or not _same(token, self._token):
                self._client = self._build(token)
            return self._client

    def refresh(self) -> None:
        """After a 401: fetch a new token (once per rejected token) and rebuild the client."""
        with self._lock:
            token = self.tokens.refresh(rejected=self._token)
            self._client = self._build(token)

    def _build(self, token: SecretStr) -> Any:
        self._token = token
        current = self.tokens.current
        instance = (current.instance_url if current else None) or self.settings.instance_url
        return Salesforce(
            session_id=token.get_secret_value(),
            instance_url=instance,
            session=self.session,
            version=self.settings.api_version,
        )

    # -- who we are -----------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        """The integration user's id, from the token response's identity URL."""
        self.client  # noqa: B018 - make sure a token (and so the identity URL) was fetched
        match = _ID_URL.search(self.identity_url or "")
        if match is None:
            raise AuthError("the Salesforce token response carried no identity URL naming the user")
        return match.group("user")

    @property
    def org_id(self) -> str | None:
        """The org id from the identity URL, if known."""
        match = _ID_URL.search(self.identity_url or "")
        return match.group("org") if match else None

    # -- failures -------------------------------------------------------------------------------

    def describe(self, exc: BaseException) -> Failure | None:
        """``describe_salesforce`` plus the headers simple-salesforce dropped (``Retry-After``)."""
        failure = describe_salesforce(exc)
        if failure is None or failure.headers or not isinstance(exc, SalesforceError):
            return failure
        headers = self.transport.last_headers(failure.status)
        return dataclasses.replace(failure, headers=dict(headers)) if headers else failure

    def close(self) -> None:
        """Close the HTTP session and client."""
        self.session.close()
        self._http.close()

    def __repr__(self) -> str:
        return f"SalesforceAuth(token_url={self.settings.token_url!r}, tokens={self.tokens!r})"


def _same(a: SecretStr, b: SecretStr) -> bool:
    return a.get_secret_value() == b.get_secret_value()
