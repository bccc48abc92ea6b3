"""Lists v3 endpoints: create, read, search, rename, delete, and memberships.

Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/guide.md
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.catalog import resolve_type
from crm_bridge.connectors.hubspot.emulator.errors import bad_request, not_found
from crm_bridge.connectors.hubspot.emulator.lists import PROCESSING_TYPES, CrmList
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.connectors.hubspot.emulator.web import Call, Ctx, Reply, endpoint

__all__ = ["list_routes"]


def _list(ctx: Ctx, call: Call) -> CrmList:
    lst = ctx.portal.list_by_id(call.path("listId"))
    if lst is None:
        raise not_found(
            f"List {call.path('listId')} does not exist.", context={"listId": [call.path("listId")]}
        )
    return lst


def _store_name(object_type_id: str) -> str:
    otype = resolve_type(object_type_id)
    if otype is None:
        raise bad_request(f"Unknown objectTypeId {object_type_id}.")
    return otype.name


def create_list(ctx: Ctx, call: Call) -> Reply:
    """Create a list (names are unique per object type).

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/create-list
    """
    body = call.body_dict()
    name, type_id = str(body.get("name") or ""), str(body.get("objectTypeId") or "")
    processing = str(body.get("processingType") or "")
    if not name or processing not in PROCESSING_TYPES:
        raise bad_request("name and processingType (MANUAL, SNAPSHOT or DYNAMIC) are required.")
    otype = resolve_type(type_id)
    if otype is None or otype.type_id != type_id:
        raise bad_request(f"objectTypeId must be an object type id such as 0-1, got {type_id!r}.")
    if processing == "DYNAMIC" and not body.get("filterBranch"):
        raise bad_request("DYNAMIC lists need a filterBranch.")
    if ctx.portal.lists.by_name(type_id, name) is not None:
        raise bad_request(
            f"A list named {name!r} already exists.", sub_category="ILS.DUPLICATE_LIST_NAMES"
        )
    lst = ctx.portal.lists.create(
        name, type_id, processing, ctx.portal.now_ms(), body.get("filterBranch")
    )
    return 200, {"list": lst.to_json(include_filters=True)}


def get_lists(ctx: Ctx, call: Call) -> Reply:
    """Several lists by id (``listIds`` repeated).

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/get-lists
    """
    wanted = call.multi("listIds") or []
    found = [lst for i in wanted if (lst := ctx.portal.list_by_id(i)) is not None]
    return 200, {
        "lists": [lst.to_json(include_filters=call.flag("includeFilters")) for lst in found]
    }


def get_list(ctx: Ctx, call: Call) -> Reply:
    """One list by id.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/get-list-by-id
    """
    return 200, {"list": _list(ctx, call).to_json(include_filters=call.flag("includeFilters"))}


def get_by_name(ctx: Ctx, call: Call) -> Reply:
    """One list by object type id and name.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/get-list-by-name
    """
    lst = ctx.portal.lists.by_name(call.path("objectTypeId"), call.path("listName"))
    if lst is None:
        raise not_found(f"List {call.path('listName')} does not exist.")
    return 200, {"list": lst.to_json(include_filters=call.flag("includeFilters"))}


def delete_list(ctx: Ctx, call: Call) -> Reply:
    """Delete a list.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/delete-list
    """
    del ctx.portal.lists.lists[_list(ctx, call).list_id]
    return 204, None


def rename_list(ctx: Ctx, call: Call) -> Reply:
    """Rename a list (``listName`` query parameter).

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/update-list-name
    """
    lst = _list(ctx, call)
    name = call.query("listName") or ""
    other = ctx.portal.lists.by_name(lst.object_type_id, name)
    if not name or (other is not None and other is not lst):
        raise bad_request(f"Cannot rename the list to {name!r}.")
    lst.name, lst.updated_ms, lst.version = name, ctx.portal.now_ms(), lst.version + 1
    return 200, {"updatedList": lst.to_json()}


def search_lists(ctx: Ctx, call: Call) -> Reply:
    """Find lists by name fragment and processing type; offset paging.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/search-lists
    """
    body = call.body_dict()
    query = str(body.get("query") or "").lower()
    types = body.get("processingTypes") or list(PROCESSING_TYPES)
    offset, count = int(body.get("offset") or 0), int(body.get("count") or 20)
    found = [
        lst
        for lst in ctx.portal.lists.lists.values()
        if query in lst.name.lower() and lst.processing_type in types
    ]
    page = found[offset : offset + count]
    return 200, {
        "lists": [lst.to_json() for lst in page],
        "hasMore": offset + count < len(found),
        "offset": offset + len(page),
        "total": len(found),
    }


def _change(ctx: Ctx, lst: CrmList, add: list[Any], remove: list[Any]) -> dict[str, list[str]]:
    """Apply a membership change and answer HubSpot's ``MembershipsUpdateResponse``.

    Why every answer carries all three arrays, even ``recordIdsRemoved`` from ``add`` and
    ``recordsIdsAdded`` (sic) from ``remove``: the vendor's schema marks the three required, and
    its generated clients refuse an answer without one of them once client-side validation is on.
    """
    if lst.processing_type == "DYNAMIC":
        raise bad_request(
            f"List {lst.list_id} is DYNAMIC; its memberships cannot be changed through the API.",
            sub_category="ILS.INVALID_LIST_PROCESSING_TYPE",
        )
    live = ctx.portal.store(_store_name(lst.object_type_id)).live
    now = ctx.portal.now_ms()
    added, removed, missing = [], [], []
    for raw in add:
        key = str(raw)
        if not key.isdigit() or int(key) not in live:
            missing.append(key)
        elif int(key) not in lst.members:
            lst.members[int(key)] = now
            added.append(key)
    for raw in remove:
        key = str(raw)
        if key.isdigit() and lst.members.pop(int(key), None) is not None:
            removed.append(key)
        elif not key.isdigit() or int(key) not in live:
            missing.append(key)
    if added or removed:
        lst.updated_ms = now
    return {"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing}


def _ids_body(call: Call) -> list[Any]:
    if not isinstance(call.body, list):
        raise bad_request("The body must be a JSON array of record ids.")
    return call.body


def add_members(ctx: Ctx, call: Call) -> Reply:
    """Add records to a MANUAL or SNAPSHOT list (body: JSON array of ids).

    Doc: https://developers.hubspot.com/docs/api-reference/2026-03/crm/lists/memberships/add-to-list.md
    """
    return 200, _change(ctx, _list(ctx, call), _ids_body(call), [])


def remove_members(ctx: Ctx, call: Call) -> Reply:
    """Remove records from a list.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/memberships/remove-from-list
    """
    return 200, _change(ctx, _list(ctx, call), [], _ids_body(call))


def add_and_remove(ctx: Ctx, call: Call) -> Reply:
    """Add and remove in one call.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/memberships/add-and-remove
    """
    body = call.body_dict()
    return 200, _change(
        ctx, _list(ctx, call), body.get("recordIdsToAdd") or [], body.get("recordIdsToRemove") or []
    )


def remove_all(ctx: Ctx, call: Call) -> Reply:
    """Empty a list.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/memberships/remove-all
    """
    lst = _list(ctx, call)
    if lst.processing_type == "DYNAMIC":
        raise bad_request(f"List {lst.list_id} is DYNAMIC.")
    lst.members.clear()
    return 204, None


def get_members(ctx: Ctx, call: Call) -> Reply:
    """Members ordered by record id; ``after`` paging, limit ≤ 250.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/memberships/get-page
    """
    lst = _list(ctx, call)
    limit = call.int_param("limit", 100, maximum=250)
    after = call.query("after")
    start = int(after) if after and after.isdigit() else 0
    ids = sorted(lst.members)
    body: dict[str, Any] = {
        "results": [
            {"recordId": str(i), "membershipTimestamp": iso_ms(lst.members[i])}
            for i in ids[start : start + limit]
        ],
        "total": len(ids),
    }
    if start + limit < len(ids):
        nxt = str(start + limit)
        body["paging"] = {"next": {"after": nxt, "link": call.page_link(nxt)}}
    return 200, body


def record_memberships(ctx: Ctx, call: Call) -> Reply:
    """The lists a record is in.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/lists/memberships/get-lists
    """
    type_id, key = call.path("objectTypeId"), call.path("recordId")
    lists = ctx.portal.lists.memberships_of(type_id, int(key)) if key.isdigit() else []
    return 200, {
        "results": [
            {
                "listId": str(lst.list_id),
                "listVersion": lst.version,
                "firstAddedTimestamp": iso_ms(lst.members[int(key)]),
                "lastAddedTimestamp": iso_ms(lst.members[int(key)]),
            }
            for lst in lists
        ],
        "total": len(lists),
    }


def list_routes(ctx: Ctx) -> list[Route]:
    """The ``/crm/v3/lists`` routes (the client creates with a trailing slash)."""

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(ctx, handler), methods=[method])

    one = "/crm/v3/lists/{listId}"
    return [
        r("/crm/v3/lists/", create_list, "POST"),
        r("/crm/v3/lists", create_list, "POST"),
        r("/crm/v3/lists/", get_lists, "GET"),
        r("/crm/v3/lists", get_lists, "GET"),
        r("/crm/v3/lists/search", search_lists, "POST"),
        r("/crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}", get_by_name, "GET"),
        r("/crm/v3/lists/records/{objectTypeId}/{recordId}/memberships", record_memberships, "GET"),
        r(f"{one}/update-list-name", rename_list, "PUT"),
        r(f"{one}/memberships/add", add_members, "PUT"),
        r(f"{one}/memberships/remove", remove_members, "PUT"),
        r(f"{one}/memberships/add-and-remove", add_and_remove, "PUT"),
        r(f"{one}/memberships", get_members, "GET"),
        r(f"{one}/memberships", remove_all, "DELETE"),
        r(one, get_list, "GET"),
        r(one, delete_list, "DELETE"),
    ]
