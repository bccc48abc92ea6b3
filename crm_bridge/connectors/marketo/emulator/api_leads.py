"""Lead endpoints: read by filter or id, sync, delete, describe, merge.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, blank, missing, reason
from crm_bridge.connectors.marketo.emulator.fields import FieldError
from crm_bridge.connectors.marketo.emulator.leads import (
    MAX_FILTER_MATCHES,
    check_fields,
    render_lead,
    sync_leads,
)
from crm_bridge.connectors.marketo.emulator.paging import page
from crm_bridge.connectors.marketo.emulator.web import ARRIVAL_KEY, Call, Ctx, Ok, route

__all__ = ["lead_routes"]


def get_by_filter(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/leads.json?filterType=&filterValues=`` (≤300 values)."""
    inst = ctx.instance
    filter_type = call.require("filterType")
    values = call.multi("filterValues")
    if not values:
        raise missing("filterValues")
    if len(values) > ctx.settings.batch_size:
        raise MarketoError(1003, f"Too many filter values, max {ctx.settings.batch_size}")
    try:
        inst.schema.check_key(filter_type)
    except FieldError as exc:
        raise MarketoError(exc.code, exc.message) from None
    fields = check_fields(inst, call.multi("fields"))
    seen: set[int] = set()
    matches = []
    for raw in values:
        try:
            wanted = inst.schema.filter_value(filter_type, raw)
        except FieldError as exc:
            raise MarketoError(exc.code, exc.message) from None
        for lead in inst.find(filter_type, wanted):
            if lead.id not in seen:
                seen.add(lead.id)
                matches.append(lead)
    if len(matches) > MAX_FILTER_MATCHES:
        raise MarketoError(1003, f"More than {MAX_FILTER_MATCHES} leads match the filter")
    matches.sort(key=lambda lead: lead.id)
    chunk, token = page(f"leads:{filter_type}", matches, call.param("nextPageToken"), call.batch())
    return Ok([render_lead(lead, fields) for lead in chunk], next_page_token=token)


def get_by_id(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/lead/{leadId}.json``: one lead, or an empty result."""
    fields = check_fields(ctx.instance, call.multi("fields"))
    lead = ctx.instance.leads.get(call.path_int("leadId"))
    return Ok([render_lead(lead, fields)] if lead else [])


def sync(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/v1/leads.json {action, lookupField, input}``."""
    body = call.body_dict()
    inputs = call.inputs()
    action = str(body.get("action") or "createOrUpdate")
    lookup = str(body.get("lookupField") or "email")
    arrival = call.request.scope.get("state", {}).get(ARRIVAL_KEY)
    visible = arrival if ctx.settings.upsert_race else None
    return Ok(sync_leads(ctx.instance, action, lookup, inputs, visible_below=visible))


def delete(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/v1/leads/delete.json {input:[{id}]}`` (or ``id=`` in the query)."""
    ids: list[Any] = [
        item.get("id") if isinstance(item, dict) else item for item in call.inputs(required=False)
    ]
    ids += call.multi("id") or []
    if not ids:
        raise blank("input")
    if len(ids) > ctx.settings.batch_size:
        raise MarketoError(1003, f"Invalid data: {len(ids)} ids, max {ctx.settings.batch_size}")
    inst = ctx.instance
    results: list[dict[str, Any]] = []
    for raw in ids:
        try:
            lead_id = int(raw)
        except (TypeError, ValueError):
            results.append({"status": "skipped", "reasons": [reason(1003, f"Invalid id '{raw}'")]})
            continue
        lead = inst.leads.get(lead_id)
        if lead is None:
            results.append({"id": lead_id, "status": "skipped", "reasons": [reason(1004)]})
            continue
        inst.delete_lead(lead)
        results.append({"id": lead_id, "status": "deleted"})
    return Ok(results)


def describe(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/leads/describe.json``."""
    return Ok([f.describe() for f in ctx.instance.schema.all()])


def describe2(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/leads/describe2.json``: fields plus the valid ``filterType`` keys."""
    schema = ctx.instance.schema
    return Ok(
        [
            {
                "name": "API Lead",
                "searchableFields": schema.searchable_fields(),
                "fields": [f.describe2() for f in schema.all()],
            }
        ]
    )


def merge(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/v1/leads/{leadId}/merge.json?leadId=|leadIds=``: losers disappear."""
    inst = ctx.instance
    winner_id = call.path_int("leadId")
    raw = (call.multi("leadIds") or []) + (call.multi("leadId") or [])
    if not raw:
        raise missing("leadIds")
    try:
        loser_ids = list(dict.fromkeys(int(r) for r in raw))
    except ValueError:
        raise MarketoError(1003, "Invalid value for 'leadIds'") from None
    if len(loser_ids) > ctx.settings.merge_max_losers:
        raise MarketoError(
            1080, f"Merge leads failed: more than {ctx.settings.merge_max_losers} lead ids"
        )
    if winner_id in loser_ids:
        raise MarketoError(1003, "The winning lead cannot be merged into itself")
    winner = inst.leads.get(winner_id)
    if winner is None:
        raise MarketoError(1004, f"Lead '{winner_id}' not found")
    losers = []
    for loser_id in loser_ids:
        loser = inst.leads.get(loser_id)
        if loser is None:
            raise MarketoError(1004, f"Lead '{loser_id}' not found")
        losers.append(loser)
    inst.merge(winner, losers)
    return Ok()


def lead_routes(ctx: Ctx) -> list[Route]:
    """The lead routes (``DELETE /rest/v1/leads.json`` is what ``marketorestpython`` sends)."""
    return [
        route(ctx, "/rest/v1/leads.json", {"GET": get_by_filter, "POST": sync, "DELETE": delete}),
        route(ctx, "/rest/v1/lead/{leadId}.json", {"GET": get_by_id}),
        route(ctx, "/rest/v1/leads/delete.json", {"POST": delete}),
        route(ctx, "/rest/v1/leads/describe.json", {"GET": describe}),
        route(ctx, "/rest/v1/leads/describe2.json", {"GET": describe2}),
        route(ctx, "/rest/v1/leads/{leadId}/merge.json", {"POST": merge}),
    ]
