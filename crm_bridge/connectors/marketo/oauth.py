"""Marketo access tokens: the ``client_credentials`` grant of the instance's identity service.

Why the shared :class:`~crm_bridge.http.OAuthTokenProvider`: caching, the lock (one fetch for
concurrent callers), refresh before expiry, ``refresh(rejected=...)`` after a 601/602 and secret
scrubbing are the same as for every vendor.  Marketo's own parts: ``expires_in`` is the token's
*remaining* life (asking again early returns the same token with less time), the identity
service refuses a bad client with HTTP 401 ``invalid_client`` / ``unauthorized``, and ``scope``
names the API-only user -- what :meth:`~.connector.MarketoConnector.check` reports.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from crm_bridge.http.clock import Clock
from crm_bridge.http.oauth import OAuthTokenProvider, Token

from .errors import MARKETO_POLICY

__all__ = ["MarketoTokenProvider"]

_DEFAULT_LIFETIME = 3600.0


class MarketoTokenProvider(OAuthTokenProvider):
    """``POST <identity>/oauth/token`` with ``grant_type=client_credentials`` (form body)."""

    vendor = "Marketo"

    def __init__(
        self,
        *,
        identity_url: str,
        client_id: str,
        client_secret: SecretStr,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        refresh_at: float = 0.9,
    ) -> None:
        super().__init__(
            token_url=f"{identity_url.rstrip('/')}/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=None,
            http=http,
            clock=clock,
            refresh_at=refresh_at,
            on_rotate=None,
            policy=MARKETO_POLICY,
        )
        self.scope: str | None = None

    def _form(self) -> dict[str, str]:
        assert self._client_secret is not None
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }

    def _lifetime(self, payload: dict[str, Any]) -> float:
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            return float(expires_in)
        return _DEFAULT_LIFETIME

    def _token(self, access: SecretStr, refresh_after: float, payload: dict[str, Any]) -> Token:
        scope = payload.get("scope")
        self.scope = str(scope) if scope else None
        return Token(access_token=access, refresh_after=refresh_after)

    def __repr__(self) -> str:
        return (
            f"MarketoTokenProvider(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"token={'<cached>' if self._current else '<none>'})"
        )
