"""The Starlette app: OAuth, the data API (auth -> limits -> router), and the control plane.

Why one entry point for ``/services/data``: every data call must pass the same gates in the same
order as a real org -- session check (401 INVALID_SESSION_ID), daily allocation (403
REQUEST_LIMIT_EXCEEDED), then the resource -- and must carry ``Sforce-Limit-Info``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crm_bridge.connectors.salesforce.emulator import (
    bulk2,
    collections,
    composite,
    limits,
    rest_query,
    rest_sobjects,
    tooling_routes,
)
from crm_bridge.connectors.salesforce.emulator.auth import (
    GrantContext,
    OAuthError,
    grant,
    token_response,
)
from crm_bridge.connectors.salesforce.emulator.errors import ApiError, invalid_session, not_found
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router
from crm_bridge.connectors.salesforce.endpoints import endpoint_family
from crm_bridge.emulators.control import ControlHooks, control_routes
from crm_bridge.emulators.runtime import Fault, FaultMiddleware

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.emulator import SalesforceEmulator

__all__ = ["build_app", "build_router", "change_origin", "render_fault"]

_log = logging.getLogger(__name__)
_ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
_VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)?$")


def build_router() -> Router:
    """Every data-API resource, registered in matching order."""
    router = Router()
    limits.register(router)
    rest_query.register(router)
    rest_sobjects.register(router)
    collections.register(router)
    composite.register(router)
    bulk2.register(router)
    tooling_routes.register(router)
    return router


_FAULT_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    500: (
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if "
        "you contact support: 1234567890-12345 (-1234567890)",
    ),
    502: ("SERVER_UNAVAILABLE", "Bad gateway"),
    503: ("SERVER_UNAVAILABLE", "Server unavailable"),
}


def render_fault(fault: Fault) -> bytes:
    """An injected fault's body: as given, or the Salesforce error array for its status."""
    if fault.body is not None:
        if isinstance(fault.body, bytes):
            return fault.body
        if isinstance(fault.body, str):
            return fault.body.encode()
        return json.dumps(fault.body).encode()
    code, message = _FAULT_DEFAULTS.get(fault.status or 500, ("UNKNOWN_EXCEPTION", "error"))
    return json.dumps([{"message": message, "errorCode": code}]).encode()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json;charset=UTF-8",
    )


def change_origin(version: str, headers: dict[str, str]) -> str:
    """The ``changeOrigin`` of a change event for a REST call with these (lower-cased) headers.

    A caller names itself with ``Sforce-Call-Options: client=<id>``; the event then says
    ``com/salesforce/api/rest/<version>;client=<id>``, which is how a subscriber tells its own
    writes from others'.
    """
    origin = f"com/salesforce/api/rest/{version}"
    for option in headers.get("sforce-call-options", "").split(","):
        key, _, value = option.strip().partition("=")
        if key.strip() == "client" and value.strip():
            return f"{origin};client={value.strip()}"
    return origin


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


def build_app(emu: SalesforceEmulator) -> FaultMiddleware:
    """The emulator's ASGI app, wrapped in the shared fault/call-count middleware."""
    org = emu.org
    router = build_router()

    async def data_api(request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        rest = raw.decode("latin-1").split("?", 1)[0][len("/services/data") :]
        if rest.strip("/") == "":
            return _json(200, limits.versions(emu.settings.api_version))
        m = _VERSION_RE.match(rest)
        body = await request.body()
        if m is None or not 20.0 <= float(m.group(1)) <= float(emu.settings.api_version):
            return _json(404, not_found().body())
        version, sub = m.group(1), m.group(2) or "/"
        token = _token_of(request)
        with org.lock:
            user_id = org.tokens.user_for(token, emu.clock.time()) if token else None
            if user_id is None:
                return _json(401, invalid_session().body())
            counted = sub.strip("/") != ""
            info = org.limit_info()
            if counted:
                allowed, info = org.count_api_call()
                if not allowed:
                    err = ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                    return _json(403, err.body(), {"Sforce-Limit-Info": info})
            ctx = Ctx(
                org=org,
                user_id=user_id,
                method=request.method,
                version=version,
                params=parse_qs(request.url.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                base_url=f"{request.url.scheme}://{request.url.netloc}",
            )
            try:
                with emu.bus.transaction(change_origin(version, ctx.headers)):
                    resp = router.dispatch(ctx, sub)
            except Exception:  # an emulator bug must still look like a Salesforce 500
                _log.exception("unhandled error in %s %s", request.method, request.url.path)
                resp = Resp(
                    500,
                    [
                        {
                            "message": "An unexpected error occurred in the emulator.",
                            "errorCode": "UNKNOWN_EXCEPTION",
                        }
                    ],
                )
        resp.headers.setdefault("Sforce-Limit-Info", info)
        return Response(
            resp.encode(),
            status_code=resp.status,
            headers=resp.headers,
            media_type=resp.content_type if resp.status != 204 else None,
        )

    async def oauth_token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        form.update({k: v for k, v in request.query_params.items() if k not in form})
        with org.lock:
            ctx = GrantContext(
                client_id=emu.settings.client_id,
                client_secret=emu.settings.client_secret,
                password=emu.settings.user_password,
                integration_username=emu.settings.integration_username,
                find_user=org.user_by_username,
                user_by_id=org.get,
                refresh_user=org.tokens.refresh_user,
                now=emu.clock.time(),
                jwt_public_key_pem=emu.settings.jwt_public_key_pem,
            )
            try:
                user_id, with_refresh = grant(ctx, form, request.headers.get("authorization"))
            except OAuthError as err:
                return _json(err.status, err.body())
            token = org.tokens.issue(user_id, emu.clock.time(), emu.settings.token_ttl_seconds)
            refresh = org.tokens.issue_refresh(user_id) if with_refresh else None
        return _json(
            200,
            token_response(
                token,
                refresh,
                instance_url=f"{request.url.scheme}://{request.url.netloc}",
                org_id=emu.settings.org_id,
                user_id=user_id,
                issued_at_ms=int(emu.clock.time() * 1000),
                secret=emu.settings.client_secret,
            ),
        )

    async def oauth_revoke(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        token = form.get("token") or request.query_params.get("token") or ""
        with org.lock:
            known = org.tokens.revoke(token)
        if not known:
            return _json(
                400,
                {
                    "error": "unsupported_token_type",
                    "error_description": "this token type is not supported",
                },
            )
        return Response(status_code=200)

    async def oauth_userinfo(request: Request) -> Response:
        token = _token_of(request)
        with org.lock:
            user_id = org.tokens.user_for(token, emu.clock.time()) if token else None
            user = org.get(user_id)
        if user is None:
            return Response("Bad_OAuth_Token", status_code=403)
        return _json(
            200,
            {
                "sub": f"https://login.salesforce.com/id/{emu.settings.org_id}/{user['Id']}",
                "user_id": user["Id"],
                "organization_id": emu.settings.org_id,
                "preferred_username": user["Username"],
                "email": user.get("Email"),
                "name": f"{user.get('FirstName', '')} {user['LastName']}".strip(),
                "active": user.get("IsActive", True),
            },
        )

    hooks = ControlHooks(
        reset_state=emu.reset_state,
        snapshot=emu.snapshot,
        load=emu.load,
        expire_tokens=emu.expire_tokens,
    )
    routes: list[BaseRoute] = [
        *control_routes(
            faults=emu.faults,
            calls=emu.calls,
            clock=emu.clock,
            hooks=hooks,
            extra=emu.control_extra_routes(),
        ),
        Route("/services/oauth2/token", oauth_token, methods=["POST"]),
        Route("/services/oauth2/revoke", oauth_revoke, methods=["POST", "GET"]),
        Route("/services/oauth2/userinfo", oauth_userinfo, methods=["GET", "POST"]),
        Route("/services/data", data_api, methods=_ALL_METHODS),
        Route("/services/data{rest:path}", data_api, methods=_ALL_METHODS),
    ]
    app = Starlette(routes=routes)
    return FaultMiddleware(
        app,
        faults=emu.faults,
        calls=emu.calls,
        classify=endpoint_family,
        render_fault_body=render_fault,
    )


JsonHandler = Callable[[dict[str, Any]], Any]


def control_json(fn: JsonHandler) -> Callable[[Request], Any]:
    """Wrap a control-plane function taking a JSON body into a Starlette endpoint."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
            result = fn(body)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status)
        return JSONResponse(result if result is not None else {"ok": True})

    return endpoint
