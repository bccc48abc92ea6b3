"""Portal administration for the reason-code feature: properties, static lists, associations.

Why our own enumeration properties rather than ``closed_lost_reason`` / ``closed_won_reason``:
those two are HubSpot-defined *free-text* properties whose type cannot be changed, so they cannot
refuse an unknown code, cannot carry labels, and cannot deactivate a retired code while keeping it
on old deals.  An enumeration property can do all three: a retired option is kept *hidden* (HubSpot
still accepts and shows it on historic records).  docs/reasons.md has the long form.

Idempotence: definitions are read first with one batch read per object, lists are found by name
through one search, and a create/update is only sent when something differs.

Every request goes through :meth:`HubSpotClient.send` (paced, retried, counted under
``properties``, ``lists`` and ``associations`` in ``connector.calls``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from more_itertools import chunked

from crm_bridge.connector import FieldChange, FieldDefinition, PicklistValue
from crm_bridge.connectors.hubspot.client import require_dict
from crm_bridge.errors import CrmBridgeError

if TYPE_CHECKING:
    from .connector import HubSpotConnector

__all__ = ["OBJECT_TYPE_IDS", "HubSpotAdminMixin"]

OBJECT_TYPE_IDS: Mapping[str, str] = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
_GROUPS: Mapping[str, str] = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}
LIST_CHANGE_MAX = 250
ASSOCIATION_READ_MAX = 1000
MEMBERS_PAGE = 250


def _host(mixin: object) -> HubSpotConnector:
    """The connector this mixin is part of (it only ever lives in HubSpotConnector)."""
    return cast("HubSpotConnector", mixin)


def _definition_from(obj: str, raw: Mapping[str, Any]) -> FieldDefinition:
    enumeration = raw.get("type") == "enumeration"
    values = tuple(
        PicklistValue(
            str(o.get("value")), str(o.get("label") or o.get("value")), not o.get("hidden")
        )
        for o in raw.get("options") or []
    )
    return FieldDefinition(
        object=obj,
        name=str(raw.get("name")),
        label=str(raw.get("label") or raw.get("name")),
        kind="picklist" if enumeration else "text",
        values=values if enumeration else (),
        restricted=enumeration,
        description=str(raw.get("description") or ""),
    )


def _options(values: Sequence[PicklistValue]) -> list[dict[str, Any]]:
    return [
        {"label": v.label, "value": v.value, "displayOrder": i, "hidden": not v.active}
        for i, v in enumerate(values)
    ]


class HubSpotAdminMixin:
    """``PICKLIST_ADMIN``, ``LISTS`` and ``RELATIONS`` for the HubSpot connector."""

    # -- properties ------------------------------------------------------------------------------

    def _property(self, obj: str, name: str) -> Mapping[str, Any] | None:
        c = _host(self)
        body = {"inputs": [{"name": name}], "archived": False}
        response = c.client.send(
            "properties", "crm.properties.batch_api", "read", obj, body, idempotent=True
        )
        for raw in require_dict(response, "properties batch read").get("results") or []:
            if isinstance(raw, Mapping) and raw.get("name") == name and not raw.get("archived"):
                return raw
        return None

    def field_definition(self, obj: str, name: str) -> FieldDefinition | None:
        """The property ``name`` of ``obj`` as a field definition (hidden options inactive)."""
        raw = self._property(obj, name)
        return _definition_from(obj, raw) if raw is not None else None

    def ensure_field(self, definition: FieldDefinition) -> FieldChange:
        """Create the property, or PATCH label/options when they differ; retired options hidden."""
        c = _host(self)
        obj = definition.object
        raw = self._property(obj, definition.name)
        wanted_values = definition.values
        if raw is not None:
            current = _definition_from(obj, raw)
            if current.kind != definition.kind:
                raise CrmBridgeError(
                    f"HubSpot property {obj}.{definition.name} exists as {current.kind}, not "
                    f"{definition.kind}; choose another property name in the reasons settings",
                    connector=c.name,
                )
            names = {v.value for v in wanted_values}
            kept = [
                PicklistValue(v.value, v.label, False)
                for v in current.values
                if v.value not in names
            ]
            wanted_values = (*wanted_values, *kept)
            wanted = FieldDefinition(
                object=obj,
                name=definition.name,
                label=definition.label,
                kind=definition.kind,
                values=wanted_values if definition.kind == "picklist" else (),
                restricted=current.restricted,
                description=definition.description,
            )
            if wanted == current:
                return "unchanged"
            update: dict[str, Any] = {
                "label": definition.label,
                "description": definition.description,
            }
            if definition.kind == "picklist":
                update["options"] = _options(wanted_values)
            c.client.send(
                "properties",
                "crm.properties.core_api",
                "update",
                obj,
                definition.name,
                update,
                idempotent=True,
            )
            return "updated"
        create: dict[str, Any] = {
            "name": definition.name,
            "label": definition.label,
            "description": definition.description,
            "groupName": _GROUPS.get(obj, f"{obj}information"),
        }
        if definition.kind == "picklist":
            create.update(type="enumeration", fieldType="select", options=_options(wanted_values))
        else:
            create.update(type="string", fieldType="textarea")
        c.client.send(
            "properties", "crm.properties.core_api", "create", obj, create, idempotent=False
        )
        return "created"

    # -- static lists ----------------------------------------------------------------------------

    def ensure_list(self, name: str, obj: str) -> str:
        """The id of the MANUAL list ``name`` of ``obj`` records, created when missing."""
        c = _host(self)
        type_id = OBJECT_TYPE_IDS.get(obj)
        if type_id is None:
            raise ValueError(f"no HubSpot object type id for {obj!r}")
        offset = 0
        while True:
            body = {
                "query": name,
                "processingTypes": ["MANUAL", "SNAPSHOT"],
                "offset": offset,
                "count": 100,
            }
            page = require_dict(
                c.client.send("lists", "crm.lists.lists_api", "do_search", body, idempotent=True),
                "list search",
            )
            for raw in page.get("lists") or []:
                if raw.get("name") == name and str(raw.get("objectTypeId")) == type_id:
                    return str(raw["listId"])
            if not page.get("hasMore"):
                break
            offset = int(page.get("offset") or offset + 100)
        created = {"name": name, "objectTypeId": type_id, "processingType": "MANUAL"}
        answer = require_dict(
            c.client.send("lists", "crm.lists.lists_api", "create", created, idempotent=False),
            "list create",
        )
        return str((answer.get("list") or {})["listId"])

    def add_to_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Add records (250 per call); records already in the list are fine."""
        c = _host(self)
        for chunk in chunked(list(dict.fromkeys(ids)), LIST_CHANGE_MAX):
            c.client.send(
                "lists", "crm.lists.memberships_api", "add", list_id, list(chunk), idempotent=True
            )

    def remove_from_list(self, list_id: str, ids: Sequence[str]) -> None:
        """Remove records (250 per call); records not in the list are fine."""
        c = _host(self)
        for chunk in chunked(list(dict.fromkeys(ids)), LIST_CHANGE_MAX):
            c.client.send(
                "lists",
                "crm.lists.memberships_api",
                "remove",
                list_id,
                list(chunk),
                idempotent=True,
            )

    def list_members(self, list_id: str) -> Iterator[str]:
        """Member record ids, 250 per page."""
        c = _host(self)
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": MEMBERS_PAGE}
            if after is not None:
                kwargs["after"] = after
            page = require_dict(
                c.client.send(
                    "lists",
                    "crm.lists.memberships_api",
                    "get_page",
                    list_id,
                    idempotent=True,
                    **kwargs,
                ),
                "list members",
            )
            for raw in page.get("results") or []:
                yield str(raw.get("recordId"))
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if after is None:
                return

    # -- associations ----------------------------------------------------------------------------

    def related(self, obj: str, ids: Sequence[str], to_obj: str) -> dict[str, list[str]]:
        """Associated ``to_obj`` ids per id (associations v4 batch read, 1,000 ids per call)."""
        c = _host(self)
        out: dict[str, list[str]] = {str(i): [] for i in ids}
        for chunk in chunked(list(out), ASSOCIATION_READ_MAX):
            body = {"inputs": [{"id": i} for i in chunk]}
            page = require_dict(
                c.client.send(
                    "associations",
                    "crm.associations.v4.batch_api",
                    "get_page",
                    obj,
                    to_obj,
                    body,
                    idempotent=True,
                ),
                "associations batch read",
            )
            for result in page.get("results") or []:
                key = str((result.get("from") or {}).get("id"))
                for link in result.get("to") or []:
                    other = str(link.get("toObjectId"))
                    if key in out and other not in out[key]:
                        out[key].append(other)
        return out
