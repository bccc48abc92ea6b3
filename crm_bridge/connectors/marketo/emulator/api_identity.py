"""``GET|POST /identity/oauth/token``: the only Marketo endpoint outside the JSON envelope.

Why separate: identity answers plain OAuth JSON, refuses bad clients with HTTP 401 (one of the
few non-200 answers), and does not count against the REST limits.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.auth import IdentityError
from crm_bridge.connectors.marketo.emulator.web import Ctx, json_response

__all__ = ["identity_routes"]


def identity_routes(ctx: Ctx) -> list[Route]:
    """The token route."""

    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if "application/x-www-form-urlencoded" in ctype:
                params.update(parse_qsl((await request.body()).decode(errors="replace")))
        try:
            answer = ctx.tokens.grant(
                params.get("grant_type"), params.get("client_id"), params.get("client_secret")
            )
        except IdentityError as exc:
            return json_response(
                {"error": exc.error, "error_description": exc.description}, status=exc.status
            )
        return json_response(answer)

    return [Route("/identity/oauth/token", token, methods=["GET", "POST"])]
