"""A tiny router for the ``/services/data/vXX.X/...`` resources.

Why not Starlette routing: Composite runs subrequests *inside* one call (counted once, in one
transaction), so every resource must be callable without HTTP.  Handlers here take a
:class:`Ctx` and return a :class:`Resp`; the Starlette app and the Composite resource both
dispatch through the same :class:`Router`.  Matching happens on the *raw* (still
percent-encoded) path so that an external id containing ``%2F`` stays one segment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

from crm_bridge.connectors.salesforce.emulator.errors import ApiError, not_found
from crm_bridge.connectors.salesforce.emulator.state import Org

__all__ = ["Ctx", "Handler", "Resp", "Router"]


@dataclass
class Resp:
    """A handler's answer: status, JSON-able body (or raw bytes), extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json;charset=UTF-8"

    def encode(self) -> bytes:
        """The bytes on the wire."""
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Ctx:
    """One request as the handlers see it."""

    org: Org
    user_id: str
    method: str
    version: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str = ""
    path_args: dict[str, str] = field(default_factory=dict)
    _json: Any = None
    _parsed: bool = False

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.params.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON; a malformed body is a 400 JSON_PARSER_ERROR like a real org's."""
        if not self._parsed:
            if not self.body.strip():
                self._json = None
            else:
                try:
                    self._json = json.loads(self.body)
                except ValueError as exc:
                    raise ApiError(
                        400,
                        "JSON_PARSER_ERROR",
                        f"Unexpected character: was expecting a JSON value ({exc})",
                    ) from None
            self._parsed = True
        return self._json

    def json_object(self) -> dict[str, Any]:
        """The body, which must be a JSON object."""
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of object from a non-object value",
            )
        return body

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive)."""
        return self.headers.get(name.lower())

    def version_path(self) -> str:
        """``/services/data/v59.0`` for the version this request used."""
        return f"/services/data/v{self.version}"


Handler = Callable[[Ctx], Resp]


@dataclass
class _Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]
    plus_args: frozenset[str]


class Router:
    """Maps (method, path below the version prefix) to a handler."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._index: dict[str, _Route] = {}

    def add(
        self, methods: str, pattern: str, *, plus: tuple[str, ...] = ()
    ) -> Callable[[Handler], Handler]:
        """Register a handler; ``pattern`` uses ``{name}`` for one path segment.

        Names in ``plus`` are decoded with ``unquote_plus`` (a ``+`` is a space), as
        simple-salesforce sends external-id values through ``quote_plus``.
        """

        def deco(fn: Handler) -> Handler:
            route = self._index.get(pattern)
            if route is None:
                rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
                route = _Route(re.compile(f"^{rx}$"), {}, frozenset(plus))
                self._index[pattern] = route
                self._routes.append(route)
            for method in methods.split(","):
                route.handlers[method.strip().upper()] = fn
            return fn

        return deco

    def resolve(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and decoded path arguments; raises 404 / 405 ApiErrors."""
        path = raw_path.strip("/")
        for route in self._routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            handler = route.handlers.get(method.upper())
            if handler is None:
                allowed = ",".join(sorted(route.handlers))
                raise ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{method.upper()}' not allowed. Allowed are {allowed}",
                )
            args = {
                k: (unquote_plus(v) if k in route.plus_args else unquote(v))
                for k, v in m.groupdict().items()
            }
            return handler, args
        raise not_found()

    def dispatch(self, ctx: Ctx, sub_path: str) -> Resp:
        """Resolve and run a handler, turning :class:`ApiError` into its error response."""
        try:
            handler, args = self.resolve(ctx.method, sub_path)
            ctx.path_args = args
            return handler(ctx)
        except ApiError as err:
            return Resp(err.status, err.body())
