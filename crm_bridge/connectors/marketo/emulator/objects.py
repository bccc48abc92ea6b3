"""Companies, opportunities and opportunity roles: Marketo's dedupe-keyed "CRM objects".

Why one generic store: the three share one protocol -- ``describe`` names the ``idField`` and the
``dedupeFields`` (a compound key for roles), writes are ``{action, dedupeBy, input}`` answered
per record with ``seq`` (the input index), and reads are ``filterType``/``filterValues`` over the
``searchableFields``.  They differ only in their fields and key, which :class:`ObjectType` holds.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/opportunities,
.../opportunity-roles, .../companies
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.marketo.emulator.errors import MarketoError, reason
from crm_bridge.connectors.marketo.emulator.timefmt import iso

__all__ = ["OBJECT_TYPES", "ObjectRecord", "ObjectStore", "ObjectStores", "ObjectType"]

_ACTIONS = ("createOnly", "updateOnly", "createOrUpdate")


@dataclass(frozen=True)
class ObjectType:
    """The shape of one object family."""

    api_name: str
    display_name: str
    plural_name: str
    id_field: str
    """``marketoGUID`` (string) or ``id`` (integer)."""
    dedupe_fields: tuple[str, ...]
    searchable: tuple[tuple[str, ...], ...]
    fields: tuple[tuple[str, str, str], ...]
    """(name, displayName, dataType) of the writable fields."""
    required: tuple[str, ...] = ()

    def describe(self, created: float) -> dict[str, Any]:
        """The ``describe.json`` item (an ``ObjectMetaData``)."""
        key_type = "string" if self.id_field == "marketoGUID" else "integer"
        all_fields = [
            {
                "name": self.id_field,
                "displayName": self.id_field,
                "dataType": key_type,
                "updateable": False,
                "crmManaged": False,
            },
            *(
                {
                    "name": n,
                    "displayName": d,
                    "dataType": t,
                    "updateable": True,
                    "crmManaged": False,
                    **({"length": 255} if t == "string" else {}),
                }
                for n, d, t in self.fields
            ),
            {
                "name": "createdAt",
                "displayName": "Created At",
                "dataType": "datetime",
                "updateable": False,
                "crmManaged": False,
            },
            {
                "name": "updatedAt",
                "displayName": "Updated At",
                "dataType": "datetime",
                "updateable": False,
                "crmManaged": False,
            },
        ]
        return {
            "apiName": self.api_name,
            "displayName": self.display_name,
            "pluralName": self.plural_name,
            "description": f"{self.display_name} objects",
            "createdAt": iso(created),
            "updatedAt": iso(created),
            "idField": self.id_field,
            "dedupeFields": list(self.dedupe_fields),
            "searchableFields": [list(s) for s in self.searchable],
            "relationships": [],
            "fields": all_fields,
            "status": "approved",
            "version": "approved",
        }

    def field_names(self) -> set[str]:
        """The writable field names."""
        return {n for n, _, _ in self.fields}


OBJECT_TYPES: dict[str, ObjectType] = {
    t.api_name: t
    for t in (
        ObjectType(
            "company",
            "Company",
            "Companies",
            "id",
            ("externalCompanyId",),
            (("externalCompanyId",), ("id",), ("company",)),
            (
                ("externalCompanyId", "External Company Id", "string"),
                ("company", "Company Name", "string"),
                ("website", "Website", "url"),
                ("industry", "Industry", "string"),
                ("numberOfEmployees", "Num Employees", "integer"),
                ("annualRevenue", "Annual Revenue", "currency"),
                ("billingCountry", "Billing Country", "string"),
            ),
        ),
        ObjectType(
            "opportunity",
            "Opportunity",
            "Opportunities",
            "marketoGUID",
            ("externalOpportunityId",),
            (
                ("externalOpportunityId",),
                ("marketoGUID",),
                ("externalCompanyId",),
                ("externalSalesPersonId",),
            ),
            (
                ("externalOpportunityId", "External Opportunity Id", "string"),
                ("name", "Name", "string"),
                ("description", "Description", "string"),
                ("amount", "Amount", "currency"),
                ("closeDate", "Close Date", "date"),
                ("stage", "Stage", "string"),
                ("isClosed", "Is Closed", "boolean"),
                ("isWon", "Is Won", "boolean"),
                ("type", "Type", "string"),
                ("externalCompanyId", "External Company Id", "string"),
                ("externalSalesPersonId", "External Sales Person Id", "string"),
            ),
            required=("name",),
        ),
        ObjectType(
            "opportunityRole",
            "Opportunity Role",
            "Opportunity Roles",
            "marketoGUID",
            ("externalOpportunityId", "leadId", "role"),
            (
                ("marketoGUID",),
                ("leadId",),
                ("externalOpportunityId",),
                ("externalOpportunityId", "leadId", "role"),
            ),
            (
                ("externalOpportunityId", "External Opportunity Id", "string"),
                ("leadId", "Lead Id", "integer"),
                ("role", "Role", "string"),
                ("isPrimary", "Is Primary", "boolean"),
            ),
        ),
    )
}


@dataclass
class ObjectRecord:
    """One stored object."""

    key: str | int
    values: dict[str, Any]
    created: float
    updated: float


@dataclass
class ObjectStore:
    """The records of one :class:`ObjectType`."""

    otype: ObjectType
    records: dict[str | int, ObjectRecord] = field(default_factory=dict)
    next_id: int = 1

    def _dedupe_key(self, values: dict[str, Any]) -> tuple[Any, ...] | None:
        key = tuple(values.get(f) for f in self.otype.dedupe_fields)
        return None if any(v is None or v == "" for v in key) else key

    def _find_dedupe(self, key: tuple[Any, ...]) -> ObjectRecord | None:
        for record in self.records.values():
            if self._dedupe_key(record.values) == key:
                return record
        return None

    def _new_key(self) -> str | int:
        if self.otype.id_field == "marketoGUID":
            return str(uuid.uuid4())
        key = self.next_id
        self.next_id += 1
        return key

    def _locate(self, item: dict[str, Any], dedupe_by: str) -> ObjectRecord | None:
        if dedupe_by == "idField":
            raw = item.get(self.otype.id_field)
            key: str | int | None = raw
            if self.otype.id_field == "id" and raw is not None:
                try:
                    key = int(raw)
                except (TypeError, ValueError):
                    return None
            return self.records.get(key) if key is not None else None
        dedupe = self._dedupe_key(item)
        return self._find_dedupe(dedupe) if dedupe else None

    def result_item(self, seq: int, record: ObjectRecord | None, status: str) -> dict[str, Any]:
        """A per-record answer ``{seq, <idField>, status}``."""
        item: dict[str, Any] = {"seq": seq}
        if record is not None:
            item[self.otype.id_field] = record.key
        item["status"] = status
        return item

    def sync(
        self, action: str, dedupe_by: str, inputs: list[Any], now: float
    ) -> list[dict[str, Any]]:
        """Upsert ``inputs``; one answer per input, in input order."""
        if action not in _ACTIONS:
            raise MarketoError(1003, f"Invalid action '{action}'")
        if dedupe_by not in ("dedupeFields", "idField"):
            raise MarketoError(1003, f"Invalid dedupeBy '{dedupe_by}'")
        if dedupe_by == "idField" and action != "updateOnly":
            raise MarketoError(1003, "dedupeBy 'idField' is only allowed with action updateOnly")
        known = self.otype.field_names()
        results: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for seq, item in enumerate(inputs):
            if not isinstance(item, dict):
                results.append(self._skip(seq, 1003, "Invalid input record"))
                continue
            key = self._dedupe_key(item) if dedupe_by == "dedupeFields" else None
            if key is not None:
                if key in seen:
                    results.append(self._skip(seq, 1036, "Duplicate object found in input"))
                    continue
                seen.add(key)
            unknown = sorted(set(item) - known - {self.otype.id_field})
            if unknown:
                results.append(self._skip(seq, 1006, f"Field '{unknown[0]}' not found"))
                continue
            values = {k: v for k, v in item.items() if k != self.otype.id_field}
            if dedupe_by == "dedupeFields" and self._dedupe_key(values) is None:
                missing = next(f for f in self.otype.dedupe_fields if values.get(f) in (None, ""))
                results.append(
                    self._skip(seq, 1003, f"Value for dedupe field '{missing}' is required")
                )
                continue
            existing = self._locate(item, dedupe_by)
            if existing is not None:
                if action == "createOnly":
                    results.append(self._skip(seq, 1017, "Object already exists"))
                    continue
                existing.values.update(values)
                existing.updated = now
                results.append(self.result_item(seq, existing, "updated"))
                continue
            if action == "updateOnly":
                results.append(self._skip(seq, 1013, "Object not found"))
                continue
            missing_required = [r for r in self.otype.required if values.get(r) in (None, "")]
            if missing_required:
                results.append(
                    self._skip(seq, 1003, f"Value for field '{missing_required[0]}' is required")
                )
                continue
            record = ObjectRecord(self._new_key(), values, now, now)
            self.records[record.key] = record
            results.append(self.result_item(seq, record, "created"))
        return results

    def delete(self, dedupe_by: str, inputs: list[Any]) -> list[dict[str, Any]]:
        """Delete by id field or dedupe fields; ``deleted`` or skipped 1013."""
        if dedupe_by not in ("dedupeFields", "idField"):
            raise MarketoError(1003, f"Invalid deleteBy '{dedupe_by}'")
        results: list[dict[str, Any]] = []
        for seq, item in enumerate(inputs):
            record = self._locate(item, dedupe_by) if isinstance(item, dict) else None
            if record is None:
                results.append(self._skip(seq, 1013, "Record not found"))
                continue
            del self.records[record.key]
            results.append(self.result_item(seq, record, "deleted"))
        return results

    def query(
        self, filter_type: str, values: list[str], fields: list[str] | None
    ) -> list[dict[str, Any]]:
        """Records whose ``filter_type`` is one of ``values``, rendered with ``fields``."""
        names = filter_type.split(",")
        if tuple(names) not in self.otype.searchable:
            raise MarketoError(1003, f"Invalid filterType '{filter_type}'")
        known = self.otype.field_names() | {self.otype.id_field, "createdAt", "updatedAt"}
        wanted = fields or [self.otype.id_field, *self.otype.dedupe_fields]
        bad = [f for f in wanted if f not in known]
        if bad:
            raise MarketoError(1006, f"Field '{bad[0]}' not found")
        matched = [r for r in self.records.values() if str(self._value(r, names[0])) in values]
        return [self.render(seq, r, wanted) for seq, r in enumerate(matched)]

    def query_keys(
        self, keys: list[dict[str, Any]], fields: list[str] | None
    ) -> list[dict[str, Any]]:
        """Records matching compound ``keys`` (the ``_method=GET`` JSON ``input`` form)."""
        wanted = fields or [self.otype.id_field, *self.otype.dedupe_fields]
        out: list[dict[str, Any]] = []
        for key in keys:
            for record in self.records.values():
                if all(str(self._value(record, k)) == str(v) for k, v in key.items()):
                    out.append(self.render(len(out), record, wanted))
        return out

    def _value(self, record: ObjectRecord, name: str) -> Any:
        if name == self.otype.id_field:
            return record.key
        return record.values.get(name)

    def render(self, seq: int, record: ObjectRecord, fields: list[str]) -> dict[str, Any]:
        """A read item: ``seq``, the id field, then the requested fields."""
        item: dict[str, Any] = {"seq": seq, self.otype.id_field: record.key}
        for name in fields:
            if name == "createdAt":
                item[name] = iso(record.created)
            elif name == "updatedAt":
                item[name] = iso(record.updated)
            elif name != self.otype.id_field:
                item[name] = record.values.get(name)
        return item

    def _skip(self, seq: int, code: int, message: str) -> dict[str, Any]:
        return {"seq": seq, "status": "skipped", "reasons": [reason(code, message)]}


class ObjectStores:
    """One store per object type."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Empty every store."""
        self.stores = {name: ObjectStore(otype) for name, otype in OBJECT_TYPES.items()}

    def __getitem__(self, name: str) -> ObjectStore:
        return self.stores[name]

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            name: {
                "next_id": store.next_id,
                "records": [
                    [r.key, r.values, r.created, r.updated] for r in store.records.values()
                ],
            }
            for name, store in self.stores.items()
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore :meth:`snapshot` data."""
        self.reset()
        for name, raw in data.items():
            store = self.stores[name]
            store.next_id = int(raw["next_id"])
            for key, values, created, updated in raw["records"]:
                store.records[key] = ObjectRecord(key, dict(values), created, updated)
