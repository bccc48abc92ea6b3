"""Marketo-specific control routes next to the shared ``/__emulator__`` ones.

* ``POST /__emulator__/leads {"leads": [...]} | {"count", "seed"}`` -- add leads directly (no
  limits), logged as "New Lead" like any create; answers their ids.
* ``POST /__emulator__/leads/{id}/edit {"changes", "reason"?}`` -- a marketer's edit in the
  Marketo UI: "Change Data Value" rows whose ``Source`` is not the API (echo detection).
* ``POST /__emulator__/activities {"leadId", "type", "primaryAttributeValue"?,
  "primaryAttributeValueId"?, "attributes"?}`` -- record an engagement (``type`` is an id or a
  key such as ``fill_out_form``, ``visit_webpage``, ``open_email``, ``click_link``).
* ``POST /__emulator__/fields {"name", "dataType", "displayName"?}`` -- a custom lead field.
* ``POST /__emulator__/lists {"name", "description"?, "programName"?}`` -- a static list (the
  Asset API is not in the lead-database swagger this emulator serves).
* ``POST /__emulator__/programs {"name", "statuses"?, "successStatuses"?}`` -- a program.
* ``GET|POST /__emulator__/settings`` -- read or change :class:`MarketoEmulatorSettings` (e.g.
  ``daily_quota``, ``native_crm_sync``, ``rate_limits_enabled``); ``POST`` also takes
  ``daily_used`` (pretend calls were made today) and ``reset_limits``.
* ``GET /__emulator__/limits`` -- the rate window, daily count and in-flight calls.
* ``POST /__emulator__/bulk/step {"id"}`` -- move an extract or import job one state on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.activities import type_by_key
from crm_bridge.connectors.marketo.emulator.fields import FieldError
from crm_bridge.connectors.marketo.emulator.limits import InFlight
from crm_bridge.connectors.marketo.emulator.seed import seed_leads
from crm_bridge.connectors.marketo.emulator.web import Ctx
from crm_bridge.emulators.runtime import CONTROL_PREFIX

__all__ = ["add_leads", "configure", "extra_control_routes", "record_activity"]

_UI_REASON = "Changed by user"


def add_leads(ctx: Ctx, leads: list[dict[str, Any]]) -> list[int]:
    """Create leads as given (values checked against the schema); their ids."""
    inst = ctx.instance
    with inst.lock:
        ids = []
        for values in leads:
            coerced = {k: inst.schema.coerce(k, v) for k, v in values.items()}
            ids.append(inst.create_lead(coerced, source="New person").id)
        return ids


def record_activity(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    """Append one engagement activity for an existing lead; the rendered activity."""
    inst = ctx.instance
    with inst.lock:
        lead_id = int(body["leadId"])
        if lead_id not in inst.leads:
            raise KeyError(f"lead {lead_id}")
        activity_type = type_by_key(body["type"])
        activity = inst.log(
            lead_id,
            activity_type.id,
            primary_value=body.get("primaryAttributeValue"),
            primary_value_id=body.get("primaryAttributeValueId"),
            attributes=dict(body.get("attributes") or {}),
        )
        return {"id": activity.id, "activityTypeId": activity.type_id, "leadId": lead_id}


def configure(ctx: Ctx, in_flight: InFlight, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply settings changes (validated by the model); the settings and limits after."""
    extra = {"daily_used", "reset_limits"}
    known = set(type(ctx.settings).model_fields) | extra
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    for key, value in changes.items():
        if key not in extra:
            setattr(ctx.settings, key, value)
    if changes.get("reset_limits"):
        ctx.limiter.reset()
    if "daily_used" in changes:
        ctx.limiter.set_daily_used(int(changes["daily_used"]))
    return status(ctx, in_flight)


def status(ctx: Ctx, in_flight: InFlight) -> dict[str, Any]:
    """Settings (without the client secret) and the limits' state."""
    settings = ctx.settings.model_dump(exclude={"client_secret"})
    return {
        "settings": settings,
        "limits": {
            **ctx.limiter.status(),
            "in_flight": in_flight.current,
            "in_flight_peak": in_flight.peak,
        },
    }


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(fn: Callable[[Request], Awaitable[Any]], status_code: int = 200) -> Endpoint:
    async def run(request: Request) -> Response:
        try:
            return JSONResponse(await fn(request), status_code=status_code)
        except (KeyError, ValueError, TypeError, FieldError, ValidationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return run


def extra_control_routes(ctx: Ctx, in_flight: InFlight) -> list[Route]:
    """The routes listed in the module docstring."""
    inst = ctx.instance

    async def leads(request: Request) -> Any:
        body = await request.json()
        rows = (
            body["leads"]
            if "leads" in body
            else seed_leads(int(body["count"]), int(body.get("seed", 0)))
        )
        return {"ids": add_leads(ctx, rows)}

    async def edit(request: Request) -> Any:
        body = await request.json()
        with inst.lock:
            lead = inst.leads[int(request.path_params["lead_id"])]
            changes = {k: inst.schema.coerce(k, v) for k, v in body["changes"].items()}
            changed = inst.update_lead(lead, changes, reason=str(body.get("reason", _UI_REASON)))
        return {"changed": changed}

    async def activities(request: Request) -> Any:
        return record_activity(ctx, await request.json())

    async def fields(request: Request) -> Any:
        body = await request.json()
        with inst.lock:
            field = inst.schema.add_custom(
                str(body["name"]), str(body["dataType"]), body.get("displayName")
            )
        return field.describe()

    async def lists(request: Request) -> Any:
        body = await request.json()
        with inst.lock:
            return inst.create_list(
                str(body["name"]),
                description=str(body.get("description", "")),
                program_name=body.get("programName"),
            ).render()

    async def programs(request: Request) -> Any:
        body = await request.json()
        with inst.lock:
            program = inst.create_program(
                str(body["name"]), body.get("statuses"), body.get("successStatuses")
            )
        return {"id": program.id, "name": program.name, "statuses": program.statuses}

    async def settings(request: Request) -> Any:
        if request.method == "GET":
            return status(ctx, in_flight)
        return configure(ctx, in_flight, await request.json())

    async def limits(request: Request) -> Any:
        return status(ctx, in_flight)["limits"]

    async def step(request: Request) -> Any:
        body = await request.json()
        return ctx.bulk.step(str(body["id"]), inst.now())

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/leads", _guarded(leads, 201), methods=["POST"]),
        Route(f"{p}/leads/{{lead_id:int}}/edit", _guarded(edit), methods=["POST"]),
        Route(f"{p}/activities", _guarded(activities, 201), methods=["POST"]),
        Route(f"{p}/fields", _guarded(fields, 201), methods=["POST"]),
        Route(f"{p}/lists", _guarded(lists, 201), methods=["POST"]),
        Route(f"{p}/programs", _guarded(programs, 201), methods=["POST"]),
        Route(f"{p}/settings", _guarded(settings), methods=["GET", "POST"]),
        Route(f"{p}/limits", _guarded(limits), methods=["GET"]),
        Route(f"{p}/bulk/step", _guarded(step), methods=["POST"]),
    ]
