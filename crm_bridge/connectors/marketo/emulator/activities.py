"""The activity log: activity types, activity records, and the date-based paging tokens.

Why a log: every Marketo change feed is a read of one append-only activity log -- lead changes
are its "New Lead" (12) and "Change Data Value" (13) rows, deleted leads its "Delete Lead" (37)
rows, engagement (form fills, web visits, email opens) the rest.  A paging token is the base32 of
``"<ISO datetime>,<last activity id>"`` -- the shape the vendor's documented tokens decode to --
so a cursor is a position in the log; clients must treat it as opaque.

Docs: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/activities
and .../paging-tokens
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.marketo.emulator.errors import MarketoError

__all__ = [
    "ACTIVITY_TYPES",
    "CHANGE_DATA_VALUE",
    "DELETE_LEAD",
    "MERGE_LEADS",
    "NEW_LEAD",
    "Activity",
    "ActivityType",
    "decode_token",
    "encode_token",
    "type_by_key",
]


@dataclass(frozen=True)
class ActivityType:
    """One activity type as ``activities/types.json`` lists it."""

    id: int
    name: str
    description: str
    primary: tuple[str, str]
    """(name, dataType) of the primary attribute."""
    attributes: tuple[tuple[str, str], ...] = ()
    key: str = ""
    """The control plane's short name (``fill_out_form``)."""

    def render(self) -> dict[str, Any]:
        """The ``types.json`` item."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "primaryAttribute": {"name": self.primary[0], "dataType": self.primary[1]},
            "attributes": [{"name": n, "dataType": t} for n, t in self.attributes],
        }


NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
MERGE_LEADS = 32
DELETE_LEAD = 37

_SOURCE = (("Source", "string"),)
ACTIVITY_TYPES: dict[int, ActivityType] = {
    t.id: t
    for t in (
        ActivityType(
            1,
            "Visit Webpage",
            "User visits a web page",
            ("Webpage ID", "integer"),
            (
                ("Webpage URL", "string"),
                ("Query Parameters", "string"),
                ("Client IP Address", "string"),
            ),
            "visit_webpage",
        ),
        ActivityType(
            2,
            "Fill Out Form",
            "User fills out and submits form on web page",
            ("Webform ID", "integer"),
            (("Webpage ID", "integer"), ("Form Fields", "text"), ("Client IP Address", "string")),
            "fill_out_form",
        ),
        ActivityType(
            3,
            "Click Link",
            "User clicks on a link on a web page",
            ("Link ID", "integer"),
            (("Webpage ID", "integer"), ("Query Parameters", "string")),
            "click_link",
        ),
        ActivityType(
            6,
            "Send Email",
            "Send Marketo Email to a person",
            ("Mailing ID", "integer"),
            (("Campaign Run ID", "integer"),),
            "send_email",
        ),
        ActivityType(
            7,
            "Email Delivered",
            "Marketo Email is delivered to a person",
            ("Mailing ID", "integer"),
            (("Campaign Run ID", "integer"),),
            "email_delivered",
        ),
        ActivityType(
            9,
            "Unsubscribe Email",
            "Person unsubscribes from Marketo emails",
            ("Mailing ID", "integer"),
            (),
            "unsubscribe_email",
        ),
        ActivityType(
            10,
            "Open Email",
            "User opens Marketo Email",
            ("Mailing ID", "integer"),
            (("Device", "string"), ("Is Mobile Device", "boolean")),
            "open_email",
        ),
        ActivityType(
            11,
            "Click Email",
            "User clicks on a link in a Marketo Email",
            ("Mailing ID", "integer"),
            (("Link", "string"), ("Device", "string")),
            "click_email",
        ),
        ActivityType(
            NEW_LEAD,
            "New Lead",
            "New person/record is added to the lead database",
            ("Lead ID", "integer"),
            (("Source Type", "string"), ("Form Name", "string")),
            "new_lead",
        ),
        ActivityType(
            CHANGE_DATA_VALUE,
            "Change Data Value",
            "Changed attribute value for a person",
            ("Attribute Name", "integer"),
            (("New Value", "string"), ("Old Value", "string"), ("Reason", "string"), *_SOURCE),
            "change_data_value",
        ),
        ActivityType(
            22,
            "Change Score",
            "Changed score value for a person",
            ("Score Name", "integer"),
            (("Change Value", "string"), ("New Value", "integer"), ("Old Value", "integer")),
            "change_score",
        ),
        ActivityType(
            24,
            "Add to List",
            "Person is added to a list",
            ("List ID", "integer"),
            _SOURCE,
            "add_to_list",
        ),
        ActivityType(
            25,
            "Remove from List",
            "Person is removed from a list",
            ("List ID", "integer"),
            _SOURCE,
            "remove_from_list",
        ),
        ActivityType(
            MERGE_LEADS,
            "Merge Leads",
            "Merge two or more leads",
            ("Lead ID", "integer"),
            (("Merge IDs", "text"), ("Merged in Sales", "boolean"), ("Merge Source", "string")),
            "merge_leads",
        ),
        ActivityType(
            DELETE_LEAD,
            "Delete Lead",
            "Delete a lead",
            ("Lead ID", "integer"),
            (("Remove from CRM", "boolean"),),
            "delete_lead",
        ),
        ActivityType(
            104,
            "Change Status in Progression",
            "Change a program member status",
            ("Program ID", "integer"),
            (
                ("New Status ID", "integer"),
                ("Old Status ID", "integer"),
                ("Reason", "string"),
                ("Success", "boolean"),
            ),
            "change_status_in_progression",
        ),
    )
}


_IN_FIELDS = frozenset({"New Value", "Old Value"})
"""Attributes that the lead-changes view carries in ``fields`` instead."""


def type_by_key(key: int | str) -> ActivityType:
    """An activity type by id or control-plane key (``KeyError`` if unknown)."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return ACTIVITY_TYPES[int(key)]
    for activity_type in ACTIVITY_TYPES.values():
        if activity_type.key == key:
            return activity_type
    raise KeyError(key)


@dataclass
class Activity:
    """One row of the activity log."""

    id: int
    lead_id: int
    type_id: int
    at: float
    primary_value: str | None = None
    primary_value_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    fields: list[dict[str, Any]] = field(default_factory=list)
    """For Change Data Value: ``[{id, name, newValue, oldValue}]`` (the lead-changes view)."""

    def render(self, iso: str, *, with_fields: bool = False) -> dict[str, Any]:
        """The ``activities.json`` / ``leadchanges.json`` item (``iso`` = rendered date)."""
        item: dict[str, Any] = {
            "id": self.id,
            "marketoGUID": str(self.id),
            "leadId": self.lead_id,
            "activityDate": iso,
            "activityTypeId": self.type_id,
        }
        if with_fields:
            item["fields"] = [dict(f) for f in self.fields]
        else:
            if self.primary_value_id is not None:
                item["primaryAttributeValueId"] = self.primary_value_id
            if self.primary_value is not None:
                item["primaryAttributeValue"] = self.primary_value
        item["attributes"] = [
            {"name": k, "value": v}
            for k, v in self.attributes.items()
            if not (with_fields and k in _IN_FIELDS)
        ]
        return item

    def to_json(self) -> dict[str, Any]:
        """For a snapshot."""
        return {
            "id": self.id,
            "leadId": self.lead_id,
            "typeId": self.type_id,
            "at": self.at,
            "primaryValue": self.primary_value,
            "primaryValueId": self.primary_value_id,
            "attributes": self.attributes,
            "fields": self.fields,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Activity:
        """From a snapshot."""
        return cls(
            id=int(data["id"]),
            lead_id=int(data["leadId"]),
            type_id=int(data["typeId"]),
            at=float(data["at"]),
            primary_value=data.get("primaryValue"),
            primary_value_id=data.get("primaryValueId"),
            attributes=dict(data.get("attributes") or {}),
            fields=list(data.get("fields") or []),
        )


def encode_token(since_iso: str, last_id: int) -> str:
    """A paging token for "activities after ``last_id`` dated at or after ``since_iso``"."""
    raw = f"{since_iso},{last_id}".encode()
    return base64.b32encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, int]:
    """(since ISO datetime, last activity id) of a token, or 1003 if it is not one of ours."""
    padded = token + "=" * (-len(token) % 8)
    try:
        since, _, last = base64.b32decode(padded.upper()).decode().rpartition(",")
        return since, int(last)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MarketoError(1003, f"Invalid nextPageToken '{token}'") from None
