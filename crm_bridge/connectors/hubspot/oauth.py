"""HubSpot tokens: a static private-app token, or the OAuth ``refresh_token`` grant.

Why crm-bridge fetches HubSpot tokens itself: hubspot-api-client only takes a static token.
HubSpot's OAuth token endpoint returns ``expires_in`` (30 min) and asks integrations to refresh
by TTL, not to treat a 401 as the signal, so the shared
:class:`~crm_bridge.http.OAuthTokenProvider` refreshes at 90 % of the TTL.  HubSpot rarely
rotates the refresh token; when it does, the base class keeps it and reports it to ``on_rotate``.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from crm_bridge.http.clock import Clock
from crm_bridge.http.oauth import OAuthTokenProvider, RotateCallback, StaticTokenProvider
from crm_bridge.http.retry import RetryPolicy

from .errors import HUBSPOT_POLICY, describe_hubspot_httpx

__all__ = ["HubSpotTokenProvider"]


class HubSpotTokenProvider(OAuthTokenProvider):
    """HubSpot: a static private-app token, or OAuth ``refresh_token`` grant with ``expires_in``.

    Use :meth:`private_app` for a static token.  For OAuth, the access token is replaced at
    ``refresh_at`` (90 %) of the ``expires_in`` the server returned.
    """

    vendor = "HubSpot"

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
        policy: RetryPolicy = HUBSPOT_POLICY,
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
            describe=describe_hubspot_httpx,
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
