"""Static lists and program membership.

Why the per-id statuses matter: adding answers ``added`` (also for a lead already in the list),
removing ``removed`` or skipped 1015 "not in list", both skip unknown leads with 1004;
``ismember`` answers ``memberof``/``notmemberof``.  A connector that pushes one static list per
reason code reads these to know what really changed.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/list-membership,
.../program-members
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.activities import type_by_key
from crm_bridge.connectors.marketo.emulator.errors import MarketoError, missing, reason
from crm_bridge.connectors.marketo.emulator.leads import check_fields, render_lead
from crm_bridge.connectors.marketo.emulator.paging import page
from crm_bridge.connectors.marketo.emulator.state import (
    API_SOURCE,
    Membership,
    Program,
    StaticList,
)
from crm_bridge.connectors.marketo.emulator.timefmt import iso
from crm_bridge.connectors.marketo.emulator.web import Call, Ctx, Ok, route

__all__ = ["list_routes", "program_routes"]

_ADD_TO_LIST = type_by_key("add_to_list").id
_REMOVE_FROM_LIST = type_by_key("remove_from_list").id
_CHANGE_STATUS = type_by_key("change_status_in_progression").id


def _list(ctx: Ctx, call: Call) -> StaticList:
    static_list = ctx.instance.lists.get(call.path_int("listId"))
    if static_list is None:
        raise MarketoError(1013, "Static list not found")
    return static_list


def get_lists(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/lists.json?id=&name=&programName=&workspaceName=``."""
    ids = {int(i) for i in call.multi("id") or [] if i.isdigit()}
    names = set(call.multi("name") or [])
    programs = set(call.multi("programName") or [])
    workspaces = set(call.multi("workspaceName") or [])
    chosen = [
        sl
        for sl in sorted(ctx.instance.lists.values(), key=lambda sl: sl.id)
        if (not ids or sl.id in ids)
        and (not names or sl.name in names)
        and (not programs or sl.program_name in programs)
        and (not workspaces or sl.workspace_name in workspaces)
    ]
    chunk, token = page("lists", chosen, call.param("nextPageToken"), call.batch())
    return Ok([sl.render() for sl in chunk], next_page_token=token)


def get_list(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/lists/{listId}.json``."""
    return Ok([_list(ctx, call).render()])


def _ids(ctx: Ctx, call: Call) -> list[Any]:
    ids: list[Any] = [
        item.get("id") if isinstance(item, dict) else item for item in call.inputs(required=False)
    ]
    ids += call.multi("id") or []
    if not ids:
        raise missing("id")
    if len(ids) > ctx.settings.batch_size:
        raise MarketoError(1003, f"Invalid data: {len(ids)} ids, max {ctx.settings.batch_size}")
    return ids


def _per_id(ctx: Ctx, call: Call, action: str) -> Ok:
    inst = ctx.instance
    static_list = _list(ctx, call)
    results: list[dict[str, Any]] = []
    for raw in _ids(ctx, call):
        try:
            lead_id = int(raw)
        except (TypeError, ValueError):
            results.append({"id": 0, "status": "skipped", "reasons": [reason(1003)]})
            continue
        if lead_id not in inst.leads:
            results.append({"id": lead_id, "status": "skipped", "reasons": [reason(1004)]})
            continue
        member = lead_id in static_list.members
        if action == "add":
            if not member:
                static_list.members[lead_id] = inst.now()
                inst.log(
                    lead_id,
                    _ADD_TO_LIST,
                    primary_value=static_list.name,
                    primary_value_id=static_list.id,
                    attributes={"Source": API_SOURCE},
                )
            results.append({"id": lead_id, "status": "added"})
        elif action == "remove":
            if not member:
                results.append({"id": lead_id, "status": "skipped", "reasons": [reason(1015)]})
                continue
            del static_list.members[lead_id]
            inst.log(
                lead_id,
                _REMOVE_FROM_LIST,
                primary_value=static_list.name,
                primary_value_id=static_list.id,
                attributes={"Source": API_SOURCE},
            )
            results.append({"id": lead_id, "status": "removed"})
        else:
            results.append({"id": lead_id, "status": "memberof" if member else "notmemberof"})
    if action in ("add", "remove"):
        static_list.updated = inst.now()
    return Ok(results)


def add_members(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/v1/lists/{listId}/leads.json``."""
    return _per_id(ctx, call, "add")


def remove_members(ctx: Ctx, call: Call) -> Ok:
    """``DELETE /rest/v1/lists/{listId}/leads.json``."""
    return _per_id(ctx, call, "remove")


def is_member(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/lists/{listId}/leads/ismember.json?id=``."""
    return _per_id(ctx, call, "ismember")


def list_leads(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/lists/{listId}/leads.json`` (also ``/rest/v1/list/...``)."""
    static_list = _list(ctx, call)
    fields = check_fields(ctx.instance, call.multi("fields"))
    leads = [ctx.instance.leads[i] for i in static_list.members if i in ctx.instance.leads]
    chunk, token = page(f"list:{static_list.id}", leads, call.param("nextPageToken"), call.batch())
    return Ok([render_lead(lead, fields) for lead in chunk], next_page_token=token)


def list_routes(ctx: Ctx) -> list[Route]:
    """Static-list routes."""
    members = {"GET": list_leads, "POST": add_members, "DELETE": remove_members}
    return [
        route(ctx, "/rest/v1/lists.json", {"GET": get_lists}),
        route(ctx, "/rest/v1/lists/{listId}.json", {"GET": get_list}),
        route(ctx, "/rest/v1/lists/{listId}/leads.json", members),
        route(ctx, "/rest/v1/list/{listId}/leads.json", {"GET": list_leads}),
        route(ctx, "/rest/v1/lists/{listId}/leads/ismember.json", {"GET": is_member}),
    ]


# -- programs ---------------------------------------------------------------------------------


def _program(ctx: Ctx, call: Call) -> Program:
    program = ctx.instance.programs.get(call.path_int("programId"))
    if program is None:
        raise MarketoError(1013, "Program not found")
    return program


def program_members(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/programs/{programId}/members.json?filterType=&filterValues=``."""
    program = _program(ctx, call)
    filter_type = call.require("filterType")
    values = call.multi("filterValues") or []
    if not values:
        raise missing("filterValues")
    if len(values) > ctx.settings.batch_size:
        raise MarketoError(1003, f"Too many filter values, max {ctx.settings.batch_size}")
    if filter_type not in ("leadId", "progressionStatus", "reachedSuccess"):
        raise MarketoError(1003, f"Invalid filterType '{filter_type}'")
    rows = []
    for lead_id, membership in program.members.items():
        value = {
            "leadId": str(lead_id),
            "progressionStatus": membership.status,
            "reachedSuccess": str(membership.reached_success).lower(),
        }[filter_type]
        if value in values:
            rows.append((lead_id, membership))
    chunk, token = page(f"members:{program.id}", rows, call.param("nextPageToken"), call.batch())
    result = [
        {
            "seq": seq,
            "leadId": lead_id,
            "programId": program.id,
            "progressionStatus": m.status,
            "reachedSuccess": m.reached_success,
            "acquiredBy": m.acquired_by,
            "membershipDate": iso(m.since),
            "updatedAt": iso(m.updated or m.since),
        }
        for seq, (lead_id, m) in enumerate(chunk)
    ]
    return Ok(result, more_result=token is not None, next_page_token=token)


def leads_by_program(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/leads/programs/{programId}.json``: members with a ``membership`` object."""
    program = _program(ctx, call)
    fields = check_fields(ctx.instance, call.multi("fields"))
    rows = [
        (ctx.instance.leads[i], m) for i, m in program.members.items() if i in ctx.instance.leads
    ]
    chunk, token = page(f"pleads:{program.id}", rows, call.param("nextPageToken"), call.batch())
    result = []
    for lead, m in chunk:
        item = render_lead(lead, fields)
        item["membership"] = {
            "progressionStatus": m.status,
            "acquiredBy": m.acquired_by,
            "reachedSuccess": m.reached_success,
            "membershipDate": iso(m.since),
        }
        result.append(item)
    return Ok(result, next_page_token=token)


def member_status(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/v1/programs/{programId}/members/status.json {statusName, input}``.

    ``updated`` for a new member or a step forward (the swagger's enum has no ``created``, though
    the prose docs show it), skipped 1037 for a step backwards, skipped 1004 for an unknown
    lead; an unknown status fails the whole call (1025).
    """
    inst = ctx.instance
    program = _program(ctx, call)
    status = str(call.body_dict().get("statusName") or "")
    if status not in program.statuses:
        raise MarketoError(1025, f"Program status '{status}' not found")
    results: list[dict[str, Any]] = []
    for seq, item in enumerate(call.inputs()):
        lead_id = item.get("leadId") if isinstance(item, dict) else None
        if not isinstance(lead_id, int) or lead_id not in inst.leads:
            results.append(
                {
                    "seq": seq,
                    "leadId": lead_id if isinstance(lead_id, int) else 0,
                    "status": "skipped",
                    "reasons": [reason(1004)],
                }
            )
            continue
        membership = program.members.get(lead_id)
        step = program.statuses.index(status)
        if membership is not None and program.statuses.index(membership.status) >= step:
            results.append(
                {
                    "seq": seq,
                    "leadId": lead_id,
                    "status": "skipped",
                    "reasons": [reason(1037, "Lead was skipped: already in or past this status")],
                }
            )
            continue
        old = membership.status if membership else None
        now = inst.now()
        if membership is None:
            membership = Membership(status, now)
            program.members[lead_id] = membership
        membership.status, membership.updated = status, now
        membership.reached_success = status in program.success_statuses
        inst.log(
            lead_id,
            _CHANGE_STATUS,
            primary_value=program.name,
            primary_value_id=program.id,
            attributes={
                "New Status": status,
                "Old Status": old,
                "Reason": API_SOURCE,
                "Success": membership.reached_success,
            },
        )
        results.append({"seq": seq, "leadId": lead_id, "status": "updated"})
    return Ok(results)


def program_routes(ctx: Ctx) -> list[Route]:
    """Program-membership routes."""
    return [
        route(ctx, "/rest/v1/programs/{programId}/members.json", {"GET": program_members}),
        route(ctx, "/rest/v1/programs/{programId}/members/status.json", {"POST": member_status}),
        route(ctx, "/rest/v1/leads/programs/{programId}.json", {"GET": leads_by_program}),
    ]
