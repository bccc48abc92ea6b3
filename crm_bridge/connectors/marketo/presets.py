"""The Marketo pairs: Salesforce <-> Marketo and HubSpot (as the CRM) <-> Marketo.

Why people only: next to a CRM, Marketo's companies and opportunities are normally owned by
Marketo's *native* CRM sync (its opportunity and company APIs answer 1018 "CRM Enabled" and the
``sfdc*`` lead fields are read-only), and neither has a change feed.  So both presets sync one
object, ``leads`` (Marketo leads <-> the CRM's people), matched on e-mail; deals stay in the CRM,
where the reason capture reads them (docs/pairs.md).

Why no owner field: a Marketo lead has no assignable owner (``sfdcLeadOwnerId`` is written only by
the native Salesforce sync), so ownership stays a CRM matter and the SLA engine reads it there.

Value maps are CRM value -> Marketo value.  Marketo's ``leadStatus`` and ``leadSource`` are plain
strings (any value is stored), so the CRM's picklist vocabulary is what arrives on Marketo; the
reverse direction (lead source, owned by marketing) lands in the CRM's restricted picklist and is
mapped so Marketo's usual values are accepted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MARKETO_HUBSPOT", "MARKETO_SALESFORCE"]

# Salesforce LeadSource (restricted picklist) <- Marketo leadSource (free text, marketing owns it).
_SF_LEAD_SOURCE = {
    "Web": "Web",
    "Phone Inquiry": "Phone Inquiry",
    "Partner Referral": "Partner",
    "Purchased List": "Purchased List",
    "Other": "Event",
}
# HubSpot hs_lead_status (sales' working status) -> Marketo leadStatus (what nurture programs use).
_HS_LEAD_STATUS = {
    "NEW": "New",
    "OPEN": "Open",
    "IN_PROGRESS": "Working",
    "ATTEMPTED_TO_CONTACT": "Contacted",
    "CONNECTED": "Contacted - Connected",
    "OPEN_DEAL": "Qualified",
    "UNQUALIFIED": "Disqualified",
    "BAD_TIMING": "Recycled",
}
# HubSpot hs_analytics_source (an enumeration) <- Marketo leadSource.
_HS_SOURCE = {
    "ORGANIC_SEARCH": "Web",
    "PAID_SEARCH": "Paid Search",
    "REFERRALS": "Partner",
    "OFFLINE": "Event",
    "EMAIL_MARKETING": "Email",
    "SOCIAL_MEDIA": "Social",
    "PAID_SOCIAL": "Paid Social",
    "DIRECT_TRAFFIC": "Direct",
    "OTHER_CAMPAIGNS": "Other",
}


def _person_fields(crm: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The contact fields both pairs share; ``crm`` names them on the CRM side."""
    return {
        "email": {"crm": crm["email"], "map": "email", "kind": "email", "rule": "crm_wins"},
        "first_name": {"crm": crm["first_name"], "map": "firstName"},
        # Required by both CRMs' people: a blank from Marketo never clears it.
        "last_name": {"crm": crm["last_name"], "map": "lastName", "rule": "crm_wins_unless_blank"},
        "company": {"crm": crm["company"], "map": "company", "rule": "crm_wins_unless_blank"},
        "title": {"crm": crm["title"], "map": "title"},
        "phone": {"crm": crm["phone"], "map": "phone"},
    }


MARKETO_SALESFORCE: dict[str, dict[str, Any]] = {
    # Salesforce Person (Lead or Contact) <-> Marketo lead.  Marketo's native Salesforce sync, if
    # it is on, already does this: run one or the other for people (docs/pairs.md).
    "leads": {
        "crm_object": "Person",
        "map_object": "leads",
        "identity": "email",
        "fields": {
            **_person_fields(
                {
                    "email": "Email",
                    "first_name": "FirstName",
                    "last_name": "LastName",
                    "company": "Company",
                    "title": "Title",
                    "phone": "Phone",
                }
            ),
            "lead_source": {
                "crm": "LeadSource",
                "map": "leadSource",
                "rule": "map_wins",
                "direction": "map_to_crm",
                "values": _SF_LEAD_SOURCE,
            },
            # Sales owns the status; Marketo keeps the Salesforce vocabulary (as its native sync
            # would), so smart lists written for that keep working.
            "status": {
                "crm": "Status",
                "map": "leadStatus",
                "rule": "crm_wins",
                "direction": "crm_to_map",
            },
        },
    },
}

MARKETO_HUBSPOT: dict[str, dict[str, Any]] = {
    # HubSpot contacts in the CRM role <-> Marketo leads.
    "leads": {
        "crm_object": "contacts",
        "map_object": "leads",
        "identity": "email",
        "fields": {
            **_person_fields(
                {
                    "email": "email",
                    "first_name": "firstname",
                    "last_name": "lastname",
                    "company": "company",
                    "title": "jobtitle",
                    "phone": "phone",
                }
            ),
            "lead_source": {
                "crm": "hs_analytics_source",
                "map": "leadSource",
                "rule": "map_wins",
                "direction": "map_to_crm",
                "values": _HS_SOURCE,
            },
            "status": {
                "crm": "hs_lead_status",
                "map": "leadStatus",
                "rule": "crm_wins",
                "direction": "crm_to_map",
                "values": _HS_LEAD_STATUS,
            },
        },
    },
}
