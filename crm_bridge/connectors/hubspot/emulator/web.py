"""The HTTP seam shared by every endpoint: auth, rate limits, JSON in and out, error rendering.

Why one wrapper: every HubSpot endpoint authenticates, counts against the limits, answers the same
error envelope and sends the ``X-HubSpot-RateLimit-*`` headers; handlers stay plain functions
``(ctx, call) -> Reply`` that run under the portal lock and never touch Starlette directly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crm_bridge.connectors.hubspot.emulator.auth import Principal, TokenRegistry
from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, bad_request
from crm_bridge.connectors.hubspot.emulator.journal import Journal
from crm_bridge.connectors.hubspot.emulator.ratelimit import RateLimiter
from crm_bridge.connectors.hubspot.emulator.search import SearchEngine
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.connectors.hubspot.emulator.state import Portal
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["Call", "Ctx", "Handler", "Reply", "endpoint", "json_response"]

JSON_TYPE = "application/json;charset=utf-8"


@dataclass
class Ctx:
    """The services one emulator instance shares between its handlers."""

    settings: HubSpotEmulatorSettings
    clock: EmulatorClock
    portal: Portal
    search: SearchEngine
    tokens: TokenRegistry
    limiter: RateLimiter
    journal: Journal | None = None


@dataclass
class Call:
    """One parsed request, as handlers see it."""

    request: Request
    principal: Principal
    body: Any

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        """A single query parameter."""
        return self.request.query_params.get(name)

    def multi(self, name: str) -> list[str] | None:
        """A list parameter sent repeated (``a=1&a=2``) and/or comma-separated (``a=1,2``)."""
        raw = self.request.query_params.getlist(name)
        if not raw:
            return None
        return [part.strip() for item in raw for part in item.split(",") if part.strip()]

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter in any case (the Python client sends ``archived=False``)."""
        raw = self.query(name)
        if raw is None or raw == "":
            return default
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise bad_request(f"{name} must be true or false, got {raw!r}.")

    def int_param(self, name: str, default: int, *, maximum: int) -> int:
        """A bounded positive integer parameter such as ``limit``."""
        raw = self.query(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"{name} must be an integer, got {raw!r}.") from None
        if not 0 < value <= maximum:
            raise bad_request(f"{name} must be between 1 and {maximum}, got {value}.")
        return value

    def page_link(self, after: str) -> str:
        """The ``paging.next.link`` URL: this request with ``after`` replaced."""
        return str(self.request.url.include_query_params(after=after))

    def body_dict(self) -> dict[str, Any]:
        """The JSON body, required to be an object."""
        if not isinstance(self.body, dict):
            raise bad_request("Invalid input JSON: expected an object.")
        return self.body

    def inputs(self, maximum: int) -> list[dict[str, Any]]:
        """``{"inputs": [...]}`` of a batch call, with the documented size limit."""
        inputs = self.body_dict().get("inputs")
        if not isinstance(inputs, list):
            raise bad_request("Invalid input JSON: inputs must be a list.")
        if len(inputs) > maximum:
            raise bad_request(
                f"Batch input limit exceeded: {len(inputs)} inputs given, the limit is {maximum}.",
                context={"limit": [str(maximum)], "size": [str(len(inputs))]},
                sub_category="BATCH_INPUT_LIMIT_EXCEEDED",
            )
        if not all(isinstance(i, dict) for i in inputs):
            raise bad_request("Invalid input JSON: every input must be an object.")
        return inputs


Reply = tuple[int, Any] | Response
Handler = Callable[[Ctx, Call], Reply]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (204 carries no body)."""
    if status == 204 or body is None:
        return Response(status_code=status, headers=headers)
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type=JSON_TYPE, headers=headers)


def error_response(err: HubSpotError, headers: dict[str, str] | None = None) -> Response:
    """Render a :class:`HubSpotError`."""
    return json_response(err.status, err.body, {**(headers or {}), **err.headers})


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"Invalid input JSON on line {getattr(exc, 'lineno', 1)}.") from None


def endpoint(
    ctx: Ctx, handler: Handler, *, search: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler into a Starlette endpoint with auth, limits and error rendering."""

    async def run(request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            principal = ctx.tokens.authenticate(request.headers.get("authorization"))
            headers = ctx.limiter.admit(principal.token, search=search)
            body = await _read_json(request) if request.method in ("POST", "PUT", "PATCH") else None
            call = Call(request, principal, body)
            # One journal entry per call: the changes the handler makes are collected and
            # appended together when it returns (or fails part-way).
            journaled = (
                ctx.journal.call(principal) if ctx.journal is not None else contextlib.nullcontext()
            )
            with ctx.portal.lock, journaled:
                reply = handler(ctx, call)
        except HubSpotError as err:
            return error_response(err, headers)
        if isinstance(reply, Response):
            reply.headers.update(headers)
            return reply
        status, payload = reply
        return json_response(status, payload, headers)

    return run
