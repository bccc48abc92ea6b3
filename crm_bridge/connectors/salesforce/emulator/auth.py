"""Access and refresh tokens, and the OAuth 2.0 token endpoint's grant logic.

Why tokens name a user: a real org stamps ``LastModifiedById`` with whoever the session belongs
to.  crm-bridge tells its own writes from a rep's edits by that stamp, so tests need to act as
different users -- each token maps to one User id and expires on the *emulator* clock.
Docs: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["OAuthError", "TokenInfo", "TokenStore", "grant"]


@dataclass
class TokenInfo:
    """Who an access token belongs to and until when it is valid (emulator epoch seconds)."""

    user_id: str
    expires_at: float


class OAuthError(Exception):
    """A failed token request: ``{"error", "error_description"}`` with HTTP 400 (or 401)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """The JSON body a real token endpoint answers with."""
        return {"error": self.error, "error_description": self.description}


class TokenStore:
    """Issued access and refresh tokens."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self._access: dict[str, TokenInfo] = {}
        self._refresh: dict[str, str] = {}

    def clear(self) -> None:
        """Forget every token."""
        self._access.clear()
        self._refresh.clear()

    def issue(self, user_id: str, now: float, ttl: float) -> str:
        """A new access token shaped like a real one (``00D...!AQ...``)."""
        token = f"{self.org_id}!AQ{secrets.token_urlsafe(72)}"
        self._access[token] = TokenInfo(user_id, now + ttl)
        return token

    def issue_refresh(self, user_id: str) -> str:
        """A refresh token for ``user_id`` (never expires unless revoked)."""
        token = "5Aep861" + secrets.token_urlsafe(60)
        self._refresh[token] = user_id
        return token

    def user_for(self, token: str, now: float) -> str | None:
        """The user id behind a valid access token, or ``None`` (unknown or expired)."""
        info = self._access.get(token)
        if info is None or info.expires_at <= now:
            return None
        return info.user_id

    def refresh_user(self, token: str) -> str | None:
        """The user id behind a refresh token."""
        return self._refresh.get(token)

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; whether it existed."""
        return (self._access.pop(token, None) is not None) or (
            self._refresh.pop(token, None) is not None
        )

    def expire_all(self) -> None:
        """Every access token now answers INVALID_SESSION_ID (refresh tokens keep working)."""
        for info in self._access.values():
            info.expires_at = float("-inf")


@dataclass
class GrantContext:
    """What the token endpoint needs from the org to decide a grant."""

    client_id: str
    client_secret: str
    password: str
    integration_username: str
    find_user: Callable[[str], dict[str, Any] | None]
    user_by_id: Callable[[str], dict[str, Any] | None]
    refresh_user: Callable[[str], str | None]
    now: float
    jwt_public_key_pem: str | None


def _client_from(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            raw = base64.b64decode(authorization[6:].strip()).decode()
        except ValueError:
            raise OAuthError("invalid_client", "invalid client credentials") from None
        cid, _, secret = raw.partition(":")
        return cid, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _check_client(ctx: GrantContext, cid: str, secret: str | None) -> None:
    if cid != ctx.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if secret is not None and not hmac.compare_digest(secret, ctx.client_secret):
        raise OAuthError("invalid_client", "invalid client credentials")


def _active(ctx: GrantContext, user: dict[str, Any] | None) -> str:
    if user is None or not user.get("IsActive", True):
        raise OAuthError("invalid_grant", "authentication failure")
    return str(user["Id"])


def grant(ctx: GrantContext, form: dict[str, str], authorization: str | None) -> tuple[str, bool]:
    """Decide a token request: ``(user_id, issue_refresh_token)`` or raise :class:`OAuthError`."""
    grant_type = form.get("grant_type", "")
    cid, secret = _client_from(form, authorization)
    if grant_type == "client_credentials":
        _check_client(ctx, cid, secret)
        return _active(ctx, ctx.find_user(ctx.integration_username)), False
    if grant_type == "password":
        _check_client(ctx, cid, secret)
        user = ctx.find_user(form.get("username", ""))
        if not hmac.compare_digest(form.get("password", ""), ctx.password):
            raise OAuthError("invalid_grant", "authentication failure")
        return _active(ctx, user), False
    if grant_type == "refresh_token":
        _check_client(ctx, cid, secret or None)
        user_id = ctx.refresh_user(form.get("refresh_token", ""))
        if user_id is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        return _active(ctx, ctx.user_by_id(user_id)), False
    if grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _jwt_grant(ctx, form.get("assertion", "")), False
    if not grant_type:
        raise OAuthError("invalid_request", "grant type not supported")
    raise OAuthError("unsupported_grant_type", "grant type not supported")


def _jwt_grant(ctx: GrantContext, assertion: str) -> str:
    import jwt

    try:
        if ctx.jwt_public_key_pem:
            claims = jwt.decode(
                assertion,
                ctx.jwt_public_key_pem,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        else:
            claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if claims.get("iss") != ctx.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= ctx.now:
        raise OAuthError("invalid_grant", "expired authorization code")
    return _active(ctx, ctx.find_user(str(claims.get("sub", ""))))


def token_response(
    token: str,
    refresh: str | None,
    *,
    instance_url: str,
    org_id: str,
    user_id: str,
    issued_at_ms: int,
    secret: str,
) -> dict[str, Any]:
    """The success body of ``POST /services/oauth2/token``."""
    identity = f"https://login.salesforce.com/id/{org_id}/{user_id}"
    signature = base64.b64encode(
        hmac.new(secret.encode(), f"{identity}{issued_at_ms}".encode(), hashlib.sha256).digest()
    ).decode()
    body: dict[str, Any] = {
        "access_token": token,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": str(issued_at_ms),
        "signature": signature,
        "scope": "api refresh_token" if refresh else "api",
    }
    if refresh:
        body["refresh_token"] = refresh
    return body
