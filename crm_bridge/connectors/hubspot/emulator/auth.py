"""Who is calling: private-app tokens, OAuth access/refresh tokens, and "human user" tokens.

Why "human" tokens exist: crm-bridge must tell a marketer's edit in HubSpot from its own echo.
A token issued through ``POST /__emulator__/token {"user_email": ...}`` acts as that user, and
writes made with it are stamped ``hs_updated_by_user_id``; the integration's own writes are not.

Docs: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass, field

from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["CLIENT_CREDENTIALS_SCOPES", "OAuthError", "Principal", "TokenRegistry"]

DEFAULT_SCOPES = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.lists.read",
    "crm.lists.write",
)

CLIENT_CREDENTIALS_SCOPES = (
    "developer.webhooks_journal.read",
    "developer.webhooks_journal.subscriptions.read",
    "developer.webhooks_journal.subscriptions.write",
    "developer.webhooks_journal.snapshots.read",
    "developer.webhooks_journal.snapshots.write",
)
"""What a client-credentials token may carry beyond the CRM scopes (the journal's)."""

_NO_CREDENTIALS = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


@dataclass
class Principal:
    """What a token stands for."""

    token: str
    kind: str  # "private_app" | "oauth" | "user" | "app" (client credentials)
    user_id: int | None = None  # set for "user" (and the installing user of "oauth")
    user_email: str | None = None
    expires_at: float | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    app_id: int | None = None  # the app behind an app token (journal ``sourceId``)

    @property
    def actor(self) -> str | None:
        """The ``hs_updated_by_user_id`` stamp for writes; None for the integration itself."""
        return str(self.user_id) if self.kind == "user" and self.user_id else None


class OAuthError(Exception):
    """An OAuth endpoint failure: ``{"status": "BAD_...", "message": ...}`` with HTTP 400."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Grant:
    user_id: int
    user_email: str
    scopes: tuple[str, ...]
    redirect_uri: str = ""
    used: bool = field(default=False)


class TokenRegistry:
    """Every credential the portal accepts."""

    def __init__(self, settings: HubSpotEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every issued token; the configured private-app token stays valid."""
        with self._lock:
            self._tokens: dict[str, Principal] = {}
            self._codes: dict[str, _Grant] = {}
            self._refresh: dict[str, _Grant] = {}

    def _private_app(self) -> Principal:
        return Principal(
            self.settings.private_app_token, "private_app", app_id=self.settings.private_app_id
        )

    def authenticate(self, header: str | None) -> Principal:
        """The principal behind an ``Authorization`` header, or the documented 401."""
        if not header or not header.lower().startswith("bearer "):
            raise HubSpotError(401, _NO_CREDENTIALS, "INVALID_AUTHENTICATION")
        token = header[7:].strip()
        if token == self.settings.private_app_token:
            return self._private_app()
        with self._lock:
            principal = self._tokens.get(token)
        if principal is None:
            raise HubSpotError(
                401,
                "The OAuth token used to make this call is invalid.",
                "INVALID_AUTHENTICATION",
            )
        now = self.clock.time()
        if principal.expires_at is not None and now >= principal.expires_at:
            minutes = max(1, math.floor((now - principal.expires_at) / 60))
            raise HubSpotError(
                401,
                f"The OAuth token used to make this call expired {minutes} minute(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        return principal

    def issue_user_token(self, user_id: int, email: str) -> Principal:
        """A private-app-like token acting as a human user (never expires)."""
        token = f"pat-na1-user-{user_id}-{secrets.token_hex(8)}"
        principal = Principal(token, "user", user_id=user_id, user_email=email)
        with self._lock:
            self._tokens[token] = principal
        return principal

    def issue_code(
        self, user_id: int, email: str, redirect_uri: str, scopes: tuple[str, ...]
    ) -> str:
        """An authorization code, as the consent screen would redirect with."""
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = _Grant(user_id, email, scopes, redirect_uri)
        return code

    def exchange(self, form: dict[str, str]) -> dict[str, object]:
        """``POST /oauth/v1/token`` for ``authorization_code`` and ``refresh_token`` grants."""
        s = self.settings
        if form.get("client_id") != s.client_id:
            raise OAuthError("BAD_CLIENT_ID", "missing or invalid client_id")
        if form.get("client_secret") != s.client_secret:
            raise OAuthError("BAD_CLIENT_SECRET", "missing or invalid client_secret")
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            return self._client_credentials(form)
        with self._lock:
            if grant_type == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)
                if grant is None:
                    raise OAuthError("BAD_AUTH_CODE", "missing or unknown auth code")
                if grant.redirect_uri and form.get("redirect_uri") != grant.redirect_uri:
                    raise OAuthError("BAD_REDIRECT_URI", "redirect_uri does not match")
                refresh = secrets.token_hex(18)
                self._refresh[refresh] = grant
            elif grant_type == "refresh_token":
                refresh = form.get("refresh_token", "")
                found = self._refresh.get(refresh)
                if found is None:
                    raise OAuthError("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
                grant = found
            else:
                raise OAuthError("BAD_GRANT_TYPE", f"unsupported grant_type {grant_type!r}")
            access = "CN" + secrets.token_urlsafe(48)
            self._tokens[access] = Principal(
                access,
                "oauth",
                user_id=grant.user_id,
                user_email=grant.user_email,
                expires_at=self.clock.time() + s.token_ttl_seconds,
                scopes=grant.scopes,
                app_id=s.app_id,
            )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": s.token_ttl_seconds,
            "token_type": "bearer",
        }

    def _client_credentials(self, form: dict[str, str]) -> dict[str, object]:
        """The app's own token (no user, no refresh token), with the scopes it asked for.

        Why it exists: the webhooks journal is read with an app's client-credentials token, not
        with an install's.  Scopes outside what the app may ask for are refused as HubSpot does.
        """
        s = self.settings
        asked = tuple((form.get("scope") or "").split())
        allowed = {*DEFAULT_SCOPES, *CLIENT_CREDENTIALS_SCOPES}
        bad = [scope for scope in asked if scope not in allowed]
        if bad:
            raise OAuthError("BAD_SCOPES", f"invalid scopes: {' '.join(bad)}")
        access = "CC" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[access] = Principal(
                access,
                "app",
                expires_at=self.clock.time() + s.token_ttl_seconds,
                scopes=asked,
                app_id=s.app_id,
            )
        return {"access_token": access, "expires_in": s.token_ttl_seconds, "token_type": "bearer"}

    def describe(self, token: str) -> dict[str, object] | None:
        """``GET /oauth/v1/access-tokens/{token}`` metadata, or None when unknown or expired."""
        with self._lock:
            p = self._tokens.get(token)
        if p is None or p.kind != "oauth" or p.expires_at is None:
            return None
        left = math.floor(p.expires_at - self.clock.time())
        if left <= 0:
            return None
        s = self.settings
        return {
            "token": token,
            "user": p.user_email,
            "hub_domain": s.hub_domain,
            "scopes": list(p.scopes),
            "hub_id": s.portal_id,
            "app_id": s.app_id,
            "expires_in": left,
            "user_id": p.user_id,
            "token_type": "access",
        }

    def describe_refresh(self, token: str) -> dict[str, object] | None:
        """``GET /oauth/v1/refresh-tokens/{token}`` metadata."""
        with self._lock:
            g = self._refresh.get(token)
        if g is None:
            return None
        s = self.settings
        return {
            "token": token,
            "user": g.user_email,
            "hub_domain": s.hub_domain,
            "scopes": list(g.scopes),
            "hub_id": s.portal_id,
            "client_id": s.client_id,
            "user_id": g.user_id,
            "token_type": "refresh",
        }

    def revoke_refresh(self, token: str) -> bool:
        """``DELETE /oauth/v1/refresh-tokens/{token}``."""
        with self._lock:
            return self._refresh.pop(token, None) is not None

    def expire_all(self) -> None:
        """Every issued OAuth and app access token is now expired (user tokens never expire)."""
        now = self.clock.time()
        with self._lock:
            for p in self._tokens.values():
                if p.kind in ("oauth", "app"):
                    p.expires_at = min(p.expires_at or now, now)
