"""Create, update, delete, upsert, merge and lead conversion -- the rules every write path shares.

Why one module: single-record REST, sObject Collections, Composite and Bulk 2.0 must all refuse
the same bad writes with the same error codes, stamp the same audit fields, and honour the same
validation and duplicate rules.  Each entry point only differs in how it reports a
:class:`RecordError`.
Docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crm_bridge.connectors.salesforce.emulator.convert import (
    LeadConvert,
    convert_lead,
    converted_lead_error,
)
from crm_bridge.connectors.salesforce.emulator.errors import RecordError
from crm_bridge.connectors.salesforce.emulator.ids import looks_like_id, normalize_id
from crm_bridge.connectors.salesforce.emulator.schema import OPPORTUNITY_STAGES, Field, SObjectType
from crm_bridge.connectors.salesforce.emulator.state import ObjectStore, Org, Record
from crm_bridge.connectors.salesforce.emulator.values import coerce

__all__ = ["DUPLICATE_MESSAGE", "Writer"]

DUPLICATE_MESSAGE = (
    "You're creating a duplicate record. We recommend you use an existing record instead."
)
_FLS = (
    "Unable to create/update fields: {names}. Please check the security settings of this field "
    "and verify that it is read/write for your profile or permission set."
)
_IGNORED_KEYS = frozenset({"attributes"})


class Writer:
    """Writes on behalf of one user (whose id lands in CreatedById / LastModifiedById)."""

    def __init__(self, org: Org, user_id: str, *, allow_duplicates: bool = False) -> None:
        self.org = org
        self.user_id = user_id
        self.allow_duplicates = allow_duplicates
        self._now: str | None = None

    @contextmanager
    def one_transaction(self) -> Iterator[str]:
        """Every write in the block gets the same stamp, as one Salesforce transaction does.

        Why: a merge or a lead conversion touches several records in one server transaction, so
        a real org gives them all one ``SystemModstamp``; a change-stream reader ordering by
        ``SystemModstamp, Id`` must see them together, whatever the wall clock did meanwhile.
        """
        outer = self._now
        self._now = outer or self.org.now_stamp()
        try:
            yield self._now
        finally:
            self._now = outer

    # ------------------------------------------------------------------ helpers
    def _type(self, name: str) -> tuple[SObjectType, ObjectStore]:
        t = self.org.sobject(name)
        if t is None:
            raise RecordError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return t, self.org.stores[t.name]

    def _fields(
        self,
        t: SObjectType,
        data: dict[str, Any],
        *,
        creating: bool,
        from_text: bool,
        record_id: str | None = None,
    ) -> dict[str, Any]:
        """Check names and write permissions, and coerce values, of an incoming body."""
        out: dict[str, Any] = {}
        locked: list[str] = []
        for key, value in data.items():
            if key in _IGNORED_KEYS:
                continue
            f = t.field(key)
            if f is None:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {t.name}", [key]
                )
            if f.name == "Id":
                if creating or (value is not None and normalize_id(str(value)) != record_id):
                    locked.append(f.name)
                continue
            if not (f.createable if creating else f.updateable):
                locked.append(f.name)
                continue
            out[f.name] = coerce(f, value, from_text=from_text)
        if locked:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE", _FLS.format(names=", ".join(locked)), locked
            )
        return out

    def _check_references(self, t: SObjectType, changes: dict[str, Any]) -> None:
        references = t.rules.references
        for name, value in changes.items():
            if value is None or name not in references:
                continue
            f = t.fields[name]
            found = self.org.find(value)
            if found is None:
                raise RecordError(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name]
                )
            store, target = found
            if f.reference_to and store.type.name not in f.reference_to:
                raise RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"{f.label}: id value of incorrect type: {value}",
                    [name],
                )
            if target.get("IsDeleted"):
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [name])
            if name == "OwnerId" and not target.get("IsActive", True):
                raise RecordError(
                    "INACTIVE_OWNER_OR_USER", "operation performed with inactive user", [name]
                )

    def _check_picklists(self, t: SObjectType, changes: dict[str, Any]) -> None:
        restricted = t.rules.restricted
        for name, value in changes.items():
            if value is None or name not in restricted:
                continue
            f = t.fields[name]
            entry = f.picklist_value(value)
            if entry is None or not entry.active:
                raise RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {value}",
                    [f.name],
                )

    @staticmethod
    def _check_required(t: SObjectType, rec: Record) -> None:
        missing = [name for name in t.rules.required if rec.get(name) is None]
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )

    def _check_unique(
        self, t: SObjectType, store: ObjectStore, rec: Record, changes: dict[str, Any]
    ) -> None:
        unique = t.rules.unique
        for name in changes:
            value = rec.get(name)
            if name not in unique or value is None:
                continue
            f: Field = t.fields[name]
            key = store.ext_key(value)
            if f.external_id:
                clash = [i for i in store.by_ext.get(name, {}).get(key, ()) if i != rec["Id"]]
            else:
                clash = [
                    r["Id"]
                    for r in store.records.values()
                    if r["Id"] != rec["Id"] and store.ext_key(r.get(name)) == key
                ]
            if clash:
                code = "DUPLICATE_USERNAME" if name == "Username" else "DUPLICATE_VALUE"
                raise RecordError(
                    code,
                    f"duplicate value found: {name} duplicates value on record with id: {clash[0]}",
                    [name],
                )

    def _check_duplicates(self, t: SObjectType, store: ObjectStore, rec: Record) -> None:
        if self.allow_duplicates or not self.org.duplicate_rules:
            return
        if t.name not in ("Lead", "Contact") or not rec.get("Email"):
            return
        matches = [
            i
            for i in store.by_email.get(rec["Email"].lower(), ())
            if i != rec["Id"] and not store.records[i].get("IsDeleted")
        ]
        if not matches:
            return
        version = self.org.settings.api_version
        result = {
            "allowSave": False,
            "duplicateRule": f"Standard_{t.name}_Duplicate_Rule",
            "duplicateRuleEntityType": t.name,
            "errorMessage": DUPLICATE_MESSAGE,
            "matchResults": [
                {
                    "entityType": t.name,
                    "errors": [],
                    "matchEngine": "FuzzyMatchEngine",
                    "matchRecords": [
                        {
                            "additionalInformation": [],
                            "fieldDiffs": [],
                            "matchConfidence": 100.0,
                            "record": {
                                "attributes": {
                                    "type": t.name,
                                    "url": f"/services/data/v{version}/sobjects/{t.name}/{i}",
                                },
                                "Id": i,
                            },
                        }
                        for i in matches
                    ],
                    "rule": f"Standard_{t.name}_Match_Rule_v1_1",
                    "size": len(matches),
                    "success": True,
                }
            ],
        }
        raise RecordError("DUPLICATES_DETECTED", DUPLICATE_MESSAGE, [], {"duplicateResult": result})

    @staticmethod
    def _derive(t: SObjectType, rec: Record, changes: dict[str, Any]) -> None:
        """Fields a real org computes on save (stage -> probability, closed flags)."""
        if t.name == "Opportunity" and ("StageName" in changes or "IsClosed" not in rec):
            stage = rec.get("StageName")
            prob, forecast, closed, won = OPPORTUNITY_STAGES.get(
                stage or "", (0, "Pipeline", False, False)
            )
            if "Probability" not in changes:
                rec["Probability"] = float(prob)
            rec["ForecastCategoryName"] = forecast
            rec["IsClosed"] = closed
            rec["IsWon"] = won
        elif t.name == "Task":
            rec["IsClosed"] = rec.get("Status") == "Completed"

    def _stamp(self, rec: Record, *, created: bool) -> None:
        now = self._now or self.org.now_stamp()
        if created:
            rec["CreatedDate"] = now
            rec["CreatedById"] = self.user_id
        rec["LastModifiedDate"] = now
        rec["LastModifiedById"] = self.user_id
        rec["SystemModstamp"] = now

    def live(self, record_id: Any, t: SObjectType | None = None) -> tuple[ObjectStore, Record]:
        """The store and record of a live (not deleted) record of type ``t``, or a RecordError."""
        if not looks_like_id(record_id):
            raise RecordError("MALFORMED_ID", f"malformed id {record_id}", [])
        found = self.org.find(record_id)
        if found is None or (t is not None and found[0].type is not t):
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if found[1].get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        return found

    def _writable(self, record_id: Any, t: SObjectType | None = None) -> tuple[ObjectStore, Record]:
        """:meth:`live`, refusing a converted Lead (read-only for every write path)."""
        store, rec = self.live(record_id, t)
        if store.type.name == "Lead" and rec.get("IsConverted"):
            raise converted_lead_error()
        return store, rec

    def save_system(self, store: ObjectStore, rec: Record) -> None:
        """Store a record the org itself changed (read-only fields too), stamped as this user."""
        self._stamp(rec, created=False)
        self.org.put(store, rec)

    # ------------------------------------------------------------------ operations
    def create(self, object_name: str, data: dict[str, Any], *, from_text: bool = False) -> str:
        """Insert a record and return its id."""
        t, store = self._type(object_name)
        changes = self._fields(t, data, creating=True, from_text=from_text)
        rec: Record = dict(t.rules.defaults)
        rec.update((k, v) for k, v in changes.items() if v is not None)
        if "OwnerId" in t.fields and rec.get("OwnerId") is None:
            rec["OwnerId"] = self.user_id
        self._check_required(t, rec)
        self._check_references(t, changes)
        self._check_picklists(t, changes)
        rid = self.org.new_id(t.name)
        rec["Id"] = rid
        rec["IsDeleted"] = False
        self._derive(t, rec, changes)
        self._check_unique(t, store, rec, changes)
        self.org.tooling.validate(t.name, rec, None)
        self._check_duplicates(t, store, rec)
        self._stamp(rec, created=True)
        self.org.put(store, rec)
        return rid

    def update(
        self,
        object_name: str | None,
        record_id: Any,
        data: dict[str, Any],
        *,
        from_text: bool = False,
    ) -> str:
        """Change fields of a live record; returns the (18-character) id."""
        t = self._type(object_name)[0] if object_name else None
        store, old = self._writable(record_id, t)
        t = store.type
        changes = self._fields(t, data, creating=False, from_text=from_text, record_id=old["Id"])
        rec = dict(old)
        for k, v in changes.items():
            if v is None:
                rec.pop(k, None)
            else:
                rec[k] = v
        self._check_required(t, rec)
        self._check_references(t, changes)
        self._check_picklists(t, changes)
        self._derive(t, rec, changes)
        self._check_unique(t, store, rec, changes)
        self.org.tooling.validate(t.name, rec, old)
        if (
            "Email" in changes
            and (changes["Email"] or "").lower() != (old.get("Email") or "").lower()
        ):
            self._check_duplicates(t, store, rec)
        self._stamp(rec, created=False)
        self.org.put(store, rec)
        return str(rec["Id"])

    def delete(self, object_name: str | None, record_id: Any) -> str:
        """Soft-delete: ``IsDeleted`` becomes true (visible to queryAll and getDeleted)."""
        t = self._type(object_name)[0] if object_name else None
        store, old = self._writable(record_id, t)
        if not store.type.deletable:
            raise RecordError("DELETE_FAILED", f"{store.type.name} records cannot be deleted", [])
        self._soft_delete(store, old)
        if store.type.name in ("Opportunity", "Contact"):
            key = "OpportunityId" if store.type.name == "Opportunity" else "ContactId"
            roles = self.org.stores["OpportunityContactRole"]
            for role in list(roles.records.values()):
                if role.get(key) == old["Id"] and not role.get("IsDeleted"):
                    self._soft_delete(roles, role)
        return str(old["Id"])

    def _soft_delete(self, store: ObjectStore, old: Record, master: str | None = None) -> None:
        rec = dict(old)
        rec["IsDeleted"] = True
        if master is not None:
            rec["MasterRecordId"] = master
        self._stamp(rec, created=False)
        self.org.put(store, rec)

    def upsert(
        self,
        object_name: str,
        ext_field: str,
        ext_value: Any,
        data: dict[str, Any],
        *,
        from_text: bool = False,
    ) -> tuple[str, bool]:
        """Create or update by external id; ``(id, created)``.

        Several matches raise ``RecordError("MULTIPLE_RECORDS", ...)`` with the ids in
        ``extra["ids"]`` (REST answers that with HTTP 300).
        """
        t, store = self._type(object_name)
        f = t.field(ext_field)
        if f is None or not (f.external_id or f.name == "Id"):
            raise RecordError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {ext_field}",
                [],
            )
        body = {k: v for k, v in data.items() if t.field(k) is not f}
        if f.name == "Id":
            if ext_value in (None, ""):
                return self.create(t.name, body, from_text=from_text), True
            return self.update(t.name, ext_value, body, from_text=from_text), False
        value = coerce(f, ext_value, from_text=True)
        if value is None:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name]
            )
        matches = [
            i
            for i in store.by_ext.get(f.name, {}).get(store.ext_key(value), ())
            if not store.records[i].get("IsDeleted")
        ]
        if len(matches) > 1:
            raise RecordError(
                "MULTIPLE_RECORDS",
                f"{t.name}: more than one record found for external id field: {matches}",
                [],
                {"ids": matches},
            )
        if matches:
            return self.update(t.name, matches[0], body, from_text=from_text), False
        return self.create(t.name, {**body, f.name: value}, from_text=from_text), True

    def merge(self, object_name: str, master_id: str, loser_ids: list[str]) -> None:
        """What a merge in the UI does: losers deleted with MasterRecordId, master re-stamped."""
        t, _ = self._type(object_name)
        if "MasterRecordId" not in t.fields:
            raise RecordError("INVALID_TYPE", f"{t.name} records cannot be merged", [])
        with self.one_transaction():
            store, master = self._writable(master_id, t)
            for loser in loser_ids:
                lstore, lrec = self._writable(loser, t)
                if lrec["Id"] == master["Id"]:
                    raise RecordError("INVALID_ID_FIELD", "master record is also a loser", [])
                self._soft_delete(lstore, lrec, master["Id"])
            self.save_system(store, dict(master))

    def convert_lead(self, request: LeadConvert) -> dict[str, Any]:
        """``convertLead()``: see :mod:`.convert`; returns the LeadConvertResult."""
        return convert_lead(self, request)
