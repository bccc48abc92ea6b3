"""Org administration for the reason-code feature: picklist/text fields, validation rules, roles.

Why the Tooling REST API (``sf.toolingexecute``) and not the Metadata API: simple-salesforce's
``mdapi`` builds its own SOAP session, which ignores our transport (retry seam, call counting,
the emulator's CA).  ``toolingexecute`` goes through the client's session like every other call.

Why "ensure" rather than "create": ``crm-bridge reasons install`` must be idempotent.  Each method
reads the current definition first (one tooling query), compares it with what is wanted, and only
then creates or PATCHes -- so a second install makes no writes at all.  Picklist values that
disappear from the taxonomy are sent back as *inactive*: Salesforce keeps them on historic
records, and a restricted picklist refuses them on new writes.

Why ``related`` reads ``OpportunityContactRole``: the people involved in a deal are its contact
roles, not the account's contacts; one SOQL query per 200 opportunities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote_plus

from more_itertools import chunked

from crm_bridge.connector import FieldChange, FieldDefinition, PicklistValue
from crm_bridge.errors import CrmBridgeError

from .reading import quote, valid_id

if TYPE_CHECKING:
    from .connector import SalesforceConnector

__all__ = ["SalesforceAdminMixin"]

_NOTE_LENGTH = 32768
_RELATIONS: Mapping[tuple[str, str], tuple[str, str, str]] = {
    # (from, to): (junction object, field naming `from`, field naming `to`)
    ("Opportunity", "Contact"): ("OpportunityContactRole", "OpportunityId", "ContactId"),
    ("Contact", "Opportunity"): ("OpportunityContactRole", "ContactId", "OpportunityId"),
}


def _developer_name(name: str) -> str:
    return name.removesuffix("__c")


def _picklist_metadata(definition: FieldDefinition) -> dict[str, Any]:
    return {
        "label": definition.label,
        "type": "Picklist",
        "description": definition.description or None,
        "valueSet": {
            "restricted": definition.restricted,
            "valueSetDefinition": {
                "sorted": False,
                "value": [
                    {
                        "fullName": v.value,
                        "label": v.label,
                        "default": False,
                        "isActive": v.active,
                    }
                    for v in definition.values
                ],
            },
        },
    }


def _text_metadata(definition: FieldDefinition) -> dict[str, Any]:
    return {
        "label": definition.label,
        "type": "LongTextArea",
        "length": _NOTE_LENGTH,
        "visibleLines": 3,
        "description": definition.description or None,
    }


def _definition_from(obj: str, name: str, metadata: Mapping[str, Any]) -> FieldDefinition:
    picklist = metadata.get("type") in ("Picklist", "MultiselectPicklist")
    kind: Literal["picklist", "text"] = "picklist" if picklist else "text"
    values: list[PicklistValue] = []
    restricted = False
    if picklist:
        value_set = metadata.get("valueSet") or {}
        restricted = bool(value_set.get("restricted"))
        for entry in (value_set.get("valueSetDefinition") or {}).get("value") or []:
            value = str(entry.get("fullName") or entry.get("valueName") or "")
            values.append(
                PicklistValue(
                    value, str(entry.get("label") or value), bool(entry.get("isActive", True))
                )
            )
    return FieldDefinition(
        object=obj,
        name=name,
        label=str(metadata.get("label") or _developer_name(name)),
        kind=kind,
        values=tuple(values),
        restricted=restricted,
        description=str(metadata.get("description") or ""),
    )


def _merged_values(
    wanted: Sequence[PicklistValue], current: Sequence[PicklistValue]
) -> tuple[PicklistValue, ...]:
    """Wanted values first, then every installed value not wanted any more, as inactive."""
    names = {v.value for v in wanted}
    kept = [PicklistValue(v.value, v.label, False) for v in current if v.value not in names]
    return (*wanted, *kept)


def _host(mixin: object) -> SalesforceConnector:
    """The connector this mixin is part of (the mixin only ever lives in SalesforceConnector)."""
    return cast("SalesforceConnector", mixin)


class SalesforceAdminMixin:
    """``PICKLIST_ADMIN``, ``VALIDATION_RULES`` and ``RELATIONS`` for the Salesforce connector."""

    # -- tooling plumbing --------------------------------------------------------------------------

    def _tooling(
        self,
        action: str,
        *,
        method: str = "GET",
        data: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        c = _host(self)
        return c._call(
            lambda: c.auth.client.toolingexecute(
                action, method=method, data=dict(data) if data is not None else None
            ),
            idempotent=idempotent,
        )

    def _tooling_one(self, soql: str) -> Mapping[str, Any] | None:
        """The single row of a tooling query (Metadata may only be selected for one row)."""
        answer = self._tooling(f"query/?q={quote_plus(soql)}")
        rows = list(answer.get("records") or []) if isinstance(answer, Mapping) else []
        return rows[0] if rows else None

    def _created_id(self, answer: Any, what: str) -> str:
        if not isinstance(answer, Mapping) or not answer.get("id"):
            raise CrmBridgeError(f"Salesforce did not confirm creating {what}: {answer!r}")
        return str(answer["id"])

    # -- fields ----------------------------------------------------------------------------------

    def _field_row(self, obj: str, name: str) -> Mapping[str, Any] | None:
        return self._tooling_one(
            "SELECT Id, Metadata FROM CustomField WHERE TableEnumOrId = "
            f"{quote(obj)} AND DeveloperName = {quote(_developer_name(name))}"
        )

    def field_definition(self, obj: str, name: str) -> FieldDefinition | None:
        """The installed custom field ``obj.name`` (``Rejection_Reason__c``), or None."""
        row = self._field_row(obj, name)
        if row is None:
            return None
        return _definition_from(obj, name, row.get("Metadata") or {})

    def ensure_field(self, definition: FieldDefinition) -> FieldChange:
        """Create the field, or PATCH it when label/values/restriction differ; else no write."""
        if not definition.name.endswith("__c"):
            raise ValueError(f"custom field names end with __c: {definition.name}")
        row = self._field_row(definition.object, definition.name)
        if row is None:
            metadata = (
                _picklist_metadata(definition)
                if definition.kind == "picklist"
                else _text_metadata(definition)
            )
            body = {"FullName": f"{definition.object}.{definition.name}", "Metadata": metadata}
            self._created_id(
                self._tooling("sobjects/CustomField", method="POST", data=body, idempotent=False),
                f"{definition.object}.{definition.name}",
            )
            _host(self)._descriptions.pop(definition.object, None)
            return "created"
        current = _definition_from(definition.object, definition.name, row.get("Metadata") or {})
        if definition.kind == "picklist":
            wanted = FieldDefinition(
                object=definition.object,
                name=definition.name,
                label=definition.label,
                kind="picklist",
                values=_merged_values(definition.values, current.values),
                restricted=definition.restricted,
                description=definition.description,
            )
        else:
            wanted = FieldDefinition(
                object=definition.object,
                name=definition.name,
                label=definition.label,
                kind="text",
                restricted=False,
                description=definition.description,
            )
        if wanted == current:
            return "unchanged"
        if current.kind != wanted.kind:
            raise CrmBridgeError(
                f"{definition.object}.{definition.name} exists as {current.kind}, not "
                f"{wanted.kind}; rename the field in the reasons settings",
                connector=_host(self).name,
            )
        metadata = (
            _picklist_metadata(wanted) if wanted.kind == "picklist" else _text_metadata(wanted)
        )
        self._tooling(
            f"sobjects/CustomField/{row['Id']}", method="PATCH", data={"Metadata": metadata}
        )
        _host(self)._descriptions.pop(definition.object, None)
        return "updated"

    # -- validation rules ------------------------------------------------------------------------

    def _rule_row(self, obj: str, name: str) -> Mapping[str, Any] | None:
        return self._tooling_one(
            "SELECT Id, Metadata FROM ValidationRule WHERE EntityDefinitionId = "
            f"{quote(obj)} AND ValidationName = {quote(name)}"
        )

    def validation_rule(self, obj: str, name: str) -> Mapping[str, Any] | None:
        """The installed rule's ``errorConditionFormula``, ``errorMessage`` and ``active``, or None.

        Not part of the connector API (which only *ensures* rules); ``reasons plan`` uses it when
        present to show what an install would change.
        """
        row = self._rule_row(obj, name)
        if row is None:
            return None
        md = row.get("Metadata") or {}
        return {k: md.get(k) for k in ("errorConditionFormula", "errorMessage", "active")}

    def ensure_validation_rule(
        self, obj: str, name: str, formula: str, message: str
    ) -> FieldChange:
        """Create the active rule ``obj.name``, or PATCH formula/message/activation when they differ."""
        row = self._rule_row(obj, name)
        wanted = {"errorConditionFormula": formula, "errorMessage": message, "active": True}
        if row is None:
            body = {
                "FullName": f"{obj}.{name}",
                "Metadata": {**wanted, "description": "Installed by crm-bridge reasons install."},
            }
            self._created_id(
                self._tooling(
                    "sobjects/ValidationRule", method="POST", data=body, idempotent=False
                ),
                f"validation rule {obj}.{name}",
            )
            return "created"
        current = row.get("Metadata") or {}
        if all(current.get(k) == v for k, v in wanted.items()):
            return "unchanged"
        self._tooling(
            f"sobjects/ValidationRule/{row['Id']}", method="PATCH", data={"Metadata": wanted}
        )
        return "updated"

    # -- relations -------------------------------------------------------------------------------

    def related(self, obj: str, ids: Sequence[str], to_obj: str) -> dict[str, list[str]]:
        """Ids of ``to_obj`` linked to each of ``ids`` (Opportunity <-> Contact via contact roles)."""
        route = _RELATIONS.get((obj, to_obj))
        if route is None:
            served = ", ".join(f"{a}->{b}" for a, b in _RELATIONS)
            raise ValueError(f"no relation {obj}->{to_obj}; supported: {served}")
        junction, mine, theirs = route
        out: dict[str, list[str]] = {i: [] for i in ids}
        wanted = [i for i in dict.fromkeys(ids) if valid_id(i)]
        for chunk in chunked(wanted, 200):
            soql = (
                f"SELECT {mine}, {theirs} FROM {junction} WHERE {mine} IN "
                f"({', '.join(map(quote, chunk))}) ORDER BY {mine}, {theirs}"
            )
            for page in _host(self)._pages(soql, all_rows=False):
                for row in page:
                    key, other = str(row.get(mine) or ""), str(row.get(theirs) or "")
                    if key in out and other and other not in out[key]:
                        out[key].append(other)
        return out
