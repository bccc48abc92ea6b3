"""OAuth token providers (httpx) and the ``BearerAuth`` flow that uses them.

Why crm-bridge fetches tokens itself instead of letting the vendor clients log in:
simple-salesforce's login flows hard-code ``https://{domain}.salesforce.com`` (no My Domain token
URL, no emulator) and refresh only for its own login types; hubspot-api-client takes a static
token.  One small provider per vendor, over an injected ``httpx.Client``, is easy to point at an
emulator, to test with respx, and to keep secrets out of every repr, log line and exception.

Expiry differs per vendor, so the providers differ:

* **Salesforce** returns no ``expires_in``: the session lives as long as the org's session
  timeout, which we cannot read.  ``token_lifetime`` is configured; we refresh proactively at
  ``refresh_at`` (90 %) of it, and on demand after a 401 (``refresh(rejected=...)``).
* **HubSpot** returns ``expires_in`` (30 min) and asks integrations to refresh by TTL, not to
  treat a 401 as the signal; we refresh at 90 % of the TTL.  A private-app token is static.

Refresh tokens may be rotated by the server (Salesforce with rotation enabled, HubSpot rarely).
A rotated token is kept and handed to ``on_rotate`` so the caller can persist it; losing it would
lock the integration out at the next restart.

Secrets are :class:`pydantic.SecretStr` end to end; ``get_secret_value()`` is called only while
building a request.  Vendor error text is scrubbed of our secrets before it reaches an exception.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx
from pydantic import SecretStr

from crm_bridge.errors import AuthError, ConfigError, ConfigProblem
from crm_bridge.http.clock import Clock, SystemClock
from crm_bridge.http.describe import describe_httpx
from crm_bridge.http.retry import (
    DEFAULT_POLICY,
    Action,
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
    "HubSpotTokenProvider",
    "SalesforceGrant",
    "SalesforceTokenProvider",
    "StaticTokenProvider",
    "Token",
    "TokenProvider",
]

SalesforceGrant = Literal["client_credentials", "refresh_token", "password"]
RotateCallback = Callable[[SecretStr], None]

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
    """An access token and when to replace it (``refresh_after`` is on the clock's monotonic)."""

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


class _OAuthProvider:
    """Caching, locking, proactive refresh, rotation and error mapping shared by both vendors."""

    _vendor = "OAuth"

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
        policy: RetryPolicy,
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
        raise NotImplementedError

    def _auth(self) -> httpx.Auth | None:
        return None

    def _lifetime(self, payload: dict[str, Any]) -> float:
        raise NotImplementedError

    def _secrets(self) -> list[SecretStr | None]:
        return [self._client_secret, self._refresh_token]

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
            raise AuthError(f"{self._vendor} token endpoint answered without an access_token")
        rotated = payload.get("refresh_token")
        if (
            isinstance(rotated, str)
            and rotated
            and (self._refresh_token is None or rotated != self._refresh_token.get_secret_value())
        ):
            self._refresh_token = SecretStr(rotated)
            if self._on_rotate is not None:
                self._on_rotate(self._refresh_token)
        token = Token(
            access_token=SecretStr(access),
            refresh_after=started + self._refresh_at * self._lifetime(payload),
            instance_url=_str(payload.get("instance_url")),
            issued_at=_issued_at(payload.get("issued_at")),
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
            raise AuthError(f"{self._vendor} token endpoint answered with a non-JSON body")
        return payload

    def _describe(self, exc: BaseException) -> Failure | None:
        failure = describe_httpx(exc)
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


class SalesforceTokenProvider(_OAuthProvider):
    """Salesforce OAuth 2.0: ``client_credentials``, ``refresh_token`` or ``password`` grant.

    ``token_url`` is the org's My Domain ``.../services/oauth2/token`` (or an emulator's).
    ``client_auth="basic"`` sends the client id and secret as HTTP Basic auth, as Salesforce's
    client-credentials docs and simple-salesforce do; ``"body"`` sends them as form fields.
    """

    _vendor = "Salesforce"

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        grant_type: SalesforceGrant,
        client_secret: SecretStr | None = None,
        refresh_token: SecretStr | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
        client_auth: Literal["basic", "body"] = "body",
        token_lifetime: float = 7200.0,
        refresh_at: float = 0.9,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        on_rotate: RotateCallback | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        required: dict[str, dict[str, object]] = {
            "client_credentials": {"client_secret": client_secret},
            "refresh_token": {"refresh_token": refresh_token},
            "password": {"username": username, "password": password},
        }
        problems = _missing(grant_type, required[grant_type])
        if client_auth == "basic" and client_secret is None:
            problems.append(
                ConfigProblem(key="client_secret", problem="required for client_auth='basic'")
            )
        if problems:
            raise ConfigError(problems, heading="Salesforce OAuth settings are incomplete")
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        super().__init__(
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            http=http,
            clock=clock,
            refresh_at=refresh_at,
            on_rotate=on_rotate,
            policy=policy,
        )
        self.grant_type: SalesforceGrant = grant_type
        self.username = username
        self._password = password
        self.client_auth = client_auth
        self.token_lifetime = token_lifetime

    @property
    def instance_url(self) -> str | None:
        """The org's instance URL from the last token response (fetching a token if needed)."""
        self.token()
        current = self.current
        return current.instance_url if current is not None else None

    def _form(self) -> dict[str, str]:
        form: dict[str, str] = {"grant_type": self.grant_type}
        if self.client_auth == "body":
            form["client_id"] = self.client_id
            if self._client_secret is not None:
                form["client_secret"] = self._client_secret.get_secret_value()
        if self.grant_type == "refresh_token" and self._refresh_token is not None:
            form["refresh_token"] = self._refresh_token.get_secret_value()
        if self.grant_type == "password" and self._password is not None:
            form["username"] = self.username or ""
            form["password"] = self._password.get_secret_value()
        return form

    def _auth(self) -> httpx.Auth | None:
        if self.client_auth == "basic" and self._client_secret is not None:
            return httpx.BasicAuth(self.client_id, self._client_secret.get_secret_value())
        return None

    def _lifetime(self, payload: dict[str, Any]) -> float:
        return self.token_lifetime  # Salesforce sends no expires_in

    def _secrets(self) -> list[SecretStr | None]:
        return [*super()._secrets(), self._password]

    def __repr__(self) -> str:
        return (
            f"SalesforceTokenProvider(token_url={self.token_url!r}, grant_type={self.grant_type!r}, "
            f"client_id={self.client_id!r}, client_auth={self.client_auth!r}, "
            f"token={'<cached>' if self._current else '<none>'})"
        )


class HubSpotTokenProvider(_OAuthProvider):
    """HubSpot: a static private-app token, or OAuth ``refresh_token`` grant with ``expires_in``.

    Use :meth:`private_app` for a static token.  For OAuth, the access token is replaced at
    ``refresh_at`` (90 %) of the ``expires_in`` the server returned.
    """

    _vendor = "HubSpot"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: SecretStr,
        refresh_token: SecretStr,
        token_url: str = "https://api.hubapi.com/oauth/v1/token",
        refresh_at: float = 0.9,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        on_rotate: RotateCallback | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        super().__init__(
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            http=http,
            clock=clock,
            refresh_at=refresh_at,
            on_rotate=on_rotate,
            policy=policy,
        )

    @staticmethod
    def private_app(access_token: SecretStr) -> StaticTokenProvider:
        """A provider for a private-app (or service-key) token, which never expires by TTL."""
        return StaticTokenProvider(access_token)

    def _form(self) -> dict[str, str]:
        assert self._client_secret is not None and self._refresh_token is not None
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "refresh_token": self._refresh_token.get_secret_value(),
        }

    def _lifetime(self, payload: dict[str, Any]) -> float:
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            return float(expires_in)
        return 1800.0  # HubSpot's documented access-token life, if the field is missing

    def __repr__(self) -> str:
        return (
            f"HubSpotTokenProvider(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"token={'<cached>' if self._current else '<none>'})"
        )


class StaticTokenProvider:
    """A token that is what it is (HubSpot private app): no refresh, a 401 is final."""

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


def _missing(grant: str, required: dict[str, object]) -> list[ConfigProblem]:
    return [
        ConfigProblem(key=key, problem=f"required for the {grant} grant")
        for key, value in required.items()
        if value is None
    ]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _issued_at(value: Any) -> datetime | None:
    """Salesforce's ``issued_at``: epoch milliseconds, as a string."""
    try:
        return datetime.fromtimestamp(int(value) / 1000.0, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
