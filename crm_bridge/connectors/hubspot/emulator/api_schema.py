"""Portal metadata endpoints: properties, deal pipelines and owners.

Why they matter to crm-bridge: property definitions decide which values a write may carry (the
emulator enforces them), pipelines name the deal stages that map to Salesforce opportunity
stages, and owners map a HubSpot rep to a Salesforce user by email.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.hubspot.emulator.api_objects import object_type
from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, bad_request, not_found
from crm_bridge.connectors.hubspot.emulator.properties import (
    VALID_FIELD_TYPES,
    VALID_TYPES,
    PropertyDef,
    PropertyRegistry,
)
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.connectors.hubspot.emulator.web import Call, Ctx, Reply, endpoint

__all__ = ["schema_routes"]


# -- properties -------------------------------------------------------------------------------


def _options(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("options must be a list.")
    out, seen = [], set()
    for i, o in enumerate(raw):
        value = str(o.get("value", ""))
        if not value or value in seen:
            raise bad_request(f"Option values must be unique and non-empty (got {value!r}).")
        seen.add(value)
        out.append(
            {
                "label": str(o.get("label", value)),
                "value": value,
                "displayOrder": int(o.get("displayOrder", i)),
                "hidden": bool(o.get("hidden", False)),
                "description": str(o.get("description", "")),
            }
        )
    return out


def _new_property(ctx: Ctx, obj: str, body: dict[str, Any]) -> PropertyDef:
    for key in ("name", "label", "type", "fieldType", "groupName"):
        if not body.get(key):
            raise bad_request(f"{key} is required.", context={"field": [key]})
    name = str(body["name"])
    if not PropertyRegistry.valid_name(name):
        raise bad_request(f"Property name {name!r} must be lower case letters, digits and _.")
    if body["type"] not in VALID_TYPES or body["fieldType"] not in VALID_FIELD_TYPES:
        raise bad_request(f"Invalid type/fieldType: {body['type']}/{body['fieldType']}.")
    existing = ctx.portal.properties.defs[obj].get(name)
    if existing is not None and not existing.archived:
        raise HubSpotError(
            409,
            f"Property named '{name}' already exists.",
            "OBJECT_ALREADY_EXISTS",
            sub_category="PropertyValidationError.PROPERTY_ALREADY_EXISTS",
        )
    now = ctx.portal.now_ms()
    return PropertyDef(
        name=name,
        label=str(body["label"]),
        type=str(body["type"]),
        field_type=str(body["fieldType"]),
        group_name=str(body["groupName"]),
        description=str(body.get("description", "")),
        options=_options(body.get("options")),
        hubspot_defined=False,
        has_unique_value=bool(body.get("hasUniqueValue", False)),
        hidden=bool(body.get("hidden", False)),
        display_order=int(body.get("displayOrder", -1)),
        created_ms=now,
        updated_ms=now,
    )


def _property(ctx: Ctx, obj: str, name: str) -> PropertyDef:
    d = ctx.portal.property_def(obj, name)
    if d is None:
        raise not_found(
            f"Unable to find property {name} on object type {obj}", context={"propertyName": [name]}
        )
    return d


def list_properties(ctx: Ctx, call: Call) -> Reply:
    """All property definitions of an object type.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/get-crm-v3-properties-objectType
    """
    obj = object_type(call).name
    archived = call.flag("archived")
    defs = ctx.portal.properties.defs[obj].values()
    return 200, {"results": [d.to_json() for d in defs if d.archived == archived]}


def create_property(ctx: Ctx, call: Call) -> Reply:
    """Create a custom property; 409 when the name exists.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/post-crm-v3-properties-objectType
    """
    obj = object_type(call).name
    d = _new_property(ctx, obj, call.body_dict())
    ctx.portal.properties.defs[obj][d.name] = d
    return 201, d.to_json()


def batch_create_properties(ctx: Ctx, call: Call) -> Reply:
    """Create several properties; existing names are reported per input (207).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/batch/post-crm-v3-properties-objectType-batch-create
    """
    obj = object_type(call).name
    results, errors = [], []
    for item in call.inputs(ctx.settings.batch_max_inputs):
        try:
            d = _new_property(ctx, obj, item)
        except HubSpotError as err:
            if err.status != 409:
                raise
            entry = dict(err.body)
            entry.pop("correlationId", None)
            entry["context"] = {"name": [str(item.get("name"))]}
            errors.append(entry)
            continue
        ctx.portal.properties.defs[obj][d.name] = d
        results.append(d.to_json())
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
    return 201, body


def batch_read_properties(ctx: Ctx, call: Call) -> Reply:
    """Read several definitions by name.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/batch/post-crm-v3-properties-objectType-batch-read
    """
    obj = object_type(call).name
    names = [str(i.get("name")) for i in call.inputs(ctx.settings.batch_max_inputs)]
    found = [d.to_json() for n in names if (d := ctx.portal.property_def(obj, n)) is not None]
    now = iso_ms(ctx.portal.now_ms())
    return 200, {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}


def get_property(ctx: Ctx, call: Call) -> Reply:
    """One definition.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/get-crm-v3-properties-objectType-propertyName
    """
    return 200, _property(ctx, object_type(call).name, call.path("propertyName")).to_json()


def update_property(ctx: Ctx, call: Call) -> Reply:
    """Change label, description, group, options or visibility (type only on custom ones).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/patch-crm-v3-properties-objectType-propertyName
    """
    d = _property(ctx, object_type(call).name, call.path("propertyName"))
    body = call.body_dict()
    if d.hubspot_defined and ({"type", "fieldType"} & set(body)):
        raise bad_request(f"The type of HubSpot-defined property {d.name} cannot be changed.")
    if d.external_options and "options" in body:
        raise bad_request(f"Options of {d.name} are managed elsewhere (pipelines, owners).")
    simple = {
        "label": "label",
        "description": "description",
        "groupName": "group_name",
        "hidden": "hidden",
        "displayOrder": "display_order",
        "type": "type",
        "fieldType": "field_type",
    }
    for key, attr in simple.items():
        if key in body:
            setattr(d, attr, body[key])
    if "options" in body:
        d.options = _options(body["options"])
    d.updated_ms = ctx.portal.now_ms()
    return 200, d.to_json()


def archive_property(ctx: Ctx, call: Call) -> Reply:
    """Archive a custom property (HubSpot-defined ones cannot be).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/delete-crm-v3-properties-objectType-propertyName
    """
    d = _property(ctx, object_type(call).name, call.path("propertyName"))
    if d.hubspot_defined:
        raise bad_request(f"HubSpot-defined property {d.name} cannot be archived.")
    d.archived = True
    d.updated_ms = ctx.portal.now_ms()
    return 204, None


# -- pipelines --------------------------------------------------------------------------------


def _pipeline_json(ctx: Ctx, pid: str) -> dict[str, Any]:
    label, order, stages = ctx.portal.pipelines[pid]
    stamp = iso_ms(ctx.portal.created_ms)
    return {
        "id": pid,
        "label": label,
        "displayOrder": order,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        "stages": [
            {
                "id": s.stage_id,
                "label": s.label,
                "displayOrder": i,
                "metadata": {
                    "isClosed": "true" if s.is_closed else "false",
                    "probability": s.probability,
                },
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for i, s in enumerate(stages)
        ],
    }


def _pipeline_id(ctx: Ctx, call: Call) -> str:
    if object_type(call).name != "deals":
        raise not_found(f"No pipelines for {call.path('objectType')} in this emulator.")
    pid = call.path("pipelineId")
    if pid not in ctx.portal.pipelines:
        raise not_found(f"Unable to find pipeline {pid}", context={"pipelineId": [pid]})
    return pid


def list_pipelines(ctx: Ctx, call: Call) -> Reply:
    """The pipelines of an object type (deals have the default "Sales Pipeline").

    Doc: https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/guide
    """
    if object_type(call).name != "deals":
        return 200, {"results": []}
    return 200, {"results": [_pipeline_json(ctx, pid) for pid in ctx.portal.pipelines]}


def get_pipeline(ctx: Ctx, call: Call) -> Reply:
    """One pipeline with its stages (metadata values are strings).

    Doc: https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipelines/get-crm-v3-pipelines-objectType-pipelineId
    """
    return 200, _pipeline_json(ctx, _pipeline_id(ctx, call))


def list_stages(ctx: Ctx, call: Call) -> Reply:
    """The stages of a pipeline.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipeline-stages/get-crm-v3-pipelines-objectType-pipelineId-stages
    """
    return 200, {"results": _pipeline_json(ctx, _pipeline_id(ctx, call))["stages"]}


def get_stage(ctx: Ctx, call: Call) -> Reply:
    """One stage.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipeline-stages/get-crm-v3-pipelines-objectType-pipelineId-stages-stageId
    """
    stages = _pipeline_json(ctx, _pipeline_id(ctx, call))["stages"]
    stage_id = call.path("stageId")
    for stage in stages:
        if stage["id"] == stage_id:
            return 200, stage
    raise not_found(f"Unable to find stage {stage_id}", context={"stageId": [stage_id]})


# -- owners -----------------------------------------------------------------------------------


def _owner_json(ctx: Ctx, o: dict[str, Any]) -> dict[str, Any]:
    stamp = iso_ms(ctx.portal.created_ms)
    return {
        **o,
        "userIdIncludingInactive": o["userId"],
        "type": "PERSON",
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def list_owners(ctx: Ctx, call: Call) -> Reply:
    """Owners, optionally filtered by ``email``; ``after`` paging, limit ≤ 500.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-owners-v3/guide
    """
    limit = call.int_param("limit", 100, maximum=500)
    email = (call.query("email") or "").lower()
    owners = [] if call.flag("archived") else ctx.portal.owners
    matching = [o for o in owners if not email or o["email"].lower() == email]
    after = call.query("after")
    start = next((i for i, o in enumerate(matching) if o["id"] == after), 0) if after else 0
    page = matching[start : start + limit]
    body: dict[str, Any] = {"results": [_owner_json(ctx, o) for o in page]}
    if start + limit < len(matching):
        nxt = matching[start + limit]["id"]
        body["paging"] = {"next": {"after": nxt, "link": call.page_link(nxt)}}
    return 200, body


def get_owner(ctx: Ctx, call: Call) -> Reply:
    """One owner by ``id`` (default) or ``userId``.

    Doc: https://developers.hubspot.com/docs/api-reference/crm-owners-v3/owners/get-crm-v3-owners-ownerId
    """
    key = call.path("ownerId")
    field = "userId" if call.query("idProperty") == "userId" else "id"
    for o in ctx.portal.owners:
        if str(o[field]) == key:
            return 200, _owner_json(ctx, o)
    raise not_found(f"Owner {key} not found", context={"ownerId": [key]})


def schema_routes(ctx: Ctx) -> list[Route]:
    """Properties, pipelines and owners routes."""

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(ctx, handler), methods=[method])

    props = "/crm/v3/properties/{objectType}"
    pipes = "/crm/v3/pipelines/{objectType}"
    return [
        r(f"{props}/batch/create", batch_create_properties, "POST"),
        r(f"{props}/batch/read", batch_read_properties, "POST"),
        r(props, list_properties, "GET"),
        r(props, create_property, "POST"),
        r(f"{props}/{{propertyName}}", get_property, "GET"),
        r(f"{props}/{{propertyName}}", update_property, "PATCH"),
        r(f"{props}/{{propertyName}}", archive_property, "DELETE"),
        r(pipes, list_pipelines, "GET"),
        r(f"{pipes}/{{pipelineId}}", get_pipeline, "GET"),
        r(f"{pipes}/{{pipelineId}}/stages", list_stages, "GET"),
        r(f"{pipes}/{{pipelineId}}/stages/{{stageId}}", get_stage, "GET"),
        r("/crm/v3/owners/", list_owners, "GET"),
        r("/crm/v3/owners", list_owners, "GET"),
        r("/crm/v3/owners/{ownerId}", get_owner, "GET"),
    ]
