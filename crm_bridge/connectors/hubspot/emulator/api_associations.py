"""Associations v4: batch create/read/archive, default (unlabeled) links, per-record reads.

Why v4 only: hubspot-api-client 12 and crm-bridge use v4; v3-style reads are still available
inline through ``?associations=`` on object reads.

Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.api_objects import object_type
from crm_bridge.connectors.hubspot.emulator.associations import category_of
from crm_bridge.connectors.hubspot.emulator.catalog import ObjectType, association_kind
from crm_bridge.connectors.hubspot.emulator.errors import bad_request, not_found
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.connectors.hubspot.emulator.web import Call, Ctx, Reply, endpoint

__all__ = ["association_routes"]


def _pair(call: Call, a: str, b: str) -> tuple[ObjectType, ObjectType, int]:
    """Both types and the unlabeled type id; 400 when they cannot be associated."""
    from_t, to_t = object_type(call, a), object_type(call, b)
    kind = association_kind(from_t.name, to_t.name)
    if kind is None:
        raise bad_request(f"{from_t.name} cannot be associated with {to_t.name}.")
    return from_t, to_t, kind.default_id


def _exists(ctx: Ctx, otype: ObjectType, key: Any) -> int | None:
    rec = ctx.portal.find(otype.name, str(key))
    return rec.id if rec is not None else None


def _types_json(type_ids: tuple[int, ...] | list[int]) -> list[dict[str, Any]]:
    return [{"category": category_of(t), "typeId": t, "label": None} for t in type_ids]


def _envelope(
    ctx: Ctx, results: list[Any], errors: list[dict[str, Any]], ok: int
) -> tuple[int, dict[str, Any]]:
    now = iso_ms(ctx.portal.now_ms())
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": now,
        "completedAt": now,
    }
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return ok, body


def _missing(ids: list[str], what: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.OBJECT_NOT_FOUND",
        "message": f"Could not find {what} objects: {ids}",
        "context": {"ids": ids},
        "errors": [],
    }


def batch_create(ctx: Ctx, call: Call) -> Reply:
    """Create labelled (typed) associations.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-create
    """
    from_t, to_t, _ = _pair(call, "fromObjectType", "toObjectType")
    results, missing = [], []
    for item in call.inputs(ctx.settings.batch_max_inputs):
        a = _exists(ctx, from_t, (item.get("from") or {}).get("id"))
        b = _exists(ctx, to_t, (item.get("to") or {}).get("id"))
        if a is None or b is None:
            missing.append(str((item.get("from") or {}).get("id")))
            continue
        ids = [int(t["associationTypeId"]) for t in item.get("types") or []]
        if not ids:
            raise bad_request("Every input needs at least one association type.")
        ctx.portal.associations.link(from_t.name, a, to_t.name, b, ids)
        results.append(
            {
                "fromObjectTypeId": from_t.type_id,
                "fromObjectId": str(a),
                "toObjectTypeId": to_t.type_id,
                "toObjectId": str(b),
                "labels": [],
            }
        )
    errors = [_missing(missing, from_t.name)] if missing else []
    return _envelope(ctx, results, errors, 201)


def batch_default(ctx: Ctx, call: Call) -> Reply:
    """Create unlabeled (default) associations.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-associate-default
    """
    from_t, to_t, type_id = _pair(call, "fromObjectType", "toObjectType")
    results = []
    for item in call.inputs(ctx.settings.batch_max_inputs):
        a = _exists(ctx, from_t, (item.get("from") or {}).get("id"))
        b = _exists(ctx, to_t, (item.get("to") or {}).get("id"))
        if a is None or b is None:
            raise not_found(f"Object not found: {item}")
        ctx.portal.associations.link(from_t.name, a, to_t.name, b, [type_id])
        results.append(
            {
                "from": {"id": str(a)},
                "to": {"id": str(b)},
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": type_id,
                },
            }
        )
    return _envelope(ctx, results, [], 200)


def batch_read(ctx: Ctx, call: Call) -> Reply:
    """Read associations of up to 1,000 records; ones with none are reported as errors (207).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-read
    """
    from_t, to_t, _ = _pair(call, "fromObjectType", "toObjectType")
    results, empty = [], []
    for item in call.inputs(1000):
        key = str(item.get("id", ""))
        a = _exists(ctx, from_t, key)
        links = ctx.portal.associations.links(from_t.name, a, to_t.name) if a else {}
        if not links:
            empty.append(key)
            continue
        results.append(
            {
                "from": {"id": key},
                "to": [
                    {"toObjectId": b, "associationTypes": _types_json(ids)}
                    for b, ids in sorted(links.items())
                ],
            }
        )
    errors = []
    if empty:
        errors.append(
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {to_t.singular} is associated with {from_t.singular} "
                f"{', '.join(empty)}.",
                "context": {"fromObjectId": empty},
                "errors": [],
            }
        )
    return _envelope(ctx, results, errors, 200)


def batch_archive(ctx: Ctx, call: Call) -> Reply:
    """Remove every association between the given pairs.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-archive
    """
    from_t, to_t, _ = _pair(call, "fromObjectType", "toObjectType")
    for item in call.inputs(ctx.settings.batch_max_inputs):
        a = _exists(ctx, from_t, (item.get("from") or {}).get("id"))
        for to in item.get("to") or []:
            b = _exists(ctx, to_t, to.get("id"))
            if a is not None and b is not None:
                ctx.portal.associations.unlink(from_t.name, a, to_t.name, b)
    return 204, None


def batch_archive_labels(ctx: Ctx, call: Call) -> Reply:
    """Remove only the given association types between pairs.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-labels-archive
    """
    from_t, to_t, _ = _pair(call, "fromObjectType", "toObjectType")
    for item in call.inputs(ctx.settings.batch_max_inputs):
        a = _exists(ctx, from_t, (item.get("from") or {}).get("id"))
        b = _exists(ctx, to_t, (item.get("to") or {}).get("id"))
        ids = [int(t["associationTypeId"]) for t in item.get("types") or []]
        if a is not None and b is not None:
            ctx.portal.associations.unlink(from_t.name, a, to_t.name, b, ids)
    return 204, None


def _single_ids(ctx: Ctx, call: Call) -> tuple[ObjectType, int, ObjectType, int, int]:
    from_t, to_t, type_id = _pair(call, "objectType", "toObjectType")
    a = _exists(ctx, from_t, call.path("objectId"))
    b = _exists(ctx, to_t, call.path("toObjectId"))
    if a is None or b is None:
        raise not_found(
            "One of the objects does not exist.",
            context={"ids": [call.path("objectId"), call.path("toObjectId")]},
        )
    return from_t, a, to_t, b, type_id


def put_default(ctx: Ctx, call: Call) -> Reply:
    """Associate two records with the unlabeled type.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/put-crm-v4-objects-fromObjectType-fromObjectId-associations-default-toObjectType-toObjectId
    """
    from_t, a, to_t, b, type_id = _single_ids(ctx, call)
    ctx.portal.associations.link(from_t.name, a, to_t.name, b, [type_id])
    return _envelope(
        ctx,
        [
            {
                "from": {"id": str(a)},
                "to": {"id": str(b)},
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": type_id,
                },
            }
        ],
        [],
        200,
    )


def put_labels(ctx: Ctx, call: Call) -> Reply:
    """Associate two records with explicit types (body: list of association specs).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/put-crm-v4-objects-objectType-objectId-associations-toObjectType-toObjectId
    """
    from_t, a, to_t, b, _ = _single_ids(ctx, call)
    if not isinstance(call.body, list) or not call.body:
        raise bad_request("The body must be a non-empty list of association specs.")
    try:
        ids = [int(t["associationTypeId"]) for t in call.body]
    except (KeyError, TypeError, ValueError):
        raise bad_request("Every association spec needs an associationTypeId.") from None
    ctx.portal.associations.link(from_t.name, a, to_t.name, b, ids)
    return 201, {
        "fromObjectTypeId": from_t.type_id,
        "fromObjectId": str(a),
        "toObjectTypeId": to_t.type_id,
        "toObjectId": str(b),
        "labels": [],
    }


def delete_pair(ctx: Ctx, call: Call) -> Reply:
    """Remove every association between two records.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/delete-crm-v4-objects-objectType-objectId-associations-toObjectType-toObjectId
    """
    from_t, a, to_t, b, _ = _single_ids(ctx, call)
    ctx.portal.associations.unlink(from_t.name, a, to_t.name, b)
    return 204, None


def get_page(ctx: Ctx, call: Call) -> Reply:
    """The records of one type associated with a record, ``after`` paging, limit ≤ 500.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/get-crm-v4-objects-objectType-objectId-associations-toObjectType
    """
    from_t, to_t, _ = _pair(call, "objectType", "toObjectType")
    a = _exists(ctx, from_t, call.path("objectId"))
    if a is None:
        raise not_found("Object not found.", context={"id": [call.path("objectId")]})
    limit = call.int_param("limit", 500, maximum=500)
    links = sorted(ctx.portal.associations.links(from_t.name, a, to_t.name).items())
    after = call.query("after")
    start = int(after) if after and after.isdigit() else 0
    body: dict[str, Any] = {
        "results": [
            {"toObjectId": b, "associationTypes": _types_json(ids)}
            for b, ids in links[start : start + limit]
        ]
    }
    if start + limit < len(links):
        nxt = str(start + limit)
        body["paging"] = {"next": {"after": nxt, "link": call.page_link(nxt)}}
    return 200, body


def association_routes(ctx: Ctx) -> list[Route]:
    """The ``/crm/v4`` routes."""

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(ctx, handler), methods=[method])

    batch = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
    single = "/crm/v4/objects/{objectType}/{objectId}/associations"
    return [
        r(f"{batch}/create", batch_create, "POST"),
        r(f"{batch}/associate/default", batch_default, "POST"),
        r(f"{batch}/read", batch_read, "POST"),
        r(f"{batch}/archive", batch_archive, "POST"),
        r(f"{batch}/labels/archive", batch_archive_labels, "POST"),
        r(f"{single}/default/{{toObjectType}}/{{toObjectId}}", put_default, "PUT"),
        r(f"{single}/{{toObjectType}}/{{toObjectId}}", put_labels, "PUT"),
        r(f"{single}/{{toObjectType}}/{{toObjectId}}", delete_pair, "DELETE"),
        r(f"{single}/{{toObjectType}}", get_page, "GET"),
    ]
