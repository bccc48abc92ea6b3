"""HubSpot-specific control routes next to the shared ``/__emulator__`` ones.

* ``POST /__emulator__/token {"user_email"}`` -- a token acting as that portal user; writes made
  with it carry ``hs_updated_by_user_id`` (a marketer editing in the UI, as seen by the API).
* ``GET|POST /__emulator__/rate-limits`` -- read or change the limits: ``enabled``, ``tier``,
  ``burst_limit``, ``burst_window_seconds``, ``search_per_second``, ``daily_limit``,
  ``send_retry_after``, ``daily_used`` (pretend calls were made today), ``reset`` (empty buckets).
* ``POST /__emulator__/seed {"contacts", "seed"}`` -- add realistic data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.settings import RATE_LIMIT_TIERS
from crm_bridge.connectors.hubspot.emulator.web import Ctx
from crm_bridge.emulators.runtime import CONTROL_PREFIX

__all__ = ["configure_rate_limits", "extra_control_routes", "issue_user_token"]

_LIMIT_FIELDS = {
    "enabled": "rate_limits_enabled",
    "burst_limit": "burst_limit",
    "burst_window_seconds": "burst_window_seconds",
    "search_per_second": "search_per_second",
    "daily_limit": "daily_limit",
    "send_retry_after": "send_retry_after",
}


def configure_rate_limits(ctx: Ctx, changes: dict[str, Any]) -> dict[str, object]:
    """Apply a rate-limit change (validated by the settings model); returns the new status."""
    unknown = set(changes) - {*_LIMIT_FIELDS, "tier", "daily_used", "reset"}
    if unknown:
        raise ValueError(f"unknown rate-limit keys: {sorted(unknown)}")
    s = ctx.settings
    if "tier" in changes:
        tier = changes["tier"]
        if tier not in RATE_LIMIT_TIERS:
            raise ValueError(f"unknown tier {tier!r}; known: {sorted(RATE_LIMIT_TIERS)}")
        s.burst_limit, s.daily_limit = RATE_LIMIT_TIERS[tier]
    for key, attr in _LIMIT_FIELDS.items():
        if key in changes:
            setattr(s, attr, changes[key])
    if changes.get("reset"):
        ctx.limiter.reset()
    if "daily_used" in changes:
        ctx.limiter.set_daily_used(int(changes["daily_used"]))
    return ctx.limiter.status()


def issue_user_token(ctx: Ctx, email: str) -> dict[str, Any]:
    """A token for the portal user with this email; KeyError if there is none."""
    owner = next((o for o in ctx.portal.owners if o["email"].lower() == email.lower()), None)
    if owner is None:
        raise KeyError(email)
    principal = ctx.tokens.issue_user_token(int(owner["userId"]), owner["email"])
    return {
        "access_token": principal.token,
        "user_id": owner["userId"],
        "owner_id": owner["id"],
        "email": owner["email"],
    }


def extra_control_routes(ctx: Ctx, seed: Callable[[int, int], dict[str, int]]) -> list[Route]:
    """The routes listed in the module docstring."""

    async def token(request: Request) -> Response:
        body = await request.json()
        try:
            return JSONResponse(
                issue_user_token(ctx, str(body.get("user_email", ""))), status_code=201
            )
        except KeyError:
            known = [o["email"] for o in ctx.portal.owners]
            return JSONResponse(
                {"error": f"no user {body.get('user_email')!r}", "known": known}, status_code=404
            )

    async def rate_limits(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(ctx.limiter.status())
        try:
            return JSONResponse(configure_rate_limits(ctx, await request.json()))
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def seed_route(request: Request) -> Response:
        body = await request.json()
        return JSONResponse(seed(int(body["contacts"]), int(body.get("seed", 0))), status_code=201)

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/token", token, methods=["POST"]),
        Route(f"{p}/rate-limits", rate_limits, methods=["GET", "POST"]),
        Route(f"{p}/seed", seed_route, methods=["POST"]),
    ]
