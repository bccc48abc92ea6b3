"""Change feeds: paging tokens, activities, lead changes, deleted leads, activity types.

Why pages scan the log instead of filling up: the vendor reads a window of the activity log per
call and returns what matched, so a filtered read (one activity type, a few leads) can answer
*fewer than 300 items with* ``moreResult: true`` -- and even zero.  A client that stops on a
short page loses changes; this emulator reproduces that shape.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/activities
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.activities import (
    ACTIVITY_TYPES,
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    Activity,
    decode_token,
    encode_token,
)
from crm_bridge.connectors.marketo.emulator.errors import MarketoError, missing
from crm_bridge.connectors.marketo.emulator.timefmt import iso, parse_iso
from crm_bridge.connectors.marketo.emulator.web import Call, Ctx, Ok, route

__all__ = ["activity_routes"]

_MAX_TYPE_IDS = 10
_MAX_LEAD_IDS = 30


def paging_token(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/activities/pagingtoken.json?sinceDatetime=``."""
    since = call.require("sinceDatetime")
    try:
        epoch = parse_iso(since)
    except ValueError:
        raise MarketoError(704, f"Invalid date format '{since}'") from None
    return Ok(next_page_token=encode_token(_token_iso(epoch), 0))


def _token_iso(epoch: float) -> str:
    # The documented tokens decode to "2008-11-06T00:00:00.000+0000,0".
    return iso(epoch).replace("Z", ".000+0000")


def _scan(
    ctx: Ctx, call: Call, keep: Callable[[Activity], bool]
) -> tuple[list[Activity], str, bool]:
    """Read one window of the log from the call's token: (matches, next token, more)."""
    since_iso, last_id = decode_token(call.require("nextPageToken"))
    try:
        since = parse_iso(since_iso.replace(".000", ""))
    except ValueError:
        raise MarketoError(1003, "Invalid nextPageToken") from None
    size = call.batch()
    lead_ids = call.multi("leadIds")
    if lead_ids and len(lead_ids) > _MAX_LEAD_IDS:
        raise MarketoError(1003, f"Too many leadIds, max {_MAX_LEAD_IDS}")
    wanted_leads = {int(i) for i in lead_ids} if lead_ids else None
    list_id = call.param("listId")
    members = None
    if list_id is not None:
        static_list = ctx.instance.lists.get(int(list_id)) if list_id.isdigit() else None
        if static_list is None:
            raise MarketoError(1013, f"Static list '{list_id}' not found")
        members = set(static_list.members)
    matched: list[Activity] = []
    scanned = 0
    position = last_id
    more = False
    for activity in ctx.instance.activities_after(last_id):
        if activity.at < since:
            position = activity.id
            continue
        if scanned >= size:
            more = True
            break
        scanned += 1
        position = activity.id
        if wanted_leads is not None and activity.lead_id not in wanted_leads:
            continue
        if members is not None and activity.lead_id not in members:
            continue
        if keep(activity):
            matched.append(activity)
    return matched, encode_token(since_iso, position), more


def activities(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/activities.json?activityTypeIds=&nextPageToken=`` (≤10 type ids)."""
    raw_types = call.multi("activityTypeIds")
    if not raw_types:
        raise missing("activityTypeIds")
    if len(raw_types) > _MAX_TYPE_IDS:
        raise MarketoError(1003, f"Too many activityTypeIds, max {_MAX_TYPE_IDS}")
    try:
        types = {int(t) for t in raw_types}
    except ValueError:
        raise MarketoError(1003, "Invalid value for 'activityTypeIds'") from None
    unknown = sorted(types - set(ACTIVITY_TYPES))
    if unknown:
        raise MarketoError(1003, f"Invalid activity type id '{unknown[0]}'")
    matched, token, more = _scan(ctx, call, lambda a: a.type_id in types)
    return Ok([a.render(iso(a.at)) for a in matched], more_result=more, next_page_token=token)


def lead_changes(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/activities/leadchanges.json?nextPageToken=&fields=`` (12 and 13 only)."""
    fields = call.multi("fields")
    if not fields:
        raise missing("fields")
    schema = ctx.instance.schema
    bad = [f for f in fields if schema.get(f) is None]
    if bad:
        raise MarketoError(1006, f"Field '{bad[0]}' not found")
    wanted = set(fields)

    def keep(a: Activity) -> bool:
        if a.type_id == NEW_LEAD:
            return True
        return a.type_id == CHANGE_DATA_VALUE and any(f["name"] in wanted for f in a.fields)

    matched, token, more = _scan(ctx, call, keep)
    return Ok(
        [a.render(iso(a.at), with_fields=True) for a in matched],
        more_result=more,
        next_page_token=token,
    )


def deleted_leads(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/activities/deletedleads.json?nextPageToken=`` (type 37)."""
    matched, token, more = _scan(ctx, call, lambda a: a.type_id == DELETE_LEAD)
    return Ok([a.render(iso(a.at)) for a in matched], more_result=more, next_page_token=token)


def activity_types(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/v1/activities/types.json``."""
    return Ok([t.render() for t in ACTIVITY_TYPES.values()])


def activity_routes(ctx: Ctx) -> list[Route]:
    """The change-feed routes."""
    return [
        route(ctx, "/rest/v1/activities/pagingtoken.json", {"GET": paging_token}),
        route(ctx, "/rest/v1/activities.json", {"GET": activities}),
        route(ctx, "/rest/v1/activities/leadchanges.json", {"GET": lead_changes}),
        route(ctx, "/rest/v1/activities/deletedleads.json", {"GET": deleted_leads}),
        route(ctx, "/rest/v1/activities/types.json", {"GET": activity_types}),
    ]
