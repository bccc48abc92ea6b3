"""Assembles the Starlette app: API routes, control plane, fault middleware, 404/405 bodies.

Why the fault middleware wraps everything: faults and call counts must apply before auth and rate
limits, exactly where a flaky network or an overloaded HubSpot would strike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Scope

from crm_bridge.connectors.hubspot.emulator.errors import error_body
from crm_bridge.connectors.hubspot.emulator.ratelimit import RateLimiter
from crm_bridge.connectors.hubspot.emulator.web import json_response
from crm_bridge.emulators.runtime import (
    CallCounter,
    Fault,
    FaultHeaders,
    FaultMiddleware,
    FaultPlane,
)

__all__ = ["build_app", "classify", "fault_headers", "render_fault"]

_FAMILIES = ("properties", "lists", "owners", "pipelines")
# The families whose real answers carry the X-HubSpot-RateLimit-* burst headers: every API call
# but search (its own per-second bucket, no headers) and OAuth (outside the API limits).
_BURST_FAMILIES = frozenset({"objects", "batch", "associations", "journal", *_FAMILIES})


def classify(method: str, path: str) -> str | None:
    """The endpoint family a call counts against (``None``: not counted)."""
    if path.startswith("/oauth/"):
        return "oauth"
    if path.startswith("/webhooks-journal/files/"):
        return "journal_files"  # pre-signed storage: counted, but no API call
    if path.startswith("/webhooks-journal/"):
        return "journal"
    if path.startswith("/crm/v3/objects/"):
        parts = path.split("/")
        if len(parts) > 5 and parts[5] in ("batch", "search"):
            return parts[5]
        return "objects"
    if path.startswith("/crm/v4/"):
        return "associations"
    for family in _FAMILIES:
        if path.startswith(f"/crm/v3/{family}"):
            return family
    return None


_FAULT_DEFAULTS = {
    400: ("There was a problem with the request.", "VALIDATION_ERROR"),
    401: ("The OAuth token used to make this call is invalid.", "INVALID_AUTHENTICATION"),
    403: ("This app hasn't been granted all required scopes to make this call.", "MISSING_SCOPES"),
    404: ("resource not found", "OBJECT_NOT_FOUND"),
    409: ("Conflict", "CONFLICT"),
}


def render_fault(fault: Fault) -> bytes:
    """A HubSpot-shaped body for an injected status when the fault gives none."""
    if fault.body is not None:
        if isinstance(fault.body, bytes):
            return fault.body
        return (
            fault.body.encode() if isinstance(fault.body, str) else json.dumps(fault.body).encode()
        )
    status = fault.status or 500
    if status == 429:
        body: dict[str, object] = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "00000000-fault",
            "policyName": "TEN_SECONDLY_ROLLING",
        }
    else:
        message, category = _FAULT_DEFAULTS.get(
            status,
            ("internal error", "INTERNAL_ERROR")
            if status >= 500
            else ("There was a problem with the request.", "VALIDATION_ERROR"),
        )
        body = error_body(message, category)
    return json.dumps(body).encode()


def fault_headers(limiter: RateLimiter) -> FaultHeaders:
    """Headers for injected answers: an injected 429 carries the rate-limit headers.

    Why: HubSpot sends ``X-HubSpot-RateLimit-*`` on its 429s as on every other answer of the
    family, and crm-bridge's limiter reads them; a fault-injected 429 must not be the one answer
    that lacks them.  Other injected statuses stand for failures ahead of the limiter and get none.
    """

    def headers(fault: Fault, scope: Scope) -> dict[str, str]:
        if fault.status != 429 or classify(scope["method"], scope["path"]) not in _BURST_FAMILIES:
            return {}
        auth = Headers(scope=scope).get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return limiter.current_headers(token)

    return headers


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return json_response(
            405,
            error_body(
                f"HTTP method {request.method} is not supported by {request.url.path}",
                "VALIDATION_ERROR",
            ),
        )
    return json_response(
        status,
        error_body(f"Unable to route {request.method} {request.url.path}", "OBJECT_NOT_FOUND"),
    )


def build_app(
    routes: Sequence[BaseRoute],
    *,
    faults: FaultPlane,
    calls: CallCounter,
    limiter: RateLimiter,
) -> ASGIApp:
    """The ASGI app: routes under fault injection and call counting.

    ``limiter`` lends injected 429s the rate-limit headers (see :func:`fault_headers`).
    """
    app = Starlette(routes=list(routes), exception_handlers={404: _not_found, 405: _not_found})
    return FaultMiddleware(
        app,
        faults=faults,
        calls=calls,
        classify=classify,
        render_fault_body=render_fault,
        fault_headers=fault_headers(limiter),
    )
