"""Property definitions: the defaults of a fresh portal, custom ones, and value validation.

Why validate: the real API rejects unknown properties, values outside an enumeration and malformed
emails with 400s, and crm-bridge must dead-letter such records instead of retrying them; an
emulator that accepted anything would hide those paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_bridge.connectors.hubspot.emulator.catalog import OBJECT_TYPES

__all__ = ["PropertyDef", "PropertyRegistry", "coerce_value", "default_properties"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
VALID_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}
VALID_FIELD_TYPES = {
    "textarea",
    "text",
    "date",
    "file",
    "number",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "calculation_equation",
    "html",
    "phonenumber",
}


@dataclass
class PropertyDef:
    """One property definition, as ``GET /crm/v3/properties/{objectType}`` describes it."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "contactinformation"
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    read_only: bool = False
    hubspot_defined: bool = True
    has_unique_value: bool = False
    external_options: bool = False  # dealstage / pipeline / owner: options live elsewhere
    calculated: bool = False
    hidden: bool = False
    display_order: int = -1
    created_ms: int = 0
    updated_ms: int = 0
    archived: bool = False

    def option_values(self) -> set[str]:
        """The allowed internal values of an enumeration."""
        return {str(o["value"]) for o in self.options}

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase), as the properties API answers."""
        from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms

        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [dict(o) for o in self.options],
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "formField": not self.read_only,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": self.archived,
        }

    def to_state(self) -> dict[str, Any]:
        """Plain data for snapshots."""
        return dict(self.__dict__)


def _options(*values: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
        for i, (value, label) in enumerate(values)
    ]


LIFECYCLE_STAGES = _options(
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
LEAD_STATUSES = _options(
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
ANALYTICS_SOURCES = _options(
    ("ORGANIC_SEARCH", "Organic Search"),
    ("PAID_SEARCH", "Paid Search"),
    ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"),
    ("OFFLINE", "Offline Sources"),
    ("PAID_SOCIAL", "Paid Social"),
)


def _p(
    name: str, label: str, type_: str = "string", field_type: str = "text", **kw: Any
) -> PropertyDef:
    return PropertyDef(name=name, label=label, type=type_, field_type=field_type, **kw)


def _system(obj: str) -> list[PropertyDef]:
    t = OBJECT_TYPES[obj]
    return [
        _p("hs_object_id", "Record ID", "number", "number", read_only=True),
        _p(t.created_prop, "Create Date", "datetime", "date", read_only=True),
        _p(t.modified_prop, "Last Modified Date", "datetime", "date", read_only=True),
        _p("hs_updated_by_user_id", "Updated by user ID", "number", "number", read_only=True),
        _p("hs_merged_object_ids", "Merged record IDs", "enumeration", "checkbox", read_only=True),
        _p("hubspot_owner_id", "Owner", "enumeration", "select", external_options=True),
    ]


def _contacts() -> list[PropertyDef]:
    g = {"group_name": "contactinformation"}
    return [
        _p("email", "Email", has_unique_value=False, **g),
        _p("firstname", "First Name", **g),
        _p("lastname", "Last Name", **g),
        _p("phone", "Phone Number", "string", "phonenumber", **g),
        _p("mobilephone", "Mobile Phone Number", "string", "phonenumber", **g),
        _p("company", "Company Name", **g),
        _p("jobtitle", "Job Title", **g),
        _p("website", "Website URL", **g),
        _p("city", "City", **g),
        _p("state", "State/Region", **g),
        _p("country", "Country/Region", **g),
        _p(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            options=LIFECYCLE_STAGES,
            **g,
        ),
        _p("hs_lead_status", "Lead Status", "enumeration", "radio", options=LEAD_STATUSES, **g),
        _p("associatedcompanyid", "Primary Associated Company ID", "number", "number", **g),
        _p(
            "hs_analytics_source",
            "Original Source",
            "enumeration",
            "select",
            options=ANALYTICS_SOURCES,
            group_name="analyticsinformation",
        ),
        _p(
            "hs_additional_emails",
            "Additional email addresses",
            "enumeration",
            "checkbox",
            read_only=True,
            **g,
        ),
        _p("notes_last_contacted", "Last Contacted", "datetime", "date", read_only=True, **g),
        # Used by the SLA feature (MQL criteria, delay split).  In HubSpot both are calculated;
        # here they are writable so tests and the demo can set them.
        _p("hubspotscore", "HubSpot Score", "number", "number", **g),
        _p(
            "hs_lifecyclestage_marketingqualifiedlead_date",
            "Became a Marketing Qualified Lead Date",
            "datetime",
            "date",
            **g,
        ),
        # Calculated in HubSpot (read-only there and here); the funnel backfill reads them and
        # the seed fills them consistently with each contact's lifecycle stage.
        *(
            _p(
                f"hs_v2_date_entered_{stage}",
                f"Date entered '{label}' (Lifecycle Stage Pipeline)",
                "datetime",
                "date",
                read_only=True,
                **g,
            )
            for stage, label in FUNNEL_LIFECYCLE_LABELS.items()
        ),
        _p(
            "num_conversion_events",
            "Number of Form Submissions",
            "number",
            "number",
            read_only=True,
            group_name="conversioninformation",
        ),
        _p(
            "hs_analytics_source_data_1",
            "Original Source Drill-Down 1",
            read_only=True,
            group_name="analyticsinformation",
        ),
    ]


FUNNEL_LIFECYCLE_LABELS = {
    "marketingqualifiedlead": "Marketing Qualified Lead",
    "salesqualifiedlead": "Sales Qualified Lead",
    "opportunity": "Opportunity",
    "customer": "Customer",
}
"""Lifecycle stages whose entry date the emulated portal keeps (``hs_v2_date_entered_*``)."""


def _companies() -> list[PropertyDef]:
    g = {"group_name": "companyinformation"}
    return [
        _p("name", "Company name", **g),
        _p("domain", "Company Domain Name", **g),
        _p("website", "Website URL", **g),
        _p("phone", "Phone Number", **g),
        _p("industry", "Industry", **g),
        _p("city", "City", **g),
        _p("country", "Country/Region", **g),
        _p("numberofemployees", "Number of Employees", "number", "number", **g),
        _p("annualrevenue", "Annual Revenue", "number", "number", **g),
        _p(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            options=LIFECYCLE_STAGES,
            **g,
        ),
    ]


def _deals() -> list[PropertyDef]:
    g = {"group_name": "dealinformation"}
    return [
        _p("dealname", "Deal Name", **g),
        _p("amount", "Amount", "number", "number", **g),
        _p("closedate", "Close Date", "datetime", "date", **g),
        _p("pipeline", "Pipeline", "enumeration", "select", external_options=True, **g),
        _p("dealstage", "Deal Stage", "enumeration", "radio", external_options=True, **g),
        _p(
            "num_associated_contacts",
            "Number of Associated Contacts",
            "number",
            "number",
            read_only=True,
            calculated=True,
            **g,
        ),
        _p(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            options=_options(
                ("newbusiness", "New Business"), ("existingbusiness", "Existing Business")
            ),
            **g,
        ),
        _p("closed_lost_reason", "Closed Lost Reason", "string", "textarea", **g),
        _p("closed_won_reason", "Closed Won Reason", "string", "textarea", **g),
        _p("description", "Deal Description", "string", "textarea", **g),
        _p(
            "hs_is_closed",
            "Is Deal Closed?",
            "bool",
            "booleancheckbox",
            read_only=True,
            calculated=True,
            options=_options(("true", "True"), ("false", "False")),
            **g,
        ),
        _p(
            "hs_is_closed_won",
            "Is Closed Won",
            "bool",
            "booleancheckbox",
            read_only=True,
            calculated=True,
            options=_options(("true", "True"), ("false", "False")),
            **g,
        ),
    ]


def _engagement(extra: list[PropertyDef]) -> list[PropertyDef]:
    for d in extra:
        d.group_name = "engagement"
    return [
        _p("hs_timestamp", "Activity date", "datetime", "date", group_name="engagement"),
        *extra,
    ]


def _calls() -> list[PropertyDef]:
    return _engagement(
        [
            _p("hs_call_title", "Call Title"),
            _p("hs_call_body", "Call notes", field_type="html"),
            _p("hs_call_duration", "Call duration", "number", "number"),
            _p(
                "hs_call_direction",
                "Call direction",
                "enumeration",
                "select",
                options=_options(("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")),
            ),
            _p(
                "hs_call_status",
                "Call status",
                "enumeration",
                "select",
                options=_options(
                    ("BUSY", "Busy"),
                    ("CALLING_CRM_USER", "Calling CRM user"),
                    ("CANCELED", "Canceled"),
                    ("COMPLETED", "Completed"),
                    ("CONNECTING", "Connecting"),
                    ("FAILED", "Failed"),
                    ("IN_PROGRESS", "In progress"),
                    ("NO_ANSWER", "No answer"),
                    ("QUEUED", "Queued"),
                    ("RINGING", "Ringing"),
                ),
            ),
        ]
    )


def _emails() -> list[PropertyDef]:
    return _engagement(
        [
            _p("hs_email_subject", "Email subject"),
            _p("hs_email_text", "Email body"),
            _p(
                "hs_email_direction",
                "Email direction",
                "enumeration",
                "select",
                options=_options(
                    ("EMAIL", "Logged/sent email"),
                    ("INCOMING_EMAIL", "Reply"),
                    ("FORWARDED_EMAIL", "Forwarded"),
                ),
            ),
            _p(
                "hs_email_status",
                "Email send status",
                "enumeration",
                "select",
                options=_options(
                    ("BOUNCED", "Bounced"),
                    ("FAILED", "Failed"),
                    ("SCHEDULED", "Scheduled"),
                    ("SENDING", "Sending"),
                    ("SENT", "Sent"),
                ),
            ),
        ]
    )


def _meetings() -> list[PropertyDef]:
    return _engagement(
        [
            _p("hs_meeting_title", "Meeting name"),
            _p("hs_meeting_body", "Meeting description"),
            _p("hs_meeting_start_time", "Start time", "datetime", "date"),
            _p("hs_meeting_end_time", "End time", "datetime", "date"),
            _p(
                "hs_meeting_outcome",
                "Meeting outcome",
                "enumeration",
                "select",
                options=_options(
                    ("SCHEDULED", "Scheduled"),
                    ("COMPLETED", "Completed"),
                    ("RESCHEDULED", "Rescheduled"),
                    ("NO_SHOW", "No show"),
                    ("CANCELED", "Canceled"),
                ),
            ),
        ]
    )


def _notes() -> list[PropertyDef]:
    return _engagement([_p("hs_note_body", "Note body", field_type="html")])


def _tasks() -> list[PropertyDef]:
    return _engagement(
        [
            _p("hs_task_subject", "Task title"),
            _p("hs_task_body", "Task notes"),
            _p(
                "hs_task_status",
                "Task status",
                "enumeration",
                "select",
                options=_options(
                    ("NOT_STARTED", "Not started"),
                    ("IN_PROGRESS", "In progress"),
                    ("WAITING", "Waiting"),
                    ("COMPLETED", "Completed"),
                    ("DEFERRED", "Deferred"),
                ),
            ),
            _p(
                "hs_task_priority",
                "Priority",
                "enumeration",
                "select",
                options=_options(
                    ("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")
                ),
            ),
            _p(
                "hs_task_type",
                "Task type",
                "enumeration",
                "select",
                options=_options(("CALL", "Call"), ("EMAIL", "Email"), ("TODO", "To-do")),
            ),
        ]
    )


_BUILDERS = {
    "contacts": _contacts,
    "companies": _companies,
    "deals": _deals,
    "calls": _calls,
    "emails": _emails,
    "meetings": _meetings,
    "notes": _notes,
    "tasks": _tasks,
}


def default_properties(obj: str, now_ms: int) -> dict[str, PropertyDef]:
    """The HubSpot-defined properties a fresh portal has for ``obj``."""
    defs = _system(obj) + _BUILDERS[obj]()
    for i, d in enumerate(defs):
        d.display_order = i
        d.created_ms = d.updated_ms = now_ms
    return {d.name: d for d in defs}


def coerce_value(value: Any) -> str:
    """Property values are strings on the wire; JSON numbers, booleans and null are accepted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_date(value: str) -> bool:
    if value.isdigit():
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class PropertyRegistry:
    """Definitions per object type, plus the value check every write goes through."""

    def __init__(self, now_ms: int) -> None:
        self.defs: dict[str, dict[str, PropertyDef]] = {
            obj: default_properties(obj, now_ms) for obj in OBJECT_TYPES
        }

    def get(self, obj: str, name: str) -> PropertyDef | None:
        """An unarchived definition, or None."""
        d = self.defs[obj].get(name)
        return d if d is not None and not d.archived else None

    def check(
        self, obj: str, name: str, value: str, external: dict[str, set[str]]
    ) -> tuple[str, str] | None:
        """``(code, message)`` when ``value`` may not be written to ``name``, else None.

        ``external`` holds the allowed values of properties whose options live outside the
        definition (owners, pipelines, deal stages).
        """
        d = self.get(obj, name)
        if d is None:
            return "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
        if d.read_only:
            return (
                "READ_ONLY_VALUE",
                f'"{name}" is a read only property; its value cannot be set.',
            )
        if value == "":
            return None  # an empty string clears the value
        if name == "email" and obj == "contacts" and not _EMAIL.match(value):
            return "INVALID_EMAIL", f"Email address {value} is invalid"
        if d.type == "number" and not _is_number(value.strip()):
            return "INVALID_DECIMAL", f"{value} was not a valid number."
        if d.type in ("date", "datetime") and not _is_date(value):
            return "INVALID_DATE", f"{value} was not a valid date or datetime."
        if d.type == "bool" and value.lower() not in ("true", "false"):
            return "INVALID_BOOLEAN", f"{value} was not a valid boolean."
        if d.type != "enumeration":
            return None
        allowed = external.get(name) if d.external_options else d.option_values()
        if allowed is None:
            return None
        parts = value.split(";") if d.field_type == "checkbox" else [value]
        bad = [p for p in parts if p not in allowed]
        if bad:
            return (
                "INVALID_OPTION",
                f"{bad[0]} was not one of the allowed options: {sorted(allowed)}",
            )
        return None

    @staticmethod
    def valid_name(name: str) -> bool:
        """Internal names are lower-case snake case."""
        return bool(_NAME.match(name))
