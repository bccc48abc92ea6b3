"""OAuth token providers (httpx) and the ``BearerAuth`` flow that uses them.

Why crm-bridge fetches tokens itself instead of letting the vendor clients log in: vendor clients
tend to hard-code their login host (no custom token URL, no emulator), refresh only for their own
login types, or take a static token.  One small provider per vendor, over an injected
``httpx.Client``, is easy to point at an emulator, to test with respx, and to keep secrets out of
every repr, log line and exception.

:class:`OAuthTokenProvider` holds everything the vendors share: caching, a lock so concurrent
callers fetch once, proactive refresh at ``refresh_at`` (90 %) of the token's lifetime, refresh on
demand after a 401 (``refresh(rejected=...)``), refresh-token rotation and error mapping.  Each
vendor's subclass, next to its connector (``crm_bridge/connectors/<vendor>/oauth.py``), says
only what differs: the grant's form fields, how the client authenticates, how long a token lives
(some vendors send ``expires_in``, some send nothing and the lifetime is configured) and what
else the token response carries.

Refresh tokens may be rotated by the server.  A rotated token is kept and handed to ``on_rotate``
so the caller can persist it; losing it would lock the integration out at the next restart.

Secrets are :class:`pydantic.SecretStr` end to end; ``get_secret_value()`` is called only while
building a request.  Server error text is scrubbed of our secrets before it reaches an exception.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from crm_bridge.errors import AuthError
from crm_bridge.http.clock import Clock, SystemClock
from crm_bridge.http.describe import describe_httpx
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
)
from crm_bridge.log import MASK

__all__ = [
    "BearerAuth",
    "OAuthTokenProvider",
    "RotateCallback",
    "StaticTokenProvider",
    "Token",
    "TokenProvider",
]

RotateCallback = Callable[[SecretStr], None]
"""Called with a refresh token the server rotated, so the caller can persist it."""

_REFUSED = Resolution(
    Action.FAIL, Kind.CONFIG, "the token endpoint refused our credentials", error=AuthError
)
# On the token endpoint every 4xx is about the credentials, and a 401 cannot be fixed by
# refreshing (this *is* the refresh), so none of them may become a retry or a dead letter.
_TOKEN_ENDPOINT_ROWS: dict[TableKey, Resolution] = {
    (status, None): _REFUSED for status in (400, 401, 403)
}


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """An access token and when to replace it (``refresh_after`` is on the clock's monotonic).

    ``instance_url`` (the API base URL) and ``issued_at`` are set when the token endpoint names
    them; a vendor whose token response does not carry them leaves them ``None``.
    """

    access_token: SecretStr
    refresh_after: float
    instance_url: str | None = None
    issued_at: datetime | None = None


class TokenProvider(Protocol):
    """What ``BearerAuth`` and connectors need from a provider."""

    @property
    def can_refresh(self) -> bool:
        """False for static tokens: a 401 then means the token is simply wrong."""
        ...

    def token(self) -> SecretStr:
        """A token that is not due for refresh, fetching a new one first if it is."""
        ...

    def refresh(self, rejected: SecretStr | None = None) -> SecretStr:
        """Fetch a new token now (unless another thread already replaced ``rejected``)."""
        ...


class OAuthTokenProvider:
    """Caching, locking, proactive refresh, rotation and error mapping shared by every vendor.

    Subclasses implement :meth:`_form` (the grant's form fields) and :meth:`_lifetime` (seconds
    a fetched token lives), and may override :meth:`_auth` (HTTP client authentication),
    :meth:`_secrets` (more values to scrub) and :meth:`_token` (more fields from the response).
    ``vendor`` names the server in error messages.  ``describe`` turns token-endpoint failures
    into a :class:`Failure` (:func:`describe_httpx` unless the vendor reads extra hints); its
    message is scrubbed of our secrets either way.  ``policy`` is the vendor's retry policy; on
    the token endpoint every 400/401/403 is additionally a final credentials refusal.
    """

    vendor: str = "OAuth"

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr | None,
        refresh_token: SecretStr | None,
        http: httpx.Client | None,
        clock: Clock | None,
        refresh_at: float,
        on_rotate: RotateCallback | None,
        policy: RetryPolicy = DEFAULT_POLICY,
        describe: Describe = describe_httpx,
    ) -> None:
        if not 0.0 < refresh_at <= 1.0:
            raise ValueError("refresh_at must be in (0, 1]")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=httpx.Timeout(30.0))
        self._clock = clock or SystemClock()
        self._refresh_at = refresh_at
        self._on_rotate = on_rotate
        self._policy = policy.extended(_TOKEN_ENDPOINT_ROWS)
        self._describe_http = describe
        self._lock = threading.RLock()
        self._current: Token | None = None
        self.fetches = 0

    # -- public --------------------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        """OAuth providers can always ask for a new token."""
        return True

    @property
    def current(self) -> Token | None:
        """The cached token, if any (for reports and for ``instance_url``)."""
        with self._lock:
            return self._current

    def token(self) -> SecretStr:
        """See :meth:`TokenProvider.token`."""
        with self._lock:
            current = self._current
            if current is None or self._clock.monotonic() >= current.refresh_after:
                current = self._fetch()
            return current.access_token

    def refresh(self, rejected: SecretStr | None = None) -> SecretStr:
        """See :meth:`TokenProvider.refresh`."""
        with self._lock:
            current = self._current
            if (
                rejected is not None
                and current is not None
                and current.access_token.get_secret_value() != rejected.get_secret_value()
            ):
                return current.access_token  # someone refreshed while our request was in flight
            return self._fetch().access_token

    def close(self) -> None:
        """Close the HTTP client if this provider created it."""
        if self._own_http:
            self._http.close()

    # -- for subclasses ------------------------------------------------------------------------

    def _form(self) -> dict[str, str]:
        """The token request's form fields (``grant_type`` and whatever the grant needs)."""
        raise NotImplementedError

    def _auth(self) -> httpx.Auth | None:
        """HTTP authentication for the token request (``None``: credentials go in the form)."""
        return None

    def _lifetime(self, payload: dict[str, Any]) -> float:
        """Seconds the token in ``payload`` lives (``expires_in``, or a configured value)."""
        raise NotImplementedError

    def _secrets(self) -> list[SecretStr | None]:
        """Every secret that must never appear in an error message."""
        return [self._client_secret, self._refresh_token]

    def _token(self, access: SecretStr, refresh_after: float, payload: dict[str, Any]) -> Token:
        """The :class:`Token` for a successful response; vendors add the fields they send."""
        return Token(access_token=access, refresh_after=refresh_after)

    # -- machinery -----------------------------------------------------------------------------

    def _fetch(self) -> Token:
        started = self._clock.monotonic()
        payload = call_with_retries(
            self._post,
            idempotent=False,
            describe=self._describe,
            policy=self._policy,
            clock=self._clock,
            max_attempts=3,
        )
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError(f"{self.vendor} token endpoint answered without an access_token")
        rotated = payload.get("refresh_token")
        if (
            isinstance(rotated, str)
            and rotated
            and (self._refresh_token is None or rotated != self._refresh_token.get_secret_value())
        ):
            self._refresh_token = SecretStr(rotated)
            if self._on_rotate is not None:
                self._on_rotate(self._refresh_token)
        token = self._token(
            SecretStr(access), started + self._refresh_at * self._lifetime(payload), payload
        )
        self._current = token
        self.fetches += 1
        return token

    def _post(self) -> dict[str, Any]:
        response = self._http.post(
            self.token_url,
            data=self._form(),
            headers={"Accept": "application/json"},
            auth=self._auth() or httpx.USE_CLIENT_DEFAULT,
        )
        response.raise_for_status()
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise AuthError(f"{self.vendor} token endpoint answered with a non-JSON body")
        return payload

    def _describe(self, exc: BaseException) -> Failure | None:
        failure = self._describe_http(exc)
        if failure is None:
            return None
        return dataclasses.replace(failure, message=self._scrub(failure.message))

    def _scrub(self, text: str) -> str:
        secrets = [s.get_secret_value() for s in self._secrets() if s is not None]
        if self._current is not None:
            secrets.append(self._current.access_token.get_secret_value())
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, MASK)
        return text


class StaticTokenProvider:
    """A token that is what it is (a private-app or API-key token): no refresh, a 401 is final."""

    def __init__(self, access_token: SecretStr) -> None:
        self._token = access_token

    @property
    def can_refresh(self) -> bool:
        """Never: there is nothing to refresh with."""
        return False

    def token(self) -> SecretStr:
        """The static token."""
        return self._token

    def refresh(self, rejected: SecretStr | None = None) -> SecretStr:
        """The same token; a static token cannot be renewed."""
        return self._token

    def __repr__(self) -> str:
        return f"StaticTokenProvider(token={MASK})"


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer ...``; on a 401, refreshes once and resends once.

    A second 401 is returned to the caller as is; ``raise_for_status()`` plus
    :func:`~crm_bridge.http.describe.describe_httpx` then turn it into an ``AuthError``
    (pass ``on_refresh=None`` to ``call_with_retries`` so it does not refresh a second time).
    The provider makes blocking calls, so this flow is for ``httpx.Client``, not ``AsyncClient``.
    """

    requires_request_body = True  # the body must be replayable for the resend

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The httpx generator protocol: ``response = yield request``."""
        token = self.provider.token()
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401 and self.provider.can_refresh:
            fresh = self.provider.refresh(rejected=token)
            request.headers["Authorization"] = f"Bearer {fresh.get_secret_value()}"
            yield request

    def __repr__(self) -> str:
        return f"BearerAuth({self.provider!r})"
