"""The two Asset API calls a static-list sync needs: create a list, find one by name.

Why only these: membership is lead-database API (``api_lists``), but a list can only be
*created* through the Asset API, so a connector that keeps one static list per reason code
cannot work against an emulator without it (the research checklist's "asset-API list
create/byName").  The Asset API's timestamps carry a doubled zone (``...Z+0000``) and lists live
in a folder or program; the folder is recorded as given, not checked.

Doc: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/assets/static-lists
"""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import Route

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, missing
from crm_bridge.connectors.marketo.emulator.state import StaticList
from crm_bridge.connectors.marketo.emulator.timefmt import iso
from crm_bridge.connectors.marketo.emulator.web import Call, Ctx, Ok, route

__all__ = ["asset_routes", "render_asset_list"]


def render_asset_list(
    static_list: StaticList, folder: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A static list as the Asset API answers it."""
    return {
        "id": static_list.id,
        "name": static_list.name,
        "description": static_list.description,
        "createdAt": iso(static_list.created) + "+0000",
        "updatedAt": iso(static_list.updated) + "+0000",
        "folder": folder or {"id": 0, "type": "Folder"},
        "workspace": static_list.workspace_name,
    }


def create_list(ctx: Ctx, call: Call) -> Ok:
    """``POST /rest/asset/v1/staticLists.json`` (form: ``name``, ``folder``, ``description``)."""
    name = call.require("name")
    raw_folder = call.require("folder")
    try:
        folder = json.loads(raw_folder)
    except ValueError:
        raise MarketoError(701, "folder cannot be blank") from None
    if not isinstance(folder, dict) or "id" not in folder:
        raise missing("folder")
    inst = ctx.instance
    try:
        static_list = inst.create_list(name, description=call.param("description") or "")
    except ValueError:
        raise MarketoError(709, f"Static List with name '{name}' already exists") from None
    return Ok([render_asset_list(static_list, folder)])


def by_name(ctx: Ctx, call: Call) -> Ok:
    """``GET /rest/asset/v1/staticList/byName.json?name=``: the list, or a warning."""
    name = call.require("name")
    for static_list in ctx.instance.lists.values():
        if static_list.name == name:
            return Ok([render_asset_list(static_list)])
    return Ok(
        warnings=[{"code": "702", "message": "No assets found for the given search criteria."}]
    )


def asset_routes(ctx: Ctx) -> list[Route]:
    """The Asset API static-list routes."""
    return [
        route(ctx, "/rest/asset/v1/staticLists.json", {"POST": create_list}),
        route(ctx, "/rest/asset/v1/staticList/byName.json", {"GET": by_name}),
    ]
