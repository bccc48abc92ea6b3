"""HubSpot-specific control routes next to the shared ``/__emulator__`` ones.

* ``POST /__emulator__/token {"user_email"}`` -- a token acting as that portal user; writes made
  with it carry ``hs_updated_by_user_id`` (a marketer editing in the UI, as seen by the API).
* ``GET|POST /__emulator__/rate-limits`` -- read or change the limits: ``enabled``, ``tier``,
  ``burst_limit``, ``burst_window_seconds``, ``search_per_second``, ``daily_limit``,
  ``send_retry_after``, ``daily_used`` (pretend calls were made today), ``reset`` (empty buckets).
* ``POST /__emulator__/seed {"contacts", "seed"}`` -- add realistic data.
* ``GET|POST /__emulator__/journal`` -- the webhooks journal's status, or arm its faults:
  ``duplicate_next``, ``reorder_next``, ``drop_next`` (that many of the next entries appended are
  duplicated / have their events reversed / are lost), ``expire_all`` (every entry so far is
  gone, so its offset answers 404), ``retention_seconds``, ``file_ttl_seconds``.
* ``POST /__emulator__/restore {"objectType", "id", "user_email"}`` -- restore an archived record
  from the recycle bin as that portal user (the UI's "Restore"; the API has no such call).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.catalog import resolve_type
from crm_bridge.connectors.hubspot.emulator.settings import RATE_LIMIT_TIERS
from crm_bridge.connectors.hubspot.emulator.web import Ctx
from crm_bridge.emulators.runtime import CONTROL_PREFIX

__all__ = ["configure_rate_limits", "extra_control_routes", "issue_user_token", "restore_record"]

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


def restore_record(ctx: Ctx, obj: str, record_id: str, email: str | None) -> dict[str, Any]:
    """Restore an archived record as the user with ``email`` (default: the first owner).

    Journaled like an API call made with that user's token: one RESTORE entry, ``CRM_UI``.
    KeyError for an unknown user, LookupError when no such archived record can come back.
    """
    otype = resolve_type(obj)
    if otype is None or not record_id.isdigit():
        raise LookupError(f"no archived {obj} {record_id}")
    owner = next(
        (o for o in ctx.portal.owners if email is None or o["email"].lower() == email.lower()),
        None,
    )
    if owner is None:
        raise KeyError(email)
    principal = ctx.tokens.issue_user_token(int(owner["userId"]), owner["email"])
    journaled = ctx.journal.call(principal) if ctx.journal is not None else nullcontext()
    with ctx.portal.lock, journaled:
        rec = ctx.portal.restore(otype.name, int(record_id), principal.actor)
        if rec is None:
            raise LookupError(f"no archived {obj} {record_id}")
        ctx.search.clear()
        return ctx.portal.render(otype.name, rec, None)


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

    async def journal(request: Request) -> Response:
        if ctx.journal is None:
            return JSONResponse({"error": "no journal"}, status_code=404)
        if request.method == "GET":
            return JSONResponse(ctx.journal.status())
        try:
            return JSONResponse(ctx.journal.configure(await request.json()))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def restore(request: Request) -> Response:
        body = await request.json()
        try:
            found = restore_record(
                ctx,
                str(body.get("objectType", "")),
                str(body.get("id", "")),
                body.get("user_email"),
            )
        except KeyError:
            return JSONResponse({"error": f"no user {body.get('user_email')!r}"}, status_code=404)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(found)

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/token", token, methods=["POST"]),
        Route(f"{p}/rate-limits", rate_limits, methods=["GET", "POST"]),
        Route(f"{p}/seed", seed_route, methods=["POST"]),
        Route(f"{p}/journal", journal, methods=["GET", "POST"]),
        Route(f"{p}/restore", restore, methods=["POST"]),
    ]
