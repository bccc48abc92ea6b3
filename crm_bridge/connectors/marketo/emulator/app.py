"""Assembles the ASGI app: the size and concurrency gate, fault middleware, routes.

Why this order: the gate is outermost because Marketo refuses an oversized request (HTTP 413 /
414) or an 11th call in flight (615) before anything else happens, and a call held by an injected
latency fault is still "in flight" for the 615 count; faults and call counts come next, before
auth and the rate window, exactly where a flaky network or an overloaded pod would strike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_bridge.connectors.marketo.emulator.errors import MESSAGES, MarketoError, request_id
from crm_bridge.connectors.marketo.emulator.limits import InFlight
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.connectors.marketo.emulator.web import ARRIVAL_KEY, envelope, json_response
from crm_bridge.emulators.runtime import (
    CONTROL_PREFIX,
    CallCounter,
    Fault,
    FaultMiddleware,
    FaultPlane,
    read_body,
    replay_body,
)

__all__ = ["Gate", "build_app", "classify", "render_fault"]

_FAMILIES = (
    ("/rest/v1/activities", "activities"),
    ("/rest/v1/leads/programs", "programs"),
    ("/rest/v1/programs", "programs"),
    ("/rest/v1/lead", "leads"),
    ("/rest/v1/list", "lists"),
    ("/rest/v1/opportunities", "opportunities"),
    ("/rest/v1/companies", "companies"),
    ("/bulk/v1/leads/export", "bulk_export"),
    ("/bulk/v1/leads", "bulk_import"),
)


def classify(method: str, path: str) -> str | None:
    """The endpoint family a call counts against (``None``: not counted)."""
    if path.startswith("/identity/"):
        return "identity"
    for prefix, family in _FAMILIES:
        if path.startswith(prefix):
            return family
    if path.startswith(("/rest/", "/bulk/")):
        return "other"
    return None


def render_fault(fault: Fault) -> bytes:
    """The body of an injected answer.

    ``{"marketo_error": "606"}`` (optionally with ``"message"``) renders the vendor envelope for
    that code, so a test can inject "606 with HTTP 200" exactly as the vendor sends it; another
    body is sent as is; none renders 611 "System error".
    """
    body = fault.body
    if isinstance(body, dict) and "marketo_error" in body:
        code = str(body["marketo_error"])
        err = MarketoError(code, body.get("message") or MESSAGES.get(code))
        return json.dumps(envelope(MarketoEmulatorSettings(), None, err)).encode()
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if body is not None:
        return json.dumps(body).encode()
    return json.dumps(envelope(MarketoEmulatorSettings(), None, MarketoError(611))).encode()


def _api_path(path: str) -> bool:
    return path.startswith(("/rest/", "/bulk/"))


class Gate:
    """Pure ASGI middleware: HTTP 414 / 413 for oversized calls, 615 above the in-flight limit."""

    def __init__(
        self,
        app: ASGIApp,
        settings: MarketoEmulatorSettings,
        in_flight: InFlight,
        arrival: Callable[[], int] | None = None,
    ):
        self.app = app
        self.settings = settings
        self.in_flight = in_flight
        self.arrival = arrival

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass through, holding an in-flight slot for the whole call."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        s = self.settings
        path: str = scope["path"]
        uri_len = len(scope.get("raw_path") or path.encode()) + len(scope.get("query_string", b""))
        if uri_len + 1 > s.max_uri_bytes:
            await _plain(send, 414, b"Request-URI Too Long")
            return
        limit = s.max_import_bytes if path == "/bulk/v1/leads.json" else s.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await _plain(send, 413, b"Request Entity Too Large")
                return
        elif scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            # A chunked body has no length up front: read it (up to the limit) and replay it.
            body = await read_body(receive, limit)
            if body is None:
                await _plain(send, 413, b"Request Entity Too Large")
                return
            receive = replay_body(body, receive)
        if not _api_path(path):
            await self.app(scope, receive, send)
            return
        cap = s.concurrency_limit if s.rate_limits_enabled else None
        if not self.in_flight.enter(cap):
            response = json_response(envelope(s, None, MarketoError(615)))
            await response(scope, receive, send)
            return
        if self.arrival is not None:
            # What existed when the call arrived (the upsert race reads it; see settings).
            scope.setdefault("state", {})[ARRIVAL_KEY] = self.arrival()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.leave()


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return json_response(
            {"requestId": request_id(), "success": False, "errors": [MarketoError(605).as_error()]}
        )
    return Response("Not Found", status_code=404, media_type="text/plain")


def build_app(
    routes: Sequence[BaseRoute],
    *,
    settings: MarketoEmulatorSettings,
    faults: FaultPlane,
    calls: CallCounter,
    in_flight: InFlight,
    arrival: Callable[[], int] | None = None,
) -> ASGIApp:
    """The ASGI app: gate, then fault injection and call counting, then the routes."""
    app = Starlette(routes=list(routes), exception_handlers={404: _not_found, 405: _not_found})
    faulted = FaultMiddleware(
        app, faults=faults, calls=calls, classify=classify, render_fault_body=render_fault
    )
    return Gate(faulted, settings, in_flight, arrival)
