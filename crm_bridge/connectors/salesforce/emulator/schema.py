"""The emulated org's objects, fields and picklists.

Why a hand-written subset instead of a full describe dump: crm-bridge only touches these eight
objects, and every field here is one the emulator validates (required, restricted picklist,
type, length), so a test that writes a wrong value fails the way a real org would.  Custom fields
are added at run time by the Tooling API (``tooling.py``).
Doc (field types): https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from crm_bridge.connectors.salesforce.emulator.ids import KEY_PREFIXES

__all__ = [
    "LEAD_STATUSES",
    "OPPORTUNITY_STAGES",
    "STRING_TYPES",
    "Field",
    "PicklistValue",
    "SObjectType",
    "standard_objects",
]

STRING_TYPES = frozenset(
    {
        "string",
        "email",
        "phone",
        "url",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "id",
        "reference",
        "encryptedstring",
    }
)
"""Field types whose SOQL literals must be quoted strings."""


@dataclass
class PicklistValue:
    """One picklist entry; inactive values stay on old records but new writes are refused."""

    value: str
    label: str
    active: bool = True
    default: bool = False

    def describe(self) -> dict[str, Any]:
        """The ``picklistValues[]`` entry of a field describe."""
        return {
            "active": self.active,
            "defaultValue": self.default,
            "label": self.label,
            "validFor": None,
            "value": self.value,
        }


@dataclass
class Field:
    """A field and the rules the emulator enforces on it."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    required: bool = False
    external_id: bool = False
    unique: bool = False
    custom: bool = False
    picklist: list[PicklistValue] | None = None
    restricted: bool = False
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    default: Any = None
    precision: int = 0
    scale: int = 0

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name.removesuffix("__c").replace("_", " ")

    def picklist_value(self, value: str) -> PicklistValue | None:
        """The entry for ``value`` (exact match), if any."""
        for entry in self.picklist or ():
            if entry.value == value:
                return entry
        return None

    def describe(self) -> dict[str, Any]:
        """The ``fields[]`` entry of an sObject describe."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.default is not None or self.type == "boolean",
            "externalId": self.external_id,
            "idLookup": self.external_id or self.name == "Id" or self.type == "email",
            "unique": self.unique,
            "custom": self.custom,
            "calculated": not self.createable and not self.updateable and self.name != "Id",
            "filterable": True,
            "sortable": self.type not in ("textarea",),
            "picklistValues": [p.describe() for p in self.picklist or ()],
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
        }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

Derived = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class TypeRules:
    """What every write to one object checks, precomputed so a 200-record batch stays cheap."""

    defaults: dict[str, Any]
    required: tuple[str, ...]
    references: frozenset[str]
    restricted: frozenset[str]
    unique: frozenset[str]
    external_ids: tuple[str, ...]


@dataclass
class SObjectType:
    """An object: its fields (looked up case-insensitively, as Salesforce does) and key prefix."""

    name: str
    key_prefix: str
    label: str = ""
    custom: bool = False
    fields: dict[str, Field] = field(default_factory=dict)
    derived: dict[str, Derived] = field(default_factory=dict)
    """Read-only fields computed from others (``Name`` = first + last) instead of stored."""
    deletable: bool = True
    _lower: dict[str, Field] = field(default_factory=dict, repr=False)
    _relationships: dict[str, Field] = field(default_factory=dict, repr=False)
    _rules: TypeRules | None = field(default=None, repr=False)

    @property
    def rules(self) -> TypeRules:
        """Per-object write rules, precomputed (rebuilt after a field is added or changed)."""
        if self._rules is None:
            fields = list(self.fields.values())
            self._rules = TypeRules(
                defaults={f.name: f.default for f in fields if f.default is not None},
                required=tuple(f.name for f in fields if f.required),
                references=frozenset(f.name for f in fields if f.type == "reference"),
                restricted=frozenset(f.name for f in fields if f.restricted and f.picklist),
                unique=frozenset(f.name for f in fields if f.unique),
                external_ids=tuple(f.name for f in fields if f.external_id),
            )
        return self._rules

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name
        for f in list(self.fields.values()):
            self._index(f)

    def _index(self, f: Field) -> None:
        self._lower[f.name.lower()] = f
        if f.relationship_name:
            self._relationships[f.relationship_name.lower()] = f

    def add_field(self, f: Field) -> None:
        """Add (or replace) a field; used by the Tooling API."""
        self.fields[f.name] = f
        self._index(f)
        self._rules = None

    def remove_field(self, name: str) -> None:
        """Drop a custom field."""
        f = self._lower.pop(name.lower(), None)
        self._rules = None
        if f is not None:
            self.fields.pop(f.name, None)
            if f.relationship_name:
                self._relationships.pop(f.relationship_name.lower(), None)

    def field(self, name: str) -> Field | None:
        """A field by case-insensitive name."""
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """The reference field behind a relationship name (``Owner`` -> ``OwnerId``)."""
        return self._relationships.get(name.lower())

    def describe(self, version: str, *, full: bool) -> dict[str, Any]:
        """Global-describe entry (``full=False``) or the full per-object describe."""
        base = f"/services/data/v{version}/sobjects/{self.name}"
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + ("es" if self.label.endswith("s") else "s"),
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "queryable": True,
            "createable": True,
            "updateable": True,
            "deletable": self.deletable,
            "searchable": True,
            "retrieveable": True,
            "replicateable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }
        if full:
            out["fields"] = [f.describe() for f in self.fields.values()]
            out["childRelationships"] = []
            out["recordTypeInfos"] = []
        return out


def _pick(*values: str, default: str | None = None) -> list[PicklistValue]:
    return [PicklistValue(v, v, True, v == default) for v in values]


LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
    "Accepted",
    "Rejected",
    "Recycled",
)
"""Standard lead statuses plus the three crm-bridge's SLA feature moves leads into."""

OPPORTUNITY_STAGES: dict[str, tuple[int, str, bool, bool]] = {
    # stage: (probability, forecast category, closed, won)
    "Prospecting": (10, "Pipeline", False, False),
    "Qualification": (10, "Pipeline", False, False),
    "Needs Analysis": (20, "Pipeline", False, False),
    "Value Proposition": (50, "Pipeline", False, False),
    "Id. Decision Makers": (60, "Pipeline", False, False),
    "Perception Analysis": (70, "Pipeline", False, False),
    "Proposal/Price Quote": (75, "Pipeline", False, False),
    "Negotiation/Review": (90, "Pipeline", False, False),
    "Closed Won": (100, "Closed", True, True),
    "Closed Lost": (0, "Omitted", True, False),
}
"""The standard sales process, as a new org ships it."""

LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
INDUSTRIES = (
    "Agriculture",
    "Banking",
    "Consulting",
    "Education",
    "Energy",
    "Finance",
    "Healthcare",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Other",
)


def _system_fields(*, owner: bool, master: bool) -> list[Field]:
    ro: dict[str, Any] = {"createable": False, "updateable": False}
    out = [
        Field("Id", "id", "Record ID", 18, nillable=False, **ro),
        Field("IsDeleted", "boolean", "Deleted", nillable=False, **ro),
        Field("CreatedDate", "datetime", "Created Date", nillable=False, **ro),
        Field(
            "CreatedById",
            "reference",
            "Created By ID",
            18,
            nillable=False,
            reference_to=["User"],
            relationship_name="CreatedBy",
            **ro,
        ),
        Field("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, **ro),
        Field(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            nillable=False,
            reference_to=["User"],
            relationship_name="LastModifiedBy",
            **ro,
        ),
        Field("SystemModstamp", "datetime", "System Modstamp", nillable=False, **ro),
    ]
    if owner:
        out.append(
            Field(
                "OwnerId",
                "reference",
                "Owner ID",
                18,
                nillable=False,
                reference_to=["User"],
                relationship_name="Owner",
            )
        )
    if master:
        out.append(
            Field(
                "MasterRecordId",
                "reference",
                "Master Record ID",
                18,
                reference_to=[],
                relationship_name="MasterRecord",
                **ro,
            )
        )
    return out


def _name(rec: dict[str, Any]) -> Any:
    first, last = rec.get("FirstName"), rec.get("LastName")
    return " ".join(p for p in (first, last) if p) or None


def _obj(
    name: str,
    fields: list[Field],
    *,
    owner: bool = True,
    master: bool = False,
    derived: dict[str, Derived] | None = None,
    deletable: bool = True,
) -> SObjectType:
    all_fields = _system_fields(owner=owner, master=master) + fields
    for f in all_fields:
        if f.name == "MasterRecordId":
            f.reference_to = [name]
    obj = SObjectType(
        name,
        KEY_PREFIXES[name],
        fields={f.name: f for f in all_fields},
        derived=dict(derived or {}),
        deletable=deletable,
    )
    return obj


def _s(name: str, length: int = 255, **kw: Any) -> Field:
    return Field(name, "string", length=length, **kw)


def _ro(f: Field) -> Field:
    f.createable = False
    f.updateable = False
    return f


def standard_objects() -> dict[str, SObjectType]:
    """A fresh copy of the standard schema (each org owns its own, since tooling mutates it)."""
    lead = _obj(
        "Lead",
        [
            _s("FirstName", 40),
            _s("LastName", 80, nillable=False, required=True),
            _ro(_s("Name", 121)),
            _s("Salutation", 40),
            _s("Company", 255, nillable=False, required=True),
            _s("Title", 128),
            Field("Email", "email", length=80),
            Field("Phone", "phone", length=40),
            Field("MobilePhone", "phone", length=40),
            Field(
                "Status",
                "picklist",
                length=255,
                nillable=False,
                restricted=True,
                picklist=_pick(*LEAD_STATUSES, default="Open - Not Contacted"),
                default="Open - Not Contacted",
            ),
            Field("LeadSource", "picklist", length=255, picklist=_pick(*LEAD_SOURCES)),
            Field("Industry", "picklist", length=255, picklist=_pick(*INDUSTRIES)),
            Field("Rating", "picklist", length=255, picklist=_pick("Hot", "Warm", "Cold")),
            Field("Website", "url", length=255),
            _s("Street"),
            _s("City", 40),
            _s("State", 80),
            _s("PostalCode", 20),
            _s("Country", 80),
            Field("Description", "textarea", length=32000),
            Field("NumberOfEmployees", "int"),
            Field("AnnualRevenue", "currency", precision=18),
            Field("HasOptedOutOfEmail", "boolean", nillable=False, default=False),
            Field("DoNotCall", "boolean", nillable=False, default=False),
            _ro(Field("IsConverted", "boolean", nillable=False, default=False)),
            _ro(Field("ConvertedDate", "date")),
            _ro(
                Field(
                    "ConvertedAccountId",
                    "reference",
                    length=18,
                    reference_to=["Account"],
                    relationship_name="ConvertedAccount",
                )
            ),
            _ro(
                Field(
                    "ConvertedContactId",
                    "reference",
                    length=18,
                    reference_to=["Contact"],
                    relationship_name="ConvertedContact",
                )
            ),
            _ro(
                Field(
                    "ConvertedOpportunityId",
                    "reference",
                    length=18,
                    reference_to=["Opportunity"],
                    relationship_name="ConvertedOpportunity",
                )
            ),
            _ro(Field("LastActivityDate", "date")),
        ],
        master=True,
        derived={"Name": _name},
    )
    contact = _obj(
        "Contact",
        [
            _s("FirstName", 40),
            _s("LastName", 80, nillable=False, required=True),
            _ro(_s("Name", 121)),
            _s("Salutation", 40),
            Field(
                "AccountId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Account",
            ),
            Field("Email", "email", length=80),
            Field("Phone", "phone", length=40),
            Field("MobilePhone", "phone", length=40),
            _s("Title", 128),
            _s("Department", 80),
            Field("LeadSource", "picklist", length=255, picklist=_pick(*LEAD_SOURCES)),
            _s("MailingCity", 40),
            _s("MailingCountry", 80),
            Field("Description", "textarea", length=32000),
            Field("HasOptedOutOfEmail", "boolean", nillable=False, default=False),
            _ro(Field("LastActivityDate", "date")),
        ],
        master=True,
        derived={"Name": _name},
    )
    account = _obj(
        "Account",
        [
            _s("Name", 255, nillable=False, required=True),
            Field(
                "Type",
                "picklist",
                length=255,
                picklist=_pick(
                    "Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"
                ),
            ),
            Field("Industry", "picklist", length=255, picklist=_pick(*INDUSTRIES)),
            Field("Website", "url", length=255),
            Field("Phone", "phone", length=40),
            _s("BillingCity", 40),
            _s("BillingCountry", 80),
            Field("NumberOfEmployees", "int"),
            Field("AnnualRevenue", "currency", precision=18),
            Field(
                "ParentId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Parent",
            ),
            Field("Description", "textarea", length=32000),
        ],
        master=True,
    )
    stages = list(OPPORTUNITY_STAGES)
    opportunity = _obj(
        "Opportunity",
        [
            _s("Name", 120, nillable=False, required=True),
            Field(
                "AccountId",
                "reference",
                length=18,
                reference_to=["Account"],
                relationship_name="Account",
            ),
            Field(
                "StageName",
                "picklist",
                length=255,
                nillable=False,
                required=True,
                restricted=True,
                picklist=_pick(*stages),
            ),
            Field("CloseDate", "date", nillable=False, required=True),
            Field("Amount", "currency", precision=18, scale=2),
            Field("Probability", "percent", precision=3),
            Field(
                "Type",
                "picklist",
                length=255,
                picklist=_pick(
                    "Existing Customer - Upgrade",
                    "Existing Customer - Replacement",
                    "Existing Customer - Downgrade",
                    "New Customer",
                ),
            ),
            Field("LeadSource", "picklist", length=255, picklist=_pick(*LEAD_SOURCES)),
            _ro(
                Field(
                    "ForecastCategoryName",
                    "picklist",
                    length=40,
                    picklist=_pick("Omitted", "Pipeline", "Best Case", "Commit", "Closed"),
                )
            ),
            _ro(Field("IsClosed", "boolean", nillable=False, default=False)),
            _ro(Field("IsWon", "boolean", nillable=False, default=False)),
            _s("NextStep"),
            Field("Description", "textarea", length=32000),
            Field(
                "ContactId",
                "reference",
                length=18,
                reference_to=["Contact"],
                relationship_name="Contact",
            ),
        ],
    )
    ocr = _obj(
        "OpportunityContactRole",
        [
            Field(
                "OpportunityId",
                "reference",
                length=18,
                nillable=False,
                required=True,
                reference_to=["Opportunity"],
                relationship_name="Opportunity",
                updateable=False,
            ),
            Field(
                "ContactId",
                "reference",
                length=18,
                nillable=False,
                required=True,
                reference_to=["Contact"],
                relationship_name="Contact",
            ),
            Field(
                "Role",
                "picklist",
                length=40,
                picklist=_pick(
                    "Business User",
                    "Decision Maker",
                    "Economic Buyer",
                    "Economic Decision Maker",
                    "Evaluator",
                    "Executive Sponsor",
                    "Influencer",
                    "Technical Buyer",
                    "Other",
                ),
            ),
            Field("IsPrimary", "boolean", nillable=False, default=False),
        ],
        owner=False,
    )
    activity_common = [
        _s("Subject", 255),
        Field(
            "WhoId",
            "reference",
            length=18,
            reference_to=["Lead", "Contact"],
            relationship_name="Who",
        ),
        Field(
            "WhatId",
            "reference",
            length=18,
            reference_to=["Account", "Opportunity"],
            relationship_name="What",
        ),
        Field("Description", "textarea", length=32000),
        Field("Type", "picklist", length=40, picklist=_pick("Call", "Email", "Meeting", "Other")),
    ]
    task = _obj(
        "Task",
        [
            *activity_common,
            Field(
                "Status",
                "picklist",
                length=40,
                nillable=False,
                restricted=True,
                picklist=_pick(
                    "Not Started",
                    "In Progress",
                    "Completed",
                    "Waiting on someone else",
                    "Deferred",
                    default="Not Started",
                ),
                default="Not Started",
            ),
            Field(
                "Priority",
                "picklist",
                length=40,
                nillable=False,
                restricted=True,
                picklist=_pick("High", "Normal", "Low", default="Normal"),
                default="Normal",
            ),
            Field("ActivityDate", "date"),
            _ro(Field("IsClosed", "boolean", nillable=False, default=False)),
            Field(
                "TaskSubtype",
                "picklist",
                length=40,
                picklist=_pick("Task", "Email", "Call", "ListEmail", "Cadence"),
            ),
        ],
    )
    event = _obj(
        "Event",
        [
            *[replace(f) for f in activity_common],
            Field("StartDateTime", "datetime"),
            Field("EndDateTime", "datetime"),
            Field("ActivityDateTime", "datetime"),
            Field("DurationInMinutes", "int"),
            _s("Location", 255),
            Field("IsAllDayEvent", "boolean", nillable=False, default=False),
        ],
    )
    user = _obj(
        "User",
        [
            _s("Username", 80, nillable=False, required=True, unique=True),
            Field("Email", "email", length=128, nillable=False, required=True),
            _s("FirstName", 40),
            _s("LastName", 80, nillable=False, required=True),
            _ro(_s("Name", 121)),
            _s("Alias", 8),
            _s("Title", 80),
            _s("Department", 80),
            Field("IsActive", "boolean", nillable=False, default=True),
            Field(
                "ManagerId",
                "reference",
                length=18,
                reference_to=["User"],
                relationship_name="Manager",
            ),
            _s("UserType", 40, default="Standard"),
        ],
        owner=False,
        derived={"Name": _name},
        deletable=False,
    )
    return {o.name: o for o in (lead, contact, account, opportunity, ocr, task, event, user)}
