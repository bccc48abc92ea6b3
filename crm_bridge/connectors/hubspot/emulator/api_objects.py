"""CRM object endpoints: list, read, create, update, archive, batch, search, merge.

Served for contacts, companies, deals and the engagement types (calls, emails, meetings, notes,
tasks), under ``/crm/v3/objects/{objectType}``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.catalog import (
    ASSOCIATION_TYPES,
    ObjectType,
    resolve_type,
)
from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, bad_request, not_found
from crm_bridge.connectors.hubspot.emulator.search import SearchQuery
from crm_bridge.connectors.hubspot.emulator.state import Record
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.connectors.hubspot.emulator.web import Call, Ctx, Reply, endpoint

__all__ = ["object_routes"]


def object_type(call: Call, param: str = "objectType") -> ObjectType:
    """The object type named in the path, or HubSpot's 400 for an unknown one."""
    raw = call.path(param)
    otype = resolve_type(raw)
    if otype is None:
        raise bad_request(f"Unable to infer object type from: {raw}")
    return otype


def _render_many(
    ctx: Ctx,
    otype: ObjectType,
    recs: Iterable[Record],
    call: Call,
    props: list[str] | None,
    history: list[str] | None = None,
    associations: Iterable[str] = (),
) -> list[dict[str, Any]]:
    assoc = list(associations)
    out = []
    for rec in recs:
        body = ctx.portal.render(otype.name, rec, props, assoc)
        if history:
            body["propertiesWithHistory"] = _history(ctx, otype, rec, call, history)
        out.append(body)
    return out


def _history(
    ctx: Ctx, otype: ObjectType, rec: Record, call: Call, names: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Simplified history: the current value only, stamped with the record's last write."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        value = ctx.portal.value(otype, rec, name)
        if value is None:
            continue
        entry: dict[str, Any] = {
            "value": value,
            "timestamp": iso_ms(rec.updated),
            "sourceType": "API",
        }
        user = rec.props.get("hs_updated_by_user_id")
        if user:
            entry.update(sourceType="CRM_UI", updatedByUserId=int(user))
        out[name] = [entry]
    return out


def _association_types(call: Call) -> list[str]:
    names = call.multi("associations") or []
    out = []
    for name in names:
        t = resolve_type(name)
        if t is not None:
            out.append(t.name)
    return out


def list_objects(ctx: Ctx, call: Call) -> Reply:
    """List records by id, ``after`` cursor paging.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/get-crm-v3-objects-contacts
    """
    otype = object_type(call)
    store = ctx.portal.store(otype.name)
    limit = call.int_param("limit", 10, maximum=ctx.settings.list_max_limit)
    after_raw = call.query("after") or "0"
    if not after_raw.isdigit():
        raise bad_request(f"after must be a cursor returned by a previous page, got {after_raw!r}")
    archived = call.flag("archived")
    ids = store.ids if not archived else sorted(store.archived)
    source = store.live if not archived else store.archived
    start = bisect_left(ids, int(after_raw))
    page = ids[start : start + limit]
    body: dict[str, Any] = {
        "results": _render_many(
            ctx,
            otype,
            (source[i] for i in page),
            call,
            call.multi("properties"),
            call.multi("propertiesWithHistory"),
            _association_types(call),
        )
    }
    if start + limit < len(ids):
        after = str(ids[start + limit])
        body["paging"] = {"next": {"after": after, "link": call.page_link(after)}}
    return 200, body


def _find(ctx: Ctx, otype: ObjectType, key: str, id_property: str | None) -> Record:
    rec = ctx.portal.find(otype.name, key, id_property)
    if rec is None:
        raise not_found("Object not found.  objectId are usually numeric.", context={"id": [key]})
    return rec


def get_object(ctx: Ctx, call: Call) -> Reply:
    """Read one record by id (merged ids resolve to the survivor) or by ``idProperty``.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/get-crm-v3-objects-contacts-contactId
    """
    otype = object_type(call)
    key = call.path("objectId")
    if call.flag("archived"):
        rec = ctx.portal.store(otype.name).archived.get(int(key)) if key.isdigit() else None
        if rec is None:
            raise not_found(
                "Object not found.  objectId are usually numeric.", context={"id": [key]}
            )
    else:
        rec = _find(ctx, otype, key, call.query("idProperty"))
    return 200, _render_many(
        ctx,
        otype,
        [rec],
        call,
        call.multi("properties"),
        call.multi("propertiesWithHistory"),
        _association_types(call),
    )[0]


def _inline_associations(ctx: Ctx, otype: ObjectType, raw: Any) -> list[tuple[str, int, list[int]]]:
    """Resolve ``associations`` of a create input to ``(to_type, to_id, type_ids)``."""
    out: list[tuple[str, int, list[int]]] = []
    for item in raw or []:
        to_id = str((item.get("to") or {}).get("id", ""))
        type_ids = [int(t.get("associationTypeId", 0)) for t in item.get("types") or []]
        to_type = next(
            (
                b
                for (a, b), k in ASSOCIATION_TYPES.items()
                if a == otype.name and (k.default_id in type_ids or k.primary_id in type_ids)
            ),
            None,
        )
        if (
            to_type is None
            or not to_id.isdigit()
            or int(to_id) not in ctx.portal.store(to_type).live
        ):
            raise bad_request(
                f"Invalid association: {to_id or '?'} with types {type_ids}",
                sub_category="crm.associations.INVALID_ASSOCIATION",
            )
        out.append((to_type, int(to_id), type_ids))
    return out


def _create_one(ctx: Ctx, otype: ObjectType, item: dict[str, Any], actor: str | None) -> Record:
    portal = ctx.portal
    changes = portal.validate(otype.name, item.get("properties") or {}, None)
    portal.check_unique_email(otype.name, changes, None)
    links = _inline_associations(ctx, otype, item.get("associations"))
    rec = portal.create(otype.name, changes, actor)
    for to_type, to_id, type_ids in links:
        portal.associations.link(otype.name, rec.id, to_type, to_id, type_ids)
    return rec


def _written_props(otype: ObjectType, changes: Iterable[str]) -> list[str]:
    return sorted({*otype.default_props, *changes})


def create_object(ctx: Ctx, call: Call) -> Reply:
    """Create a record (409 CONFLICT on a duplicate contact email).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts
    """
    otype = object_type(call)
    body = call.body_dict()
    rec = _create_one(ctx, otype, body, call.principal.actor)
    props = _written_props(otype, (body.get("properties") or {}).keys())
    return 201, ctx.portal.render(otype.name, rec, props)


def update_object(ctx: Ctx, call: Call) -> Reply:
    """Partially update a record; an empty string clears a value.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/patch-crm-v3-objects-contacts-contactId
    """
    otype = object_type(call)
    rec = _find(ctx, otype, call.path("objectId"), call.query("idProperty"))
    raw = call.body_dict().get("properties") or {}
    changes = ctx.portal.validate(otype.name, raw, rec)
    ctx.portal.check_unique_email(otype.name, changes, rec)
    ctx.portal.update(otype.name, rec, changes, call.principal.actor)
    return 200, ctx.portal.render(otype.name, rec, _written_props(otype, changes))


def archive_object(ctx: Ctx, call: Call) -> Reply:
    """Archive (soft-delete) a record; unknown ids also answer 204.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/delete-crm-v3-objects-contacts-contactId
    """
    otype = object_type(call)
    rec = ctx.portal.find(otype.name, call.path("objectId"))
    if rec is not None:
        ctx.portal.archive(otype.name, rec)
    return 204, None


def _batch_envelope(
    ctx: Ctx, results: list[dict[str, Any]], errors: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    now = iso_ms(ctx.portal.now_ms())
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return 207, body
    return 200, body


def _missing_error(otype: ObjectType, ids: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {otype.singular.upper()} objects, they may be deleted or"
        " not exist. Check that ids are valid.",
        "context": {"ids": ids},
        "errors": [],
    }


def batch_read(ctx: Ctx, call: Call) -> Reply:
    """Read up to 100 records by id or ``idProperty``; missing ones make it a 207.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-read
    """
    otype = object_type(call)
    inputs = call.inputs(ctx.settings.batch_max_inputs)
    body = call.body_dict()
    id_property = body.get("idProperty")
    archived = call.flag("archived")
    store = ctx.portal.store(otype.name)
    found: dict[int, Record] = {}
    missing: list[str] = []
    for item in inputs:
        key = str(item.get("id", ""))
        if archived:
            rec = store.archived.get(int(key)) if key.isdigit() else None
        else:
            rec = ctx.portal.find(otype.name, key, id_property)
        if rec is None:
            missing.append(key)
        else:
            found.setdefault(rec.id, rec)
    results = _render_many(
        ctx,
        otype,
        found.values(),
        call,
        body.get("properties") or None,
        body.get("propertiesWithHistory") or None,
    )
    return _batch_envelope(ctx, results, [_missing_error(otype, missing)] if missing else [])


def _traced(inputs: list[dict[str, Any]]) -> bool:
    """Per-input (207) error reporting is opted into with a unique ``objectWriteTraceId``."""
    traces = [i.get("objectWriteTraceId") for i in inputs]
    return all(traces) and len(set(traces)) == len(traces)


def _input_error(err: HubSpotError, trace: Any) -> dict[str, Any]:
    entry = dict(err.body)
    entry.pop("correlationId", None)
    entry["context"] = {**entry.get("context", {}), "objectWriteTraceId": [str(trace)]}
    return entry


def batch_create(ctx: Ctx, call: Call) -> Reply:
    """Create up to 100 records; one bad input fails all unless each has objectWriteTraceId.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-create
    """
    otype = object_type(call)
    inputs = call.inputs(ctx.settings.batch_max_inputs)
    actor = call.principal.actor
    portal = ctx.portal
    if not _traced(inputs):
        # All-or-nothing: validate everything before writing anything.
        seen: set[str] = set()
        for item in inputs:
            changes = portal.validate(otype.name, item.get("properties") or {}, None)
            portal.check_unique_email(otype.name, changes, None)
            _inline_associations(ctx, otype, item.get("associations"))
            email = changes.get("email", "").lower()
            if email and email in seen:
                raise bad_request(f"Duplicate email in batch input: {email}")
            seen.add(email)
    results, errors = [], []
    for item in inputs:
        try:
            rec = _create_one(ctx, otype, item, actor)
        except HubSpotError as err:
            errors.append(_input_error(err, item.get("objectWriteTraceId")))
            continue
        results.append(
            portal.render(
                otype.name, rec, _written_props(otype, (item.get("properties") or {}).keys())
            )
        )
    status, body = _batch_envelope(ctx, results, errors)
    return (201 if status == 200 else status), body


def _check_duplicates(keys: list[str]) -> None:
    seen: set[str] = set()
    dupes = sorted({k for k in keys if k in seen or seen.add(k)})  # type: ignore[func-returns-value]
    if dupes:
        raise bad_request(f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")


def batch_update(ctx: Ctx, call: Call) -> Reply:
    """Update up to 100 records by id (or ``idProperty``); unknown ids make it a 207.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-update
    """
    otype = object_type(call)
    inputs = call.inputs(ctx.settings.batch_max_inputs)
    _check_duplicates([str(i.get("id", "")) for i in inputs])
    portal, actor = ctx.portal, call.principal.actor
    traced = _traced(inputs)
    planned: list[tuple[dict[str, Any], Record | None, dict[str, str] | HubSpotError]] = []
    for item in inputs:
        rec = portal.find(otype.name, str(item.get("id", "")), item.get("idProperty"))
        try:
            changes: dict[str, str] | HubSpotError = portal.validate(
                otype.name, item.get("properties") or {}, rec
            )
            if rec is not None:
                portal.check_unique_email(otype.name, changes, rec)  # type: ignore[arg-type]
        except HubSpotError as err:
            if not traced:
                raise
            changes = err
        planned.append((item, rec, changes))
    results, errors, missing = [], [], []
    for item, rec, changes in planned:
        if rec is None:
            missing.append(str(item.get("id", "")))
        elif isinstance(changes, HubSpotError):
            errors.append(_input_error(changes, item.get("objectWriteTraceId")))
        else:
            portal.update(otype.name, rec, changes, actor)
            results.append(portal.render(otype.name, rec, _written_props(otype, changes)))
    if missing:
        errors.insert(0, _missing_error(otype, missing))
    return _batch_envelope(ctx, results, errors)


def batch_upsert(ctx: Ctx, call: Call) -> Reply:
    """Create-or-update by a unique property (``idProperty=email``); results carry ``new``.

    Doc: https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
    """
    otype = object_type(call)
    inputs = call.inputs(ctx.settings.batch_max_inputs)
    _check_duplicates([str(i.get("id", "")).lower() for i in inputs])
    portal, actor = ctx.portal, call.principal.actor
    planned = []
    for item in inputs:
        id_property = item.get("idProperty")
        key = str(item.get("id", ""))
        if not id_property or id_property in ("hs_object_id", "id"):
            raise bad_request("idProperty must be a unique property such as email for upserts.")
        rec = portal.find(otype.name, key, id_property)
        raw = dict(item.get("properties") or {})
        if rec is None:
            raw.setdefault(id_property, key)
        changes = portal.validate(otype.name, raw, rec)
        planned.append((rec, changes))
    results = []
    for rec, changes in planned:
        if rec is None:
            rec = portal.create(otype.name, changes, actor)
            is_new = True
        else:
            portal.update(otype.name, rec, changes, actor)
            is_new = False
        body = portal.render(otype.name, rec, _written_props(otype, changes))
        body["new"] = is_new
        results.append(body)
    return _batch_envelope(ctx, results, [])


def batch_archive(ctx: Ctx, call: Call) -> Reply:
    """Archive up to 100 records; unknown ids are ignored.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/batch/post-crm-v3-objects-contacts-batch-archive
    """
    otype = object_type(call)
    for item in call.inputs(ctx.settings.batch_max_inputs):
        rec = ctx.portal.find(otype.name, str(item.get("id", "")))
        if rec is not None:
            ctx.portal.archive(otype.name, rec)
    return 204, None


def search_objects(ctx: Ctx, call: Call) -> Reply:
    """Search with filter groups and sorts; ``after`` is an offset capped at 10,000 results.

    Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
    """
    otype = object_type(call)
    q = SearchQuery.parse(call.body_dict(), max_limit=ctx.settings.search_max_limit)
    cap = ctx.settings.search_max_results
    if q.after >= cap:
        raise bad_request(
            f"Search results are limited to {cap} per query; after={q.after} pages past that. "
            "Narrow the query (e.g. by lastmodifieddate) instead of paging further.",
            context={"after": [str(q.after)], "limit": [str(cap)]},
        )
    ids = ctx.search.run(otype.name, q)
    end = min(q.after + q.limit, cap, len(ids))
    live = ctx.portal.store(otype.name).live
    page = [live[i] for i in ids[q.after : end]]
    body: dict[str, Any] = {
        "total": len(ids),
        "results": _render_many(ctx, otype, page, call, q.properties),
    }
    if end < len(ids):
        body["paging"] = {"next": {"after": str(end)}}
    return 200, body


def merge_objects(ctx: Ctx, call: Call) -> Reply:
    """Merge ``objectIdToMerge`` into ``primaryObjectId``; the merged id then reads the survivor.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge
    """
    otype = object_type(call)
    body = call.body_dict()
    primary_key, other_key = (
        str(body.get("primaryObjectId", "")),
        str(body.get("objectIdToMerge", "")),
    )
    primary = _find(ctx, otype, primary_key, None)
    other = _find(ctx, otype, other_key, None)
    if primary.id == other.id:
        raise bad_request("Cannot merge an object with itself.")
    survivor = ctx.portal.merge(otype.name, primary, other, call.principal.actor)
    return 200, ctx.portal.render(otype.name, survivor, None)


def object_routes(ctx: Ctx) -> list[Route]:
    """The ``/crm/v3/objects`` routes (specific paths before ``{objectId}``)."""
    base = "/crm/v3/objects/{objectType}"

    def r(path: str, handler: Any, method: str, *, search: bool = False) -> Route:
        return Route(path, endpoint(ctx, handler, search=search), methods=[method])

    return [
        r(f"{base}/batch/read", batch_read, "POST"),
        r(f"{base}/batch/create", batch_create, "POST"),
        r(f"{base}/batch/update", batch_update, "POST"),
        r(f"{base}/batch/upsert", batch_upsert, "POST"),
        r(f"{base}/batch/archive", batch_archive, "POST"),
        r(f"{base}/search", search_objects, "POST", search=True),
        r(f"{base}/merge", merge_objects, "POST"),
        r(base, list_objects, "GET"),
        r(base, create_object, "POST"),
        r(f"{base}/{{objectId}}", get_object, "GET"),
        r(f"{base}/{{objectId}}", update_object, "PATCH"),
        r(f"{base}/{{objectId}}", archive_object, "DELETE"),
    ]
