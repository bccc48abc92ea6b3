"""The HTTP seam shared by every REST endpoint: auth, limits, parameters, the envelope.

Why one wrapper: every Marketo call authenticates (600/601/602), passes the quota and the rate
window (607/606), may arrive as ``POST`` with ``_method=GET`` and its query in a form body (the
vendor's answer to the 8 KB URI limit, used by ``marketorestpython`` for every lead filter), and
answers the same always-200 envelope ``{requestId, success, result|errors, moreResult?,
nextPageToken?}``.  Handlers stay plain functions ``(ctx, call) -> Ok`` that run under the
instance lock and raise :class:`MarketoError` for whole-request failures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.auth import Token, TokenRegistry
from crm_bridge.connectors.marketo.emulator.bulk import BulkJobs
from crm_bridge.connectors.marketo.emulator.errors import (
    UNCOUNTED,
    MarketoError,
    blank,
    missing,
    request_id,
)
from crm_bridge.connectors.marketo.emulator.limits import RateLimiter
from crm_bridge.connectors.marketo.emulator.settings import MarketoEmulatorSettings
from crm_bridge.connectors.marketo.emulator.state import Instance
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = [
    "ARRIVAL_KEY",
    "Call",
    "Ctx",
    "Handler",
    "MarketoRoute",
    "Ok",
    "envelope",
    "json_response",
    "route",
]

JSON_TYPE = "application/json;charset=UTF-8"
ARRIVAL_KEY = "marketo_next_lead_at_arrival"
"""``scope["state"]`` key: the next lead id when the call arrived (set by the app's gate)."""


@dataclass
class Ctx:
    """The services one emulator instance shares between its handlers."""

    settings: MarketoEmulatorSettings
    clock: EmulatorClock
    instance: Instance
    tokens: TokenRegistry
    limiter: RateLimiter
    bulk: BulkJobs


@dataclass
class Ok:
    """A successful answer: ``result`` (omitted when ``None``) and the paging members."""

    result: list[Any] | None = None
    more_result: bool | None = None
    next_page_token: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Call:
    """One parsed request, as handlers see it.

    ``params`` merges the query string with a form body (``_method=GET`` calls); ``body`` is the
    parsed JSON body, if any; ``raw`` the undecoded body (multipart uploads).
    """

    request: Request
    token: Token | None
    params: MultiDict
    body: Any
    raw: bytes
    batch_size: int

    def path_int(self, name: str) -> int:
        """An integer path parameter (1003 if it is not one)."""
        raw = str(self.request.path_params[name])
        try:
            return int(raw)
        except ValueError:
            raise MarketoError(1003, f"Invalid value '{raw}' for '{name}'") from None

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def param(self, name: str) -> str | None:
        """A single parameter (query or form); empty counts as absent."""
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def require(self, name: str) -> str:
        """A required parameter (1002 when absent)."""
        value = self.param(name)
        if value is None:
            raise missing(name)
        return value

    def multi(self, name: str) -> list[str] | None:
        """A list parameter: repeated (``id=1&id=2``) and/or comma-separated (``id=1,2``)."""
        raw = self.params.getlist(name)
        parts = [p.strip() for item in raw for p in str(item).split(",") if p.strip()]
        return parts or None

    def int_param(self, name: str, default: int, *, maximum: int | None = None) -> int:
        """A positive integer parameter such as ``batchSize`` (capped at ``maximum``)."""
        raw = self.param(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise MarketoError(1003, f"Invalid value '{raw}' for '{name}'") from None
        if value <= 0:
            raise MarketoError(1003, f"Invalid value '{raw}' for '{name}'")
        return min(value, maximum) if maximum is not None else value

    def batch(self) -> int:
        """``batchSize``: default and maximum are the instance's batch size (300)."""
        return self.int_param("batchSize", self.batch_size, maximum=self.batch_size)

    def body_dict(self) -> dict[str, Any]:
        """The JSON body, required to be an object (609 otherwise)."""
        if not isinstance(self.body, dict):
            raise MarketoError(609, "Invalid JSON: expected an object")
        return self.body

    def inputs(self, *, required: bool = True) -> list[Any]:
        """``input`` of the JSON body, at most one batch (1003 above)."""
        body = self.body if isinstance(self.body, dict) else {}
        items = body.get("input")
        if items is None:
            if required:
                raise blank("input")
            return []
        if not isinstance(items, list):
            raise MarketoError(1003, "'input' must be a list")
        if len(items) > self.batch_size:
            raise MarketoError(
                1003, f"Invalid data: {len(items)} records in input, max {self.batch_size}"
            )
        return items


Handler = Callable[[Ctx, Call], "Ok | Response"]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON response."""
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type=JSON_TYPE, headers=dict(headers or {}))


def envelope(
    settings: MarketoEmulatorSettings, ok: Ok | None, error: MarketoError | None
) -> dict[str, Any]:
    """The always-200 body for a success (``ok``) or a whole-request failure (``error``)."""
    body: dict[str, Any] = {"requestId": request_id()}
    if error is not None:
        body["success"] = False
        body["errors"] = [error.as_error()]
        if settings.complete_envelope:
            body["result"] = []
            body["warnings"] = []
        return body
    assert ok is not None
    body["success"] = True
    if ok.result is not None:
        body["result"] = ok.result
    if ok.more_result is not None:
        body["moreResult"] = ok.more_result
    if ok.next_page_token is not None:
        body["nextPageToken"] = ok.next_page_token
    if ok.warnings or settings.complete_envelope:
        body["warnings"] = ok.warnings
    if settings.complete_envelope:
        body["errors"] = []
    return body


async def _parse(request: Request) -> tuple[bytes, MultiDict, Any]:
    raw = await request.body()
    params: list[tuple[str, str]] = list(request.query_params.multi_items())
    body: Any = None
    ctype = request.headers.get("content-type", "").lower()
    if raw.strip():
        if "application/x-www-form-urlencoded" in ctype:
            params.extend(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        elif "multipart/form-data" in ctype:
            pass  # read by the handler (bulk import)
        elif "json" in ctype or not ctype:
            try:
                body = json.loads(raw)
            except ValueError:
                raise MarketoError(609, "Invalid JSON") from None
        else:
            raise MarketoError(612, "Invalid Content Type")
    return raw, MultiDict(params), body


class MarketoRoute(Route):
    """A route that knows which methods have their own handler.

    Why: ``POST`` is accepted on every readable path (``_method=GET``), so ``methods`` alone
    would claim operations the emulator does not implement; the swagger check reads
    :attr:`handled` instead.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        handled: frozenset[str],
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.handled = handled


def route(ctx: Ctx, path: str, handlers: Mapping[str, Handler]) -> MarketoRoute:
    """One path with a handler per method; ``POST ..._method=GET`` runs the GET handler."""
    methods = sorted({*handlers, "POST"} if "GET" in handlers else set(handlers))

    async def run(request: Request) -> Response:
        settings = ctx.settings
        try:
            raw, params, body = await _parse(request)
        except MarketoError as err:
            return json_response(envelope(settings, None, err))
        method = request.method
        if method == "POST" and str(params.get("_method", "")).upper() == "GET":
            method = "GET"
        handler = handlers.get(method)
        if handler is None:
            return json_response(envelope(settings, None, MarketoError(605)))
        token: Token | None = None
        try:
            token = ctx.tokens.authenticate(
                request.headers.get("authorization"), params.get("access_token")
            )
            now = ctx.limiter.admit()
        except MarketoError as err:
            return json_response(envelope(settings, None, err))
        call = Call(request, token, params, body, raw, settings.batch_size)
        error: MarketoError | None = None
        reply: Ok | Response | None = None
        try:
            with ctx.instance.lock:
                reply = handler(ctx, call)
        except MarketoError as err:
            error = err
        if error is None or error.code not in UNCOUNTED:
            ctx.limiter.count(now)
        if isinstance(reply, Response):
            return reply
        return json_response(envelope(settings, reply, error))

    return MarketoRoute(path, run, methods=methods, handled=frozenset(handlers))
