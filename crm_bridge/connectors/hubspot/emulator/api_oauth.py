"""OAuth v1: the consent redirect, the token endpoint, and token metadata.

Why the consent screen is emulated: a public-app install starts with a browser redirect carrying
``code``; ``GET /oauth/authorize`` answers that redirect at once (as if the user clicked
"Connect app"), so the whole authorization-code flow runs without a browser.

Doc: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.auth import OAuthError
from crm_bridge.connectors.hubspot.emulator.catalog import OWNERS
from crm_bridge.connectors.hubspot.emulator.errors import correlation_id, error_body
from crm_bridge.connectors.hubspot.emulator.web import Ctx, json_response

__all__ = ["oauth_routes"]


def _oauth_error(err: OAuthError) -> Response:
    return json_response(
        400, {"status": err.status, "message": err.message, "correlationId": correlation_id()}
    )


def oauth_routes(ctx: Ctx) -> list[Route]:
    """``/oauth/authorize``, ``/oauth/v1/token``, ``/oauth/v1/access-tokens|refresh-tokens``."""

    async def authorize(request: Request) -> Response:
        """The install screen, auto-approved: redirect to ``redirect_uri?code=...``.

        ``user_email`` (emulator extension) chooses the installing user; default: the manager.
        Doc: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
        """
        q = request.query_params
        if q.get("client_id") != ctx.settings.client_id or not q.get("redirect_uri"):
            return _oauth_error(OAuthError("BAD_CLIENT_ID", "unknown client_id or no redirect_uri"))
        email = q.get("user_email") or OWNERS[0].email
        owner = next((o for o in ctx.portal.owners if o["email"] == email), None)
        if owner is None:
            return _oauth_error(OAuthError("BAD_USER", f"no user {email}"))
        scopes = tuple((q.get("scope") or "oauth").split())
        code = ctx.tokens.issue_code(
            int(owner["userId"]), owner["email"], q["redirect_uri"], scopes
        )
        params = {"code": code, **({"state": q["state"]} if q.get("state") else {})}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(params)}", status_code=302)

    async def token(request: Request) -> Response:
        """Exchange a code or a refresh token (form body) for an access token.

        Doc: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/refresh-oauth-token.md
        """
        # A urlencoded body; parsed here so the emulator needs no python-multipart.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            body = ctx.tokens.exchange(form)
        except OAuthError as err:
            return _oauth_error(err)
        return json_response(200, body)

    async def access_token(request: Request) -> Response:
        """Metadata of an access token (hub id, user, scopes, seconds left).

        Doc: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
        """
        info = ctx.tokens.describe(request.path_params["token"])
        if info is None:
            return json_response(404, error_body("Token not found or expired", "OBJECT_NOT_FOUND"))
        return json_response(200, info)

    async def refresh_token(request: Request) -> Response:
        """Metadata of a refresh token, or (DELETE) revoke it.

        Doc: https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
        """
        tok = request.path_params["token"]
        if request.method == "DELETE":
            gone = ctx.tokens.revoke_refresh(tok)
            return (
                Response(status_code=204)
                if gone
                else json_response(404, error_body("Refresh token not found", "OBJECT_NOT_FOUND"))
            )
        info = ctx.tokens.describe_refresh(tok)
        if info is None:
            return json_response(404, error_body("Refresh token not found", "OBJECT_NOT_FOUND"))
        return json_response(200, info)

    return [
        Route("/oauth/authorize", authorize, methods=["GET"]),
        Route("/oauth/v1/token", token, methods=["POST"]),
        Route("/oauth/v1/access-tokens/{token}", access_token, methods=["GET"]),
        Route("/oauth/v1/refresh-tokens/{token}", refresh_token, methods=["GET", "DELETE"]),
    ]
