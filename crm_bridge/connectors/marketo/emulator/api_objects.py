"""Opportunities, opportunity roles and companies over the shared object protocol.

Why the 1018 answer: with native Salesforce/Dynamics sync on, the CRM owns opportunities, so the
vendor makes them read-only and refuses every opportunity-role call with 1018 "CRM Enabled"; a
connector must detect that and stay out of the way (the ``native_crm_sync`` setting).

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/opportunities,
.../opportunity-roles, .../companies
"""

from __future__ import annotations

from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, missing
from crm_bridge.connectors.marketo.emulator.objects import OBJECT_TYPES, ObjectStore
from crm_bridge.connectors.marketo.emulator.web import Call, Ctx, Handler, Ok, route

__all__ = ["object_routes"]

_DESCRIBE_STAMP = 1_500_000_000.0


def _crm_enabled() -> MarketoError:
    return MarketoError(1018, "CRM Enabled")


def _handlers(api_name: str, *, writes_locked: bool, reads_locked: bool) -> dict[str, Handler]:
    def store(ctx: Ctx) -> ObjectStore:
        return ctx.instance.objects[api_name]

    def guard(ctx: Ctx, *, write: bool) -> None:
        if ctx.settings.native_crm_sync and (reads_locked or (write and writes_locked)):
            raise _crm_enabled()

    def describe(ctx: Ctx, call: Call) -> Ok:
        guard(ctx, write=False)
        return Ok([OBJECT_TYPES[api_name].describe(_DESCRIBE_STAMP)])

    def query(ctx: Ctx, call: Call) -> Ok:
        guard(ctx, write=False)
        fields = call.multi("fields")
        body = call.body if isinstance(call.body, dict) else {}
        if call.param("filterType") is None and isinstance(body.get("input"), list):
            keys = [k for k in call.inputs() if isinstance(k, dict)]
            return Ok(store(ctx).query_keys(keys, fields or body.get("fields")))
        filter_type = call.require("filterType")
        values = call.multi("filterValues")
        if not values:
            raise missing("filterValues")
        if len(values) > ctx.settings.batch_size:
            raise MarketoError(1003, f"Too many filter values, max {ctx.settings.batch_size}")
        return Ok(store(ctx).query(filter_type, values, fields))

    def sync(ctx: Ctx, call: Call) -> Ok:
        guard(ctx, write=True)
        body = call.body_dict()
        inputs = call.inputs()
        action = str(body.get("action") or "createOrUpdate")
        dedupe_by = str(body.get("dedupeBy") or "dedupeFields")
        return Ok(store(ctx).sync(action, dedupe_by, inputs, ctx.instance.now()))

    def delete(ctx: Ctx, call: Call) -> Ok:
        guard(ctx, write=True)
        body = call.body_dict()
        return Ok(store(ctx).delete(str(body.get("deleteBy") or "dedupeFields"), call.inputs()))

    return {"describe": describe, "GET": query, "POST": sync, "delete": delete}


def _object_routes(ctx: Ctx, base: str, api_name: str, **locks: bool) -> list[Route]:
    h = _handlers(api_name, **locks)
    return [
        route(ctx, f"{base}.json", {"GET": h["GET"], "POST": h["POST"]}),
        route(ctx, f"{base}/delete.json", {"POST": h["delete"]}),
        route(ctx, f"{base}/describe.json", {"GET": h["describe"]}),
    ]


def object_routes(ctx: Ctx) -> list[Route]:
    """Routes for companies, opportunities and roles (roles before the opportunity paths)."""
    return [
        *_object_routes(
            ctx,
            "/rest/v1/opportunities/roles",
            "opportunityRole",
            writes_locked=True,
            reads_locked=True,
        ),
        *_object_routes(
            ctx, "/rest/v1/opportunities", "opportunity", writes_locked=True, reads_locked=False
        ),
        *_object_routes(
            ctx, "/rest/v1/companies", "company", writes_locked=False, reads_locked=False
        ),
    ]
