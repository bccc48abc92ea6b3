"""Lead conversion: what ``convertLead()`` (SOAP) and ``Database.convertLead`` (Apex) do.

Why the emulator serves a call that REST lacks: a converted Lead stays in the org, read-only,
pointing at its Account/Contact/Opportunity, and crm-bridge must cope with both halves of that --
the lead refuses every write from then on, and the Contact shows up in the change stream at the
lead's own ``SystemModstamp``.  Tests reach it through ``SalesforceEmulator.convert_lead`` or
``POST /__emulator__/convert-lead``.

Vendor rules followed here (the SOAP doc and the "Lead Conversion Mapping" help page):

* new records are owned by the lead's owner; the standard lead fields map as in ``_CONTACT``,
  ``_ACCOUNT`` and ``_OPPORTUNITY`` (only where both objects have the field);
* merged into an existing Account/Contact, only *empty* target fields are filled, except
  LeadSource with ``overwriteLeadSource``; Email Opt Out is not copied onto an existing contact;
* a given ``contactId`` needs the ``accountId`` it belongs to;
* the Opportunity gets the first open stage and the last day of the current (calendar = standard
  fiscal) quarter as CloseDate, ``ContactId`` (API 46.0+: set only by conversion) and, where the
  schema has it, a primary OpportunityContactRole.

Doc: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_convertlead.htm
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from crm_bridge.connectors.salesforce.emulator.errors import RecordError
from crm_bridge.connectors.salesforce.emulator.schema import OPPORTUNITY_STAGES

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.dml import Writer
    from crm_bridge.connectors.salesforce.emulator.state import Record

__all__ = ["CONVERTED_STATUSES", "LeadConvert", "convert_lead", "converted_lead_error"]

CONVERTED_STATUSES = ("Closed - Converted",)
"""Lead statuses whose LeadStatus row has ``IsConverted = true`` in a new org; first = default."""

_CONTACT = (
    ("Salutation", "Salutation"),
    ("FirstName", "FirstName"),
    ("LastName", "LastName"),
    ("Email", "Email"),
    ("Title", "Title"),
    ("Phone", "Phone"),
    ("MobilePhone", "MobilePhone"),
    ("LeadSource", "LeadSource"),
    ("Description", "Description"),
    ("City", "MailingCity"),
    ("Country", "MailingCountry"),
    ("DoNotCall", "DoNotCall"),
)
_CONTACT_NEW_ONLY = (("HasOptedOutOfEmail", "HasOptedOutOfEmail"),)
_ACCOUNT = (
    ("Company", "Name"),
    ("Website", "Website"),
    ("Industry", "Industry"),
    ("NumberOfEmployees", "NumberOfEmployees"),
    ("AnnualRevenue", "AnnualRevenue"),
    ("Phone", "Phone"),
    ("Rating", "Rating"),
    ("City", "BillingCity"),
    ("Country", "BillingCountry"),
)
_OPPORTUNITY = (("LeadSource", "LeadSource"),)


def converted_lead_error() -> RecordError:
    """The answer to any write to a converted Lead (update, upsert, delete, merge, convert)."""
    return RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])


@dataclass(frozen=True)
class LeadConvert:
    """One ``LeadConvert`` request: the fields of the SOAP type that the emulator honours."""

    lead_id: str
    account_id: str | None = None
    contact_id: str | None = None
    do_not_create_opportunity: bool = False
    opportunity_name: str | None = None
    converted_status: str | None = None
    overwrite_lead_source: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LeadConvert:
        """From the SOAP type's camelCase keys (what the control route accepts)."""
        return cls(
            lead_id=str(body["leadId"]),
            account_id=body.get("accountId") or None,
            contact_id=body.get("contactId") or None,
            do_not_create_opportunity=bool(body.get("doNotCreateOpportunity", False)),
            opportunity_name=body.get("opportunityName") or None,
            converted_status=body.get("convertedStatus") or None,
            overwrite_lead_source=bool(body.get("overwriteLeadSource", False)),
        )


def convert_lead(writer: Writer, req: LeadConvert) -> dict[str, Any]:
    """Convert one lead as ``writer``'s user, all or nothing; a failure raises RecordError."""
    org = writer.org
    lead_store, lead = writer.live(req.lead_id, org.schema["Lead"])
    if lead.get("IsConverted"):
        # A real org answers a second conversion like any other write to a converted lead
        # (forum reports of Database.convertLead show this code, not INVALID_STATUS).
        raise converted_lead_error()
    status = _converted_status(writer, req.converted_status)
    with org.atomic(), writer.one_transaction() as now:
        account_id = _account(writer, lead, req.account_id)
        contact_id = _contact(writer, lead, req, account_id)
        opportunity_id = None
        if not req.do_not_create_opportunity:
            opportunity_id = _opportunity(writer, lead, req, account_id, contact_id, now)
        rec = dict(lead)
        rec.update(
            IsConverted=True,
            ConvertedDate=now[:10],
            Status=status,
            ConvertedAccountId=account_id,
            ConvertedContactId=contact_id,
        )
        if opportunity_id is not None:
            rec["ConvertedOpportunityId"] = opportunity_id
        writer.save_system(lead_store, rec)
    return {
        "accountId": account_id,
        "contactId": contact_id,
        "opportunityId": opportunity_id,
        "leadId": lead["Id"],
        "success": True,
        "errors": [],
    }


def _converted_status(writer: Writer, wanted: str | None) -> str:
    status = wanted or CONVERTED_STATUSES[0]
    entry = writer.org.schema["Lead"].fields["Status"].picklist_value(status)
    if status not in CONVERTED_STATUSES or entry is None or not entry.active:
        # The vendor's wording for a status whose LeadStatus row is not IsConverted.
        raise RecordError("INVALID_STATUS", f"invalid convertedStatus: {status}", [])
    return status


def _mapped(
    writer: Writer,
    lead: Record,
    target_type: str,
    mapping: tuple[tuple[str, str], ...],
    target: Record | None,
    overwrite: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Lead values for ``target``'s fields: all for a new record, empty ones for an existing one."""
    t = writer.org.schema[target_type]
    out: dict[str, Any] = {}
    for source, dest in mapping:
        value = lead.get(source)
        if value is None or t.field(dest) is None:
            continue
        if target is None or target.get(dest) in (None, "") or dest in overwrite:
            out[dest] = value
    return out


def _account(writer: Writer, lead: Record, account_id: str | None) -> str:
    if account_id is None:
        data = _mapped(writer, lead, "Account", _ACCOUNT, None)
        return writer.create("Account", {**data, "OwnerId": lead["OwnerId"]})
    _, account = writer.live(account_id, writer.org.schema["Account"])
    return writer.update(
        "Account", account["Id"], _mapped(writer, lead, "Account", _ACCOUNT, account)
    )


def _contact(writer: Writer, lead: Record, req: LeadConvert, account_id: str) -> str:
    if req.contact_id is None:
        data = _mapped(writer, lead, "Contact", _CONTACT + _CONTACT_NEW_ONLY, None)
        return writer.create(
            "Contact", {**data, "AccountId": account_id, "OwnerId": lead["OwnerId"]}
        )
    if req.account_id is None:
        # Unverified against a real org: the doc only says accountId "must be specified".
        raise RecordError(
            "REQUIRED_FIELD_MISSING", "Required fields are missing: [accountId]", ["accountId"]
        )
    _, contact = writer.live(req.contact_id, writer.org.schema["Contact"])
    if contact.get("AccountId") != account_id:
        # Unverified code: the doc says the contact "must be associated with" the accountId.
        raise RecordError(
            "INVALID_CROSS_REFERENCE_KEY",
            "the contact is not associated with the specified account",
            ["contactId"],
        )
    keep = frozenset({"LeadSource"}) if req.overwrite_lead_source else frozenset()
    fill = _mapped(writer, lead, "Contact", _CONTACT, contact, keep)
    return writer.update("Contact", contact["Id"], fill)


def _opportunity(
    writer: Writer, lead: Record, req: LeadConvert, account_id: str, contact_id: str, now: str
) -> str:
    schema = writer.org.schema
    data = _mapped(writer, lead, "Opportunity", _OPPORTUNITY, None)
    data.update(
        Name=req.opportunity_name or lead["Company"],
        AccountId=account_id,
        StageName=_first_open_stage(writer),
        CloseDate=_quarter_end(date.fromisoformat(now[:10])).isoformat(),
        OwnerId=lead["OwnerId"],
    )
    if schema["Opportunity"].field("ContactId") is not None:
        data["ContactId"] = contact_id
    opportunity_id = writer.create("Opportunity", data)
    if "OpportunityContactRole" in schema:
        writer.create(
            "OpportunityContactRole",
            {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True},
        )
    return opportunity_id


def _first_open_stage(writer: Writer) -> str:
    """The first active StageName that is not closed (the org's sales process order)."""
    for entry in writer.org.schema["Opportunity"].fields["StageName"].picklist or ():
        closed = OPPORTUNITY_STAGES.get(entry.value, (0, "Pipeline", False, False))[2]
        if entry.active and not closed:
            return entry.value
    raise RecordError("INVALID_STATUS", "no open opportunity stage is active", ["StageName"])


def _quarter_end(day: date) -> date:
    """The last day of ``day``'s calendar quarter (a standard fiscal year's quarter)."""
    end_month = (day.month - 1) // 3 * 3 + 3
    if end_month == 12:
        return date(day.year, 12, 31)
    return date(day.year, end_month + 1, 1) - timedelta(days=1)
