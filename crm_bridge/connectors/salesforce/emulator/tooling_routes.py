"""HTTP resources of the Tooling API (``/tooling/sobjects/...`` and ``/tooling/query``).

Why ``/tooling/query`` matters: crm-bridge's installer is idempotent -- it asks "does
Lead.Rejection_Reason__c exist?" before creating it, then PATCHes the value set.
Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/intro_rest_resources.htm
"""

from __future__ import annotations

from typing import Any

from crm_bridge.connectors.salesforce.emulator.errors import ApiError, not_found
from crm_bridge.connectors.salesforce.emulator.rest_query import first_page
from crm_bridge.connectors.salesforce.emulator.router import Ctx, Resp, Router
from crm_bridge.connectors.salesforce.emulator.soql import compile_query, run_query

__all__ = ["register"]

_KINDS = {"customfield": "CustomField", "validationrule": "ValidationRule"}


def _kind(ctx: Ctx) -> str:
    kind = _KINDS.get(ctx.path_args["sobject"].lower())
    if kind is None:
        raise not_found()
    return kind


def _created(rid: str) -> Resp:
    return Resp(201, {"id": rid, "success": True, "errors": [], "warnings": [], "infos": []})


def create(ctx: Ctx) -> Resp:
    """``POST /tooling/sobjects/CustomField|ValidationRule`` -- 201 with the new id.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
    """
    kind = _kind(ctx)
    body = ctx.json_object()
    catalog = ctx.org.tooling
    rid = catalog.create_field(body) if kind == "CustomField" else catalog.create_rule(body)
    return _created(rid)


def _record(ctx: Ctx, kind: str) -> dict[str, Any]:
    catalog = ctx.org.tooling
    rid = ctx.path_args["id"]
    rec = (
        catalog.field_record(catalog.field_def(rid))
        if kind == "CustomField"
        else (catalog.rule_record(catalog.rule(rid)))
    )
    return {
        "attributes": {
            "type": kind,
            "url": f"{ctx.version_path()}/tooling/sobjects/{kind}/{rec['Id']}",
        },
        **rec,
    }


def get(ctx: Ctx) -> Resp:
    """``GET /tooling/sobjects/{Kind}/{id}`` -- the record including ``Metadata``.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/intro_rest_resources.htm
    """
    return Resp(200, _record(ctx, _kind(ctx)))


def patch(ctx: Ctx) -> Resp:
    """``PATCH /tooling/sobjects/{Kind}/{id}`` -- replace metadata (add/deactivate values) -> 204.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
    """
    kind = _kind(ctx)
    catalog = ctx.org.tooling
    body = ctx.json_object()
    if kind == "CustomField":
        catalog.update_field(ctx.path_args["id"], body)
    else:
        catalog.update_rule(ctx.path_args["id"], body)
    return Resp(204)


def delete(ctx: Ctx) -> Resp:
    """``DELETE /tooling/sobjects/{Kind}/{id}`` -> 204.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/intro_rest_resources.htm
    """
    kind = _kind(ctx)
    catalog = ctx.org.tooling
    if kind == "CustomField":
        catalog.delete_field(ctx.path_args["id"])
    else:
        catalog.delete_rule(ctx.path_args["id"])
    return Resp(204)


def describe_global(ctx: Ctx) -> Resp:
    """``GET /tooling/sobjects`` -- the tooling objects the emulator serves.

    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/intro_rest_resources.htm
    """
    catalog = ctx.org.tooling
    return Resp(
        200,
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                t.describe(ctx.version, full=False)
                for t in (catalog.sobject("CustomField"), catalog.sobject("ValidationRule"))
                if t is not None
            ],
        },
    )


def query(ctx: Ctx) -> Resp:
    """``GET /tooling/query?q=`` -- SOQL over CustomField and ValidationRule.

    As in a real org, selecting ``Metadata`` or ``FullName`` is only allowed when the query
    returns at most one row.
    Doc: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/intro_rest_resources.htm
    """
    text = ctx.param("q") or ""
    catalog = ctx.org.tooling
    q = compile_query(catalog, text, version=ctx.version, now=ctx.org.clock.now())
    if any(p.names[-1] in ("Metadata", "FullName") for p in q.paths):
        size = len(run_query(catalog, q, include_deleted=False))
        if size > 1:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                "When retrieving results with Metadata or FullName fields, the query "
                "qualifications must specify no more than one row for retrieval. "
                f"Result size: {size}",
            )
    return first_page(ctx, catalog, include_deleted=False)


def register(router: Router) -> None:
    """Add the Tooling resources."""
    router.add("GET", "tooling/query")(query)
    router.add("GET", "tooling/sobjects")(describe_global)
    router.add("POST", "tooling/sobjects/{sobject}")(create)
    router.add("GET", "tooling/sobjects/{sobject}/{id}")(get)
    router.add("PATCH", "tooling/sobjects/{sobject}/{id}")(patch)
    router.add("DELETE", "tooling/sobjects/{sobject}/{id}")(delete)
