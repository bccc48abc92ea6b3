"""sObject resources: describe, single-record CRUD, upsert by external id, getUpdated/getDeleted.

Why these status codes matter: simple-salesforce returns the bare status code from
``update``/``upsert``/``delete`` and maps 300/400/401/403/404 to distinct exceptions, so crm-bridge
branches on them.  Each handler answers exactly what the REST guide documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_bridge.connectors.salesforce.emulator.dml import Writer
from crm_bridge.connectors.salesforce.emulator.errors import ApiError, RecordError, not_found
from crm_bridge.connectors.salesforce.emulator.ids import looks_like_id, normalize_id
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router
from crm_bridge.connectors.salesforce.emulator.schema import SObjectType
from crm_bridge.connectors.salesforce.emulator.soql import field_getter
from crm_bridge.connectors.salesforce.emulator.state import Record
from crm_bridge.connectors.salesforce.emulator.values import format_datetime, parse_datetime

__all__ = ["record_error_to_api", "register", "render_record", "writer_for"]


def writer_for(ctx: Ctx) -> Writer:
    """A writer acting as the token's user, honouring ``Sforce-Duplicate-Rule-Header``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_duplicaterules.htm
    """
    header = (ctx.header("sforce-duplicate-rule-header") or "").replace(" ", "").lower()
    return Writer(ctx.org, ctx.user_id, allow_duplicates="allowsave=true" in header)


def record_error_to_api(err: RecordError) -> ApiError:
    """How a single-record call reports a record error (status 404 for missing/deleted)."""
    if err.status_code == "ENTITY_IS_DELETED":
        return ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
    if err.status_code in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID") and not err.fields:
        return not_found()
    return err.as_api_error(400)


def _type(ctx: Ctx) -> SObjectType:
    t = ctx.org.sobject(ctx.path_args["sobject"])
    if t is None:
        raise not_found()
    return t


def render_record(
    ctx: Ctx, t: SObjectType, rec: Record, fields: list[str] | None = None
) -> dict[str, Any]:
    """A record as GET returns it: attributes plus every (or the requested) field."""
    out: dict[str, Any] = {
        "attributes": {"type": t.name, "url": f"{ctx.version_path()}/sobjects/{t.name}/{rec['Id']}"}
    }
    chosen = t.fields.values() if fields is None else [t.fields[n] for n in fields]
    for f in chosen:
        out[f.name] = field_getter(t, f)(rec)
    return out


def _requested_fields(ctx: Ctx, t: SObjectType) -> list[str] | None:
    raw = ctx.param("fields")
    if not raw:
        return None
    names = []
    for name in (n.strip() for n in raw.split(",")):
        f = t.field(name)
        if f is None:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{t.name}'. If you are attempting "
                f"to use a custom field, be sure to append the '__c' after the custom "
                f"field name. Please reference your WSDL or the describe call for the "
                f"appropriate names.",
            )
        names.append(f.name)
    return names


def global_describe(ctx: Ctx) -> Resp:
    """``GET /sobjects`` -- every object.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_describeGlobal.htm
    """
    return Resp(
        200,
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [t.describe(ctx.version, full=False) for t in ctx.org.schema.values()],
        },
    )


def basic_info(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}`` -- object metadata and recent items.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_basic_info.htm
    """
    return Resp(
        200, {"objectDescribe": _type(ctx).describe(ctx.version, full=False), "recentItems": []}
    )


def describe(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}/describe`` -- fields with types, picklist values, external ids.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    """
    return Resp(200, _type(ctx).describe(ctx.version, full=True))


def create(ctx: Ctx) -> Resp:
    """``POST /sobjects/{Obj}`` -- 201 ``{"id","success":true,"errors":[]}``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_create.htm
    """
    t = _type(ctx)
    try:
        rid = writer_for(ctx).create(t.name, ctx.json_object())
    except RecordError as err:
        raise err.as_api_error(400) from None
    return Resp(201, {"id": rid, "success": True, "errors": []})


def _live(ctx: Ctx, t: SObjectType, record_id: str) -> Record:
    if not looks_like_id(record_id) or not record_id.startswith(t.key_prefix):
        raise not_found()
    rec = ctx.org.records_of(t.name).get(normalize_id(record_id))
    if rec is None:
        raise not_found()
    if rec.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
    return rec


def get_record(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}/{id}[?fields=a,b]``; a deleted record is 404 ENTITY_IS_DELETED.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_retrieve.htm
    """
    t = _type(ctx)
    fields = _requested_fields(ctx, t)
    rec = _live(ctx, t, ctx.path_args["id"])
    return Resp(200, render_record(ctx, t, rec, fields))


def update_record(ctx: Ctx) -> Resp:
    """``PATCH /sobjects/{Obj}/{id}`` -- 204 on success.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
    """
    t = _type(ctx)
    rec = _live(ctx, t, ctx.path_args["id"])
    try:
        writer_for(ctx).update(t.name, rec["Id"], ctx.json_object())
    except RecordError as err:
        raise record_error_to_api(err) from None
    return Resp(204)


def delete_record(ctx: Ctx) -> Resp:
    """``DELETE /sobjects/{Obj}/{id}`` -- 204; the record moves to the recycle bin.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_delete_record.htm
    """
    t = _type(ctx)
    rec = _live(ctx, t, ctx.path_args["id"])
    try:
        writer_for(ctx).delete(t.name, rec["Id"])
    except RecordError as err:
        raise record_error_to_api(err) from None
    return Resp(204)


def _ext_matches(ctx: Ctx, t: SObjectType) -> tuple[str, list[Record]]:
    f = t.field(ctx.path_args["field"])
    if f is None or not f.external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            "Provided external ID field does not exist or is not "
            f"accessible: {ctx.path_args['field']}",
        )
    store = ctx.org.stores[t.name]
    key = store.ext_key(ctx.path_args["value"])
    recs = [store.records[i] for i in store.by_ext.get(f.name, {}).get(key, ())]
    return f.name, [r for r in recs if not r.get("IsDeleted")]


def _multiple(ctx: Ctx, t: SObjectType, ids: list[str]) -> Resp:
    return Resp(300, [f"{ctx.version_path()}/sobjects/{t.name}/{i}" for i in ids])


def get_by_external_id(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}/{ExtField}/{value}``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
    """
    t = _type(ctx)
    _, recs = _ext_matches(ctx, t)
    if not recs:
        raise not_found()
    if len(recs) > 1:
        return _multiple(ctx, t, [r["Id"] for r in recs])
    return Resp(200, render_record(ctx, t, recs[0], _requested_fields(ctx, t)))


def upsert(ctx: Ctx) -> Resp:
    """``PATCH /sobjects/{Obj}/{ExtField}/{value}`` -- 201 created, 200 updated, 300 ambiguous.

    API 46.0+ answers an update with 200 and ``"created": false``; older versions with 204.
    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html
    """
    t = _type(ctx)
    if ctx.path_args["field"].lower() != "id":
        _ext_matches(ctx, t)  # 404 for an unknown external-id field
    try:
        rid, created = writer_for(ctx).upsert(
            t.name, ctx.path_args["field"], ctx.path_args["value"], ctx.json_object() or {}
        )
    except RecordError as err:
        if err.status_code == "MULTIPLE_RECORDS":
            return _multiple(ctx, t, list(err.extra["ids"]))
        if err.status_code == "NOT_FOUND":
            raise ApiError(404, "NOT_FOUND", err.message) from None
        raise record_error_to_api(err) from None
    body = {"id": rid, "success": True, "errors": [], "created": created}
    if created:
        return Resp(201, body)
    if float(ctx.version) < 46.0:
        return Resp(204)
    return Resp(200, body)


def delete_by_external_id(ctx: Ctx) -> Resp:
    """``DELETE /sobjects/{Obj}/{ExtField}/{value}``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
    """
    t = _type(ctx)
    _, recs = _ext_matches(ctx, t)
    if not recs:
        raise not_found()
    if len(recs) > 1:
        return _multiple(ctx, t, [r["Id"] for r in recs])
    writer_for(ctx).delete(t.name, recs[0]["Id"])
    return Resp(204)


def _window(ctx: Ctx) -> tuple[datetime, datetime, datetime]:
    try:
        start = parse_datetime(ctx.param("start") or "")
        end = parse_datetime(ctx.param("end") or "")
    except ValueError:
        raise ApiError(
            400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 dateTimes"
        ) from None
    now = ctx.org.clock.now()
    start = start.replace(second=0, microsecond=0)
    end = end.replace(second=0, microsecond=0)
    if end - start < timedelta(minutes=1):
        raise ApiError(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate by more than one minute",
        )
    if start < now - timedelta(days=30):
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    covered = min(end, now.replace(second=0, microsecond=0))
    return start.astimezone(UTC), end.astimezone(UTC), covered.astimezone(UTC)


def updated(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}/updated/?start=&end=`` -- ids whose SystemModstamp is in the window.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getupdated.md
    """
    t = _type(ctx)
    start, end, covered = _window(ctx)
    lo, hi = format_datetime(start), format_datetime(min(end, covered))
    ids = [
        r["Id"]
        for r in ctx.org.records_of(t.name).values()
        if not r.get("IsDeleted") and lo <= r["SystemModstamp"] < hi
    ]
    return Resp(200, {"ids": ids, "latestDateCovered": format_datetime(covered)})


def deleted(ctx: Ctx) -> Resp:
    """``GET /sobjects/{Obj}/deleted/?start=&end=`` -- deletions (and merge losers) in the window.

    Doc: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-getdeleted.md
    """
    t = _type(ctx)
    start, end, covered = _window(ctx)
    lo, hi = format_datetime(start), format_datetime(min(end, covered))
    recs = [
        r
        for r in ctx.org.records_of(t.name).values()
        if r.get("IsDeleted") and lo <= r["SystemModstamp"] < hi
    ]
    recs.sort(key=lambda r: str(r["SystemModstamp"]))
    earliest = ctx.org.clock.now().replace(second=0, microsecond=0) - timedelta(days=15)
    return Resp(
        200,
        {
            "deletedRecords": [{"id": r["Id"], "deletedDate": r["SystemModstamp"]} for r in recs],
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(covered),
        },
    )


def register(router: Router) -> None:
    """Add the sObject resources (specific paths before the ``{id}`` catch-all)."""
    router.add("GET", "sobjects")(global_describe)
    router.add("GET", "sobjects/{sobject}")(basic_info)
    router.add("POST", "sobjects/{sobject}")(create)
    router.add("GET", "sobjects/{sobject}/describe")(describe)
    router.add("GET", "sobjects/{sobject}/updated")(updated)
    router.add("GET", "sobjects/{sobject}/deleted")(deleted)
    router.add("GET", "sobjects/{sobject}/{id}")(get_record)
    router.add("PATCH", "sobjects/{sobject}/{id}")(update_record)
    router.add("DELETE", "sobjects/{sobject}/{id}")(delete_record)
    router.add("GET", "sobjects/{sobject}/{field}/{value}", plus=("value",))(get_by_external_id)
    router.add("PATCH", "sobjects/{sobject}/{field}/{value}", plus=("value",))(upsert)
    router.add("DELETE", "sobjects/{sobject}/{field}/{value}", plus=("value",))(
        delete_by_external_id
    )
