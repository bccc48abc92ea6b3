"""Salesforce OAuth 2.0 tokens: ``client_credentials``, ``refresh_token`` or ``password`` grant.

Why crm-bridge fetches Salesforce tokens itself: simple-salesforce's login flows hard-code
``https://{domain}.salesforce.com`` (no My Domain token URL, no emulator) and refresh only for
its own login types.

Why the lifetime is configured: Salesforce returns no ``expires_in``; the session lives as long
as the org's session timeout, which we cannot read.  ``token_lifetime`` is set by the operator;
the shared :class:`~crm_bridge.http.OAuthTokenProvider` refreshes proactively at ``refresh_at``
(90 %) of it, and on demand after a 401.  Salesforce may rotate the refresh token when rotation
is enabled for the connected app; the base class keeps it and reports it to ``on_rotate``.

The token response also names the org's ``instance_url`` and ``issued_at`` (epoch milliseconds),
which end up on the :class:`~crm_bridge.http.Token`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from crm_bridge.errors import ConfigError, ConfigProblem
from crm_bridge.http.clock import Clock
from crm_bridge.http.oauth import OAuthTokenProvider, RotateCallback, Token
from crm_bridge.http.retry import RetryPolicy

from .errors import SALESFORCE_POLICY

__all__ = ["SalesforceGrant", "SalesforceTokenProvider"]

SalesforceGrant = Literal["client_credentials", "refresh_token", "password"]


class SalesforceTokenProvider(OAuthTokenProvider):
    """Salesforce OAuth 2.0: ``client_credentials``, ``refresh_token`` or ``password`` grant.

    ``token_url`` is the org's My Domain ``.../services/oauth2/token`` (or an emulator's).
    ``client_auth="basic"`` sends the client id and secret as HTTP Basic auth, as Salesforce's
    client-credentials docs and simple-salesforce do; ``"body"`` sends them as form fields.
    """

    vendor = "Salesforce"

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
        policy: RetryPolicy = SALESFORCE_POLICY,
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

    def _token(self, access: SecretStr, refresh_after: float, payload: dict[str, Any]) -> Token:
        return Token(
            access_token=access,
            refresh_after=refresh_after,
            instance_url=_str(payload.get("instance_url")),
            issued_at=_issued_at(payload.get("issued_at")),
        )

    def __repr__(self) -> str:
        return (
            f"SalesforceTokenProvider(token_url={self.token_url!r}, grant_type={self.grant_type!r}, "
            f"client_id={self.client_id!r}, client_auth={self.client_auth!r}, "
            f"token={'<cached>' if self._current else '<none>'})"
        )


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
