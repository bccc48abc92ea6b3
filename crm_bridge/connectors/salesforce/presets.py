"""The HubSpot <-> Salesforce preset: a working map out of the box, extended or overridden in TOML.

HubSpot contacts <-> Salesforce Leads and deals <-> Opportunities, with the vocabularies of both
vendors' default picklists (lead status -> lifecycle stage, opportunity stage -> deal stage).  It
lives with the vendor whose objects it names, and registers in the ``crm_bridge.presets``
entry-point group like a third-party connector's preset would.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HUBSPOT_SALESFORCE"]

_LEAD_STATUS_TO_LIFECYCLE = {
    "Open - Not Contacted": "marketingqualifiedlead",
    "Working - Contacted": "salesqualifiedlead",
    "Accepted": "salesqualifiedlead",
    "Closed - Converted": "opportunity",
    "Closed - Not Converted": "other",
    "Rejected": "other",
    "Recycled": "lead",
}
_STAGE_MAP = {
    "Prospecting": "appointmentscheduled",
    "Qualification": "qualifiedtobuy",
    "Needs Analysis": "qualifiedtobuy",
    "Value Proposition": "presentationscheduled",
    "Id. Decision Makers": "decisionmakerboughtin",
    "Perception Analysis": "decisionmakerboughtin",
    "Proposal/Price Quote": "contractsent",
    "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon",
    "Closed Lost": "closedlost",
}

HUBSPOT_SALESFORCE: dict[str, dict[str, Any]] = {
    # Companies follow Salesforce accounts (sales owns them: marketing's companies are not
    # pushed into the CRM as accounts), matched on the web domain.  Synced before people, so a
    # contact's account is linked by the time its AccountId is translated.
    "accounts": {
        "crm_object": "Account",
        "map_object": "companies",
        "identity": "domain",
        "create_on_crm": False,
        "fields": {
            "name": {"crm": "Name", "map": "name", "rule": "crm_wins_unless_blank"},
            "domain": {
                "crm": "Website",
                "map": "domain",
                "kind": "domain",
                "rule": "crm_wins_unless_blank",
            },
            "phone": {"crm": "Phone", "map": "phone", "rule": "crm_wins_unless_blank"},
            "city": {"crm": "BillingCity", "map": "city", "rule": "crm_wins_unless_blank"},
            "country": {
                "crm": "BillingCountry",
                "map": "country",
                "rule": "crm_wins_unless_blank",
            },
            "employees": {
                "crm": "NumberOfEmployees",
                "map": "numberofemployees",
                "kind": "number",
                "rule": "crm_wins_unless_blank",
            },
            "annual_revenue": {
                "crm": "AnnualRevenue",
                "map": "annualrevenue",
                "kind": "number",
                "rule": "crm_wins_unless_blank",
            },
            "owner": {
                "crm": "OwnerId",
                "map": "hubspot_owner_id",
                "kind": "owner",
                "rule": "crm_wins",
                "direction": "crm_to_map",
            },
        },
    },
    "leads": {
        "crm_object": "Person",
        "map_object": "contacts",
        "identity": "email",
        "fields": {
            "email": {"crm": "Email", "map": "email", "kind": "email", "rule": "crm_wins"},
            "first_name": {"crm": "FirstName", "map": "firstname"},
            "last_name": {
                "crm": "LastName",
                "map": "lastname",
                "rule": "crm_wins_unless_blank",
            },
            "company": {"crm": "Company", "map": "company", "rule": "crm_wins_unless_blank"},
            "title": {"crm": "Title", "map": "jobtitle"},
            "phone": {"crm": "Phone", "map": "phone"},
            "lead_source": {
                "crm": "LeadSource",
                "map": "hs_analytics_source",
                "rule": "map_wins",
                "direction": "map_to_crm",
                "values": {
                    "Web": "ORGANIC_SEARCH",
                    "Advertisement": "PAID_SEARCH",
                    "Partner Referral": "REFERRALS",
                    "Phone Inquiry": "OFFLINE",
                    "Other": "OTHER_CAMPAIGNS",
                },
            },
            "status": {
                "crm": "Status",
                "map": "lifecyclestage",
                "rule": "crm_wins",
                "direction": "crm_to_map",
                "values": _LEAD_STATUS_TO_LIFECYCLE,
            },
            "owner": {
                "crm": "OwnerId",
                "map": "hubspot_owner_id",
                "kind": "owner",
                "rule": "crm_wins",
            },
            # A contact's account (a lead has none) is its HubSpot primary company.  One way:
            # HubSpot associates contacts with companies by e-mail domain on its own, and
            # sales decides which account a person belongs to.  A person the bridge creates
            # as a Contact (person_create_as = "Contact") starts under the account of the
            # marketing person's company, when that company is linked.
            "account": {
                "crm": "AccountId",
                "map": "associatedcompanyid",
                "kind": "reference",
                "refers_to": "accounts",
                "rule": "crm_wins_unless_blank",
                "direction": "crm_to_map",
                "on_create": True,
            },
        },
    },
    "deals": {
        "crm_object": "Opportunity",
        "map_object": "deals",
        "identity": None,
        "create_on_crm": False,
        "fields": {
            "name": {"crm": "Name", "map": "dealname", "rule": "crm_wins"},
            "stage": {
                "crm": "StageName",
                "map": "dealstage",
                "rule": "crm_wins",
                "values": _STAGE_MAP,
            },
            "amount": {"crm": "Amount", "map": "amount", "kind": "number", "rule": "crm_wins"},
            "close_date": {
                "crm": "CloseDate",
                "map": "closedate",
                "kind": "date",
                "rule": "crm_wins",
            },
            "owner": {
                "crm": "OwnerId",
                "map": "hubspot_owner_id",
                "kind": "owner",
                "rule": "crm_wins",
            },
            # The people on a deal: Salesforce's contact roles, HubSpot's deal-contact
            # associations (both served by the connectors as a set of ids).  So a reason pushed
            # from a deal reaches the people the rep put on it, through the sync's own links.
            "contacts": {
                "crm": "OpportunityContactRoles.ContactId",
                "map": "associations.contacts",
                "kind": "references",
                "refers_to": "leads",
                "rule": "crm_wins",
            },
        },
    },
}
