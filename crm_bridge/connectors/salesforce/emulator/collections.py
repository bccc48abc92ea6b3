"""sObject Collections: up to 200 records per call, one API call, per-record results in order.

Why model allOrNone precisely: crm-bridge's batch writer relies on "200 + an array in input order"
and on rolled-back siblings reporting ``ALL_OR_NONE_OPERATION_ROLLED_BACK`` so it can retry only
the good records.  Per-record errors use ``statusCode`` (not ``errorCode``).
Docs: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html
https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_bridge.connectors.salesforce.emulator.errors import ApiError, RecordError, not_found
from crm_bridge.connectors.salesforce.emulator.ids import looks_like_id, normalize_id
from crm_bridge.connectors.salesforce.emulator.rest_sobjects import render_record, writer_for
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router

__all__ = ["MAX_RECORDS", "register"]

MAX_RECORDS = 200
_ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
)


def _too_many() -> ApiError:
    return ApiError(
        400,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _run(
    ctx: Ctx,
    items: list[Any],
    op: Callable[[Any], dict[str, Any]],
    all_or_none: bool,
    failed_id: Callable[[Any], Any],
    *,
    upsert: bool = False,
) -> list[dict[str, Any]]:
    """Apply ``op`` to every item; with ``all_or_none`` undo everything if any item failed."""
    results: list[dict[str, Any] | None] = []
    errors: list[RecordError | None] = []
    with ctx.org.atomic() as sp:
        for item in items:
            try:
                results.append(op(item))
                errors.append(None)
            except RecordError as err:
                results.append(None)
                errors.append(err)
        failed = any(e is not None for e in errors)
        if failed and all_or_none:
            ctx.org.rollback(sp)
    out: list[dict[str, Any]] = []
    for item, result, problem in zip(items, results, errors, strict=True):
        if problem is None and not (failed and all_or_none):
            assert result is not None
            out.append(result)
            continue
        reason = problem if problem is not None else _ROLLED_BACK
        entry: dict[str, Any] = {
            "id": failed_id(item),
            "success": False,
            "errors": [reason.as_save_error()],
        }
        if upsert:
            entry["created"] = False
        out.append(entry)
    return out


def _records(ctx: Ctx) -> tuple[list[dict[str, Any]], bool]:
    body = ctx.json_object()
    records = body.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApiError(400, "JSON_PARSER_ERROR", "records must be a list of objects")
    if len(records) > MAX_RECORDS:
        raise _too_many()
    return records, _flag(body.get("allOrNone", False))


def _type_of(record: dict[str, Any]) -> str:
    attrs = record.get("attributes")
    if not isinstance(attrs, dict) or not attrs.get("type"):
        raise RecordError("INVALID_TYPE", "Must send a concrete entity type.", [])
    return str(attrs["type"])


def create(ctx: Ctx) -> Resp:
    """``POST /composite/sobjects`` -- create up to 200 records (mixed types allowed).

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html
    """
    records, all_or_none = _records(ctx)
    writer = writer_for(ctx)

    def op(rec: dict[str, Any]) -> dict[str, Any]:
        if "Id" in rec or "id" in rec:
            raise RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        return {"id": writer.create(_type_of(rec), rec), "success": True, "errors": []}

    return Resp(200, _run(ctx, records, op, all_or_none, lambda r: None))


def update(ctx: Ctx) -> Resp:
    """``PATCH /composite/sobjects`` -- update up to 200 records by ``id``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
    """
    records, all_or_none = _records(ctx)
    writer = writer_for(ctx)

    def op(rec: dict[str, Any]) -> dict[str, Any]:
        rid = rec.get("id", rec.get("Id"))
        if not rid:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
        body = {k: v for k, v in rec.items() if k not in ("id", "Id")}
        return {"id": writer.update(_type_of(rec), rid, body), "success": True, "errors": []}

    def failed_id(rec: dict[str, Any]) -> Any:
        rid = rec.get("id", rec.get("Id"))
        return normalize_id(str(rid)) if looks_like_id(rid) else None

    return Resp(200, _run(ctx, records, op, all_or_none, failed_id))


def delete(ctx: Ctx) -> Resp:
    """``DELETE /composite/sobjects?ids=a,b&allOrNone=false``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
    """
    ids = [i for i in (ctx.param("ids") or "").split(",") if i]
    if not ids:
        raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(ids) > MAX_RECORDS:
        raise _too_many()
    writer = writer_for(ctx)

    def op(rid: str) -> dict[str, Any]:
        return {"id": writer.delete(None, rid), "success": True, "errors": []}

    return Resp(
        200,
        _run(
            ctx,
            ids,
            op,
            _flag(ctx.param("allOrNone", "false")),
            lambda rid: normalize_id(rid) if looks_like_id(rid) else rid,
        ),
    )


def _retrieve(ctx: Ctx, ids: list[str], field_names: list[str]) -> Resp:
    t = ctx.org.sobject(ctx.path_args["sobject"])
    if t is None:
        raise not_found()
    if not ids or not field_names:
        raise ApiError(400, "MISSING_ARGUMENT", "ids and fields are required")
    if len(ids) > 2000:
        raise _too_many()
    names = []
    for name in field_names:
        f = t.field(name.strip())
        if f is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{t.name}'.")
        names.append(f.name)
    records = ctx.org.records_of(t.name)
    out: list[Any] = []
    for rid in ids:
        rec = records.get(normalize_id(rid)) if looks_like_id(rid) else None
        out.append(
            None if rec is None or rec.get("IsDeleted") else render_record(ctx, t, rec, names)
        )
    return Resp(200, out)


def retrieve(ctx: Ctx) -> Resp:
    """``GET /composite/sobjects/{Obj}?ids=&fields=`` -- ``null`` for ids that are not found.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
    """
    ids = [i for i in (ctx.param("ids") or "").split(",") if i]
    fields = [f for f in (ctx.param("fields") or "").split(",") if f]
    return _retrieve(ctx, ids, fields)


def retrieve_post(ctx: Ctx) -> Resp:
    """``POST /composite/sobjects/{Obj}`` with ``{"ids":[...],"fields":[...]}`` (up to 2000).

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
    """
    body = ctx.json_object()
    return _retrieve(
        ctx, [str(i) for i in body.get("ids") or []], [str(f) for f in body.get("fields") or []]
    )


def upsert(ctx: Ctx) -> Resp:
    """``PATCH /composite/sobjects/{Obj}/{ExtIdField}`` -- UpsertResults with ``created``.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html
    """
    t = ctx.org.sobject(ctx.path_args["sobject"])
    if t is None:
        raise not_found()
    f = t.field(ctx.path_args["field"])
    if f is None or not (f.external_id or f.name == "Id"):
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"Field name provided, {ctx.path_args['field']} is not an External ID or "
            f"indexed field for {t.name}",
        )
    records, all_or_none = _records(ctx)
    writer = writer_for(ctx)

    def op(rec: dict[str, Any]) -> dict[str, Any]:
        if _type_of(rec).lower() != t.name.lower():
            raise RecordError("INVALID_TYPE", "All records must be of the type in the URL", [])
        value = next((v for k, v in rec.items() if k.lower() == f.name.lower()), None)
        if f.name != "Id" and value in (None, ""):
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name]
            )
        try:
            rid, created = writer.upsert(t.name, f.name, value, rec)
        except RecordError as err:
            if err.status_code == "MULTIPLE_RECORDS":
                raise RecordError("DUPLICATE_EXTERNAL_ID", err.message, [f.name]) from None
            raise
        return {"id": rid, "success": True, "errors": [], "created": created}

    return Resp(200, _run(ctx, records, op, all_or_none, lambda r: None, upsert=True))


def register(router: Router) -> None:
    """Add the collection resources."""
    router.add("POST", "composite/sobjects")(create)
    router.add("PATCH", "composite/sobjects")(update)
    router.add("DELETE", "composite/sobjects")(delete)
    router.add("GET", "composite/sobjects/{sobject}")(retrieve)
    router.add("POST", "composite/sobjects/{sobject}")(retrieve_post)
    router.add("PATCH", "composite/sobjects/{sobject}/{field}")(upsert)
