"""Tooling API: custom fields and validation rules that change the emulated org's schema.

Why Tooling REST and not the Metadata (SOAP) API: simple-salesforce's ``sf.mdapi`` ignores the
session it was given (so cannot trust the emulator's CA), while ``sf.toolingexecute`` goes through
it.  crm-bridge installs its reason-code picklists and validation rules this way, and the
emulator makes them *real*: the field shows up in describe, can be queried and written, and a
restricted picklist or an active rule is enforced on every write path.
Docs: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_validationrule.htm
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_bridge.connectors.salesforce.emulator.errors import ApiError, RecordError
from crm_bridge.connectors.salesforce.emulator.formula import Formula, FormulaError, compile_formula
from crm_bridge.connectors.salesforce.emulator.schema import Field, PicklistValue, SObjectType

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.state import Org

__all__ = ["CustomFieldDef", "RuleDef", "ToolingCatalog"]

Record = dict[str, Any]

_TYPES: dict[str, tuple[str, int]] = {
    # Metadata type: (describe type, default length)
    "Picklist": ("picklist", 255),
    "MultiselectPicklist": ("multipicklist", 4099),
    "Text": ("string", 255),
    "TextArea": ("textarea", 255),
    "LongTextArea": ("textarea", 32768),
    "Checkbox": ("boolean", 0),
    "Number": ("double", 0),
    "Currency": ("currency", 0),
    "Percent": ("percent", 0),
    "Date": ("date", 0),
    "DateTime": ("datetime", 0),
    "Email": ("email", 80),
    "Phone": ("phone", 40),
    "Url": ("url", 255),
}


@dataclass
class CustomFieldDef:
    """A custom field created through Tooling, with the metadata it was last saved with."""

    id: str
    object: str
    developer_name: str
    metadata: dict[str, Any]
    created: str
    modified: str

    @property
    def api_name(self) -> str:
        """``Rejection_Reason__c``."""
        return f"{self.developer_name}__c"

    @property
    def full_name(self) -> str:
        """``Lead.Rejection_Reason__c``."""
        return f"{self.object}.{self.api_name}"


@dataclass
class RuleDef:
    """A validation rule and its compiled error condition."""

    id: str
    object: str
    name: str
    metadata: dict[str, Any]
    formula: Formula
    created: str
    modified: str

    @property
    def active(self) -> bool:
        """Only active rules are enforced."""
        return bool(self.metadata.get("active", True))


def _bad(message: str, code: str = "FIELD_INTEGRITY_EXCEPTION") -> ApiError:
    return ApiError(400, code, message, [])


def _field_from_metadata(name: str, md: dict[str, Any], previous: Field | None) -> Field:
    kind = md.get("type")
    if kind not in _TYPES:
        raise _bad(
            f"Invalid field type: {kind}. Supported here: {', '.join(_TYPES)}", "INVALID_TYPE"
        )
    ftype, default_length = _TYPES[kind]
    f = Field(
        name,
        ftype,
        label=str(md.get("label") or name.removesuffix("__c")),
        length=int(md.get("length") or default_length),
        custom=True,
        external_id=bool(md.get("externalId", False)),
        unique=bool(md.get("unique", False)),
        required=bool(md.get("required", False)),
        precision=int(md.get("precision") or 0),
        scale=int(md.get("scale") or 0),
    )
    if ftype == "boolean":
        f.nillable = False
        f.default = str(md.get("defaultValue", "false")).lower() == "true"
    if f.required:
        f.nillable = False
    if ftype in ("picklist", "multipicklist"):
        value_set = md.get("valueSet") or {}
        definition = value_set.get("valueSetDefinition") or {}
        entries = definition.get("value") or []
        if not isinstance(entries, list) or not entries:
            raise _bad("Picklist fields need valueSet.valueSetDefinition.value entries")
        f.restricted = bool(value_set.get("restricted", False))
        given: list[PicklistValue] = []
        for e in entries:
            value = str(e.get("fullName") or e.get("valueName") or "")
            if not value:
                raise _bad("Every picklist value needs a fullName")
            given.append(
                PicklistValue(
                    value,
                    str(e.get("label") or value),
                    bool(e.get("isActive", True)),
                    bool(e.get("default")),
                )
            )
        names = {p.value for p in given}
        # A value left out of an update is not deleted: records keep it, it just turns inactive.
        earlier = (previous.picklist or []) if previous is not None else []
        kept = [
            PicklistValue(p.value, p.label, False, False) for p in earlier if p.value not in names
        ]
        f.picklist = given + kept
    return f


def _metadata_of(f: Field, base: dict[str, Any]) -> dict[str, Any]:
    md = copy.deepcopy(base)
    if f.picklist is not None:
        value_set = md.setdefault("valueSet", {})
        value_set["restricted"] = f.restricted
        definition = value_set.setdefault("valueSetDefinition", {})
        definition.setdefault("sorted", False)
        definition["value"] = [
            {
                "fullName": p.value,
                "label": p.label,
                "default": p.default,
                "isActive": p.active,
                "color": None,
                "description": None,
            }
            for p in f.picklist
        ]
    return md


def _tooling_types() -> dict[str, SObjectType]:
    def s(name: str, t: str = "string") -> Field:
        return Field(name, t, length=255, createable=False, updateable=False)

    common = [
        s("Id", "id"),
        s("FullName"),
        s("Metadata", "complexvalue"),
        s("NamespacePrefix"),
        s("ManageableState", "picklist"),
        s("CreatedDate", "datetime"),
        s("LastModifiedDate", "datetime"),
        s("EntityDefinitionId"),
    ]
    cf = SObjectType(
        "CustomField",
        "00N",
        fields={
            f.name: f
            for f in [
                *common,
                s("DeveloperName"),
                s("TableEnumOrId"),
                s("Description", "textarea"),
                s("InlineHelpText"),
                Field("Length", "int", createable=False, updateable=False),
            ]
        },
    )
    vr = SObjectType(
        "ValidationRule",
        "03d",
        fields={
            f.name: f
            for f in [
                *common,
                s("ValidationName"),
                Field("Active", "boolean", createable=False, updateable=False),
                s("Description", "textarea"),
                s("ErrorDisplayField"),
                s("ErrorMessage"),
            ]
        },
    )
    return {"customfield": cf, "validationrule": vr}


class ToolingCatalog:
    """Custom fields and validation rules of one org; also a record source for tooling SOQL."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.fields: dict[str, CustomFieldDef] = {}
        self.rules: dict[str, RuleDef] = {}
        self._types = _tooling_types()

    # ----------------------------------------------------------------- custom fields
    def _split_full_name(self, full_name: Any, suffix: str) -> tuple[SObjectType, str]:
        if not isinstance(full_name, str) or "." not in full_name:
            raise _bad("FullName must look like 'Object.Name" + suffix + "'", "INVALID_FIELD")
        obj_name, _, name = full_name.partition(".")
        obj = self.org.sobject(obj_name)
        if obj is None:
            raise _bad(f"Cannot find entity {obj_name}", "INVALID_CROSS_REFERENCE_KEY")
        if suffix and not name.endswith(suffix):
            raise _bad(f"Custom field names must end with {suffix}: {name}", "INVALID_FIELD")
        return obj, name

    def create_field(self, body: dict[str, Any]) -> str:
        """``POST /tooling/sobjects/CustomField``: add the field to the object."""
        obj, name = self._split_full_name(body.get("FullName"), "__c")
        md = body.get("Metadata")
        if not isinstance(md, dict):
            raise _bad("Metadata is required", "REQUIRED_FIELD_MISSING")
        if obj.field(name) is not None:
            raise _bad(
                f"There is already a field named {name.removesuffix('__c')} on {obj.name}.",
                "DUPLICATE_DEVELOPER_NAME",
            )
        f = _field_from_metadata(name, md, None)
        now = self.org.now_stamp()
        fid = self.org.new_id("CustomField")
        self.fields[fid] = CustomFieldDef(
            fid, obj.name, name.removesuffix("__c"), copy.deepcopy(md), now, now
        )
        obj.add_field(f)
        if f.external_id:
            self.org.stores[obj.name].reindex()
        return fid

    def update_field(self, fid: str, body: dict[str, Any]) -> None:
        """``PATCH /tooling/sobjects/CustomField/{id}``: new metadata (e.g. values on/off)."""
        d = self.field_def(fid)
        md = body.get("Metadata")
        if not isinstance(md, dict):
            raise _bad("Metadata is required", "REQUIRED_FIELD_MISSING")
        obj = self.org.schema[d.object]
        old = obj.field(d.api_name)
        merged = {**d.metadata, **md}
        f = _field_from_metadata(d.api_name, merged, old)
        if old is not None and old.type != f.type:
            raise _bad(f"Changing the type of {d.full_name} is not supported by the emulator")
        obj.add_field(f)
        d.metadata = merged
        d.modified = self.org.now_stamp()
        self.org.stores[obj.name].reindex()

    def delete_field(self, fid: str) -> None:
        """``DELETE /tooling/sobjects/CustomField/{id}``."""
        d = self.field_def(fid)
        self.org.schema[d.object].remove_field(d.api_name)
        del self.fields[fid]
        self.org.stores[d.object].reindex()

    def field_def(self, fid: str) -> CustomFieldDef:
        for key, d in self.fields.items():
            if key == fid or key[:15] == fid:
                return d
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def field_record(self, d: CustomFieldDef) -> Record:
        """The CustomField tooling record (what GET and tooling SOQL return)."""
        f = self.org.schema[d.object].field(d.api_name)
        md = _metadata_of(f, d.metadata) if f is not None else d.metadata
        return {
            "Id": d.id,
            "DeveloperName": d.developer_name,
            "FullName": d.full_name,
            "TableEnumOrId": d.object,
            "EntityDefinitionId": d.object,
            "NamespacePrefix": None,
            "ManageableState": "unmanaged",
            "Metadata": md,
            "Description": md.get("description"),
            "InlineHelpText": md.get("inlineHelpText"),
            "Length": f.length if f is not None else None,
            "CreatedDate": d.created,
            "LastModifiedDate": d.modified,
        }

    # ----------------------------------------------------------------- validation rules
    def _compile(self, obj: SObjectType, md: dict[str, Any]) -> Formula:
        text = md.get("errorConditionFormula")
        if not isinstance(text, str) or not text.strip():
            raise _bad("errorConditionFormula is required", "REQUIRED_FIELD_MISSING")
        if not md.get("errorMessage"):
            raise _bad("errorMessage is required", "REQUIRED_FIELD_MISSING")
        display = md.get("errorDisplayField")
        if display and obj.field(display) is None:
            raise _bad(f"errorDisplayField {display} does not exist on {obj.name}")
        try:
            return compile_formula(text, obj)
        except FormulaError as exc:
            raise _bad(f"Error in formula: {exc}") from None

    def create_rule(self, body: dict[str, Any]) -> str:
        """``POST /tooling/sobjects/ValidationRule``."""
        obj, name = self._split_full_name(body.get("FullName"), "")
        md = body.get("Metadata")
        if not isinstance(md, dict):
            raise _bad("Metadata is required", "REQUIRED_FIELD_MISSING")
        if any(
            r.object == obj.name and r.name.lower() == name.lower() for r in self.rules.values()
        ):
            raise _bad(
                f"Rule Name: Validation rule {name} already exists on {obj.name}",
                "DUPLICATE_DEVELOPER_NAME",
            )
        formula = self._compile(obj, md)
        now = self.org.now_stamp()
        rid = self.org.new_id("ValidationRule")
        self.rules[rid] = RuleDef(rid, obj.name, name, copy.deepcopy(md), formula, now, now)
        return rid

    def update_rule(self, rid: str, body: dict[str, Any]) -> None:
        """``PATCH /tooling/sobjects/ValidationRule/{id}`` (e.g. ``{"Metadata":{"active":false}}``)."""
        rule = self.rule(rid)
        md = body.get("Metadata")
        if not isinstance(md, dict):
            raise _bad("Metadata is required", "REQUIRED_FIELD_MISSING")
        merged = {**rule.metadata, **md}
        rule.formula = self._compile(self.org.schema[rule.object], merged)
        rule.metadata = merged
        rule.modified = self.org.now_stamp()

    def delete_rule(self, rid: str) -> None:
        """``DELETE /tooling/sobjects/ValidationRule/{id}``."""
        del self.rules[self.rule(rid).id]

    def rule(self, rid: str) -> RuleDef:
        for key, rule in self.rules.items():
            if key == rid or key[:15] == rid:
                return rule
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def rule_record(self, r: RuleDef) -> Record:
        """The ValidationRule tooling record."""
        md = r.metadata
        return {
            "Id": r.id,
            "ValidationName": r.name,
            "FullName": f"{r.object}.{r.name}",
            "EntityDefinitionId": r.object,
            "Active": r.active,
            "Description": md.get("description"),
            "ErrorDisplayField": md.get("errorDisplayField"),
            "ErrorMessage": md.get("errorMessage"),
            "NamespacePrefix": None,
            "ManageableState": "unmanaged",
            "Metadata": copy.deepcopy(md),
            "CreatedDate": r.created,
            "LastModifiedDate": r.modified,
        }

    def validate(self, object_name: str, new: Record, old: Record | None) -> None:
        """Raise FIELD_CUSTOM_VALIDATION_EXCEPTION for the first active rule that fires."""
        for rule in self.rules.values():
            if rule.object != object_name or not rule.active:
                continue
            try:
                fired = rule.formula(new, old)
            except Exception:  # a formula runtime error is "rule does not fire" here
                fired = False
            if fired:
                display = rule.metadata.get("errorDisplayField")
                raise RecordError(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    str(rule.metadata.get("errorMessage")),
                    [display] if display else [],
                )

    # ----------------------------------------------------------------- RecordSource
    def sobject(self, name: str) -> SObjectType | None:
        """Tooling objects the emulator can query."""
        return self._types.get(name.lower())

    def get(self, record_id: str | None) -> Record | None:
        """A tooling record by id."""
        if not record_id:
            return None
        if record_id in self.fields:
            return self.field_record(self.fields[record_id])
        if record_id in self.rules:
            return self.rule_record(self.rules[record_id])
        return None

    def records_of(self, name: str) -> dict[str, Record]:
        """All tooling records of one object, built fresh (there are only a handful)."""
        if name == "CustomField":
            return {i: self.field_record(d) for i, d in self.fields.items()}
        if name == "ValidationRule":
            return {i: self.rule_record(r) for i, r in self.rules.items()}
        return {}

    def email_index(self, name: str) -> dict[str, list[str]] | None:
        """Tooling objects have no email index."""
        return None

    def modified_since(self, name: str, stamp: str, *, inclusive: bool) -> list[Record] | None:
        """Tooling objects have no modification log (there are only a handful)."""
        return None

    # ----------------------------------------------------------------- snapshot
    def dump(self) -> dict[str, Any]:
        """JSON-able definitions (records live in the data snapshot)."""
        return {
            "fields": [
                {
                    "id": d.id,
                    "FullName": d.full_name,
                    "Metadata": d.metadata,
                    "created": d.created,
                    "modified": d.modified,
                    "inactive": [
                        p.value
                        for p in (
                            self.org.schema[d.object].field(d.api_name) or Field("x", "string")
                        ).picklist
                        or []
                        if not p.active
                    ],
                }
                for d in self.fields.values()
            ],
            "rules": [
                {
                    "id": r.id,
                    "FullName": f"{r.object}.{r.name}",
                    "Metadata": r.metadata,
                    "created": r.created,
                    "modified": r.modified,
                }
                for r in self.rules.values()
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Recreate definitions from :meth:`dump` output (ids preserved)."""
        for item in data.get("fields", []):
            obj, name = self._split_full_name(item["FullName"], "__c")
            f = _field_from_metadata(name, item["Metadata"], None)
            for p in f.picklist or []:
                if p.value in item.get("inactive", []):
                    p.active = False
            obj.add_field(f)
            self.fields[item["id"]] = CustomFieldDef(
                item["id"],
                obj.name,
                name.removesuffix("__c"),
                item["Metadata"],
                item["created"],
                item["modified"],
            )
        for item in data.get("rules", []):
            obj, name = self._split_full_name(item["FullName"], "")
            self.rules[item["id"]] = RuleDef(
                item["id"],
                obj.name,
                name,
                item["Metadata"],
                self._compile(obj, item["Metadata"]),
                item["created"],
                item["modified"],
            )
