"""The ``[sla]`` and ``[reasons]`` sections for HubSpot as the CRM and Marketo as marketing.

Only configuration: the SLA engine and the reason capture read every vendor name from here, so
HubSpot in the CRM role needs no code branch (docs/pairs.md shows the same tables as TOML).
Shared by tests/pairs, the demo's Marketo scenario mirrors it.
"""

from __future__ import annotations

from typing import Any

REP = "rick.rep@example.com"
NURTURE_OWNER = "mark.marketer@example.com"
ALWAYS = {day: ["00:00-23:59"] for day in
          ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}  # fmt: skip


def sla_section(**policy: Any) -> dict[str, Any]:
    """Accept within 4 business hours (reminder task at 3), recycle 1 hour after the deadline."""
    return {
        "crm": {
            "connector": "hubspot",
            "object": "contacts",
            "owner_field": "hubspot_owner_id",
            "status_field": "hs_lead_status",
            "accepted_statuses": ["IN_PROGRESS", "CONNECTED", "OPEN_DEAL"],
            "rejected_statuses": ["UNQUALIFIED"],
            "closed_statuses": ["BAD_TIMING"],
            "reject_reason_field": "crm_bridge_rejection_reason",
            "created_field": "createdate",
            "source_field": "hs_analytics_source",
        },
        "marketing": {
            "connector": "marketo",
            "object": "leads",
            "link_pair": "main",
            "link_object": "leads",
            "score_field": "leadScore",
            "source_field": "leadSource",
        },
        "calendars": {"always": {"timezone": "UTC", "holiday_country": None, "hours": ALWAYS}},
        "reps": {"rick": {"email": REP}},
        "teams": {"inbound": {"calendar": "always", "members": ["rick"]}},
        "policies": {
            "inbound": {
                "teams": ["inbound"],
                "mql": {"min_score": 50},
                "accept": {"target_hours": 4, "remind_at": 0.75},
                "remind": {"task": True},
                "breach": [{"action": "recycle", "after_hours": 1}],
                **policy,
            }
        },
        "recycle": {
            "crm_status": "BAD_TIMING",
            "owner_email": NURTURE_OWNER,
            "marketing_lifecycle": None,
            "clear_lifecycle_first": False,
            "marketing_status_field": "leadStatus",
            "marketing_lead_status": "Recycled",
            "nurture_list": "SLA nurture",
        },
    }


def reasons_section() -> dict[str, Any]:
    """Reason codes on HubSpot deals and lead status, pushed to Marketo leads and lists."""
    return {
        "version": 1,
        "crm": "hubspot",
        "marketing": "marketo",
        "codes": {
            "price": {"category": "lost", "label": "Price"},
            "competitor": {"category": "lost", "label": "Competitor"},
            "product_fit": {"category": "won", "label": "Product fit"},
            "not_icp": {"category": "lead_rejected", "label": "Not our ICP"},
        },
        "crm_fields": {
            "opportunity_object": "deals",
            "lead_object": "contacts",
            "contact_object": "contacts",
            "account_object": "companies",
            "stage_field": "dealstage",
            "won_stages": ["closedwon"],
            "lost_stages": ["closedlost"],
            "lead_status_field": "hs_lead_status",
            "rejected_statuses": {"UNQUALIFIED": "lead_rejected"},
            "opportunity_reason_field": "crm_bridge_deal_reason",
            "opportunity_note_field": "crm_bridge_deal_reason_note",
            "lead_reason_field": "crm_bridge_rejection_reason",
            "lead_note_field": "crm_bridge_rejection_note",
            "owner_field": "hubspot_owner_id",
            "email_field": "email",
            "account_field": "associatedcompanyid",
            "close_date_field": "closedate",
            "validation_rules": False,
        },
        "marketing_fields": {
            "contact_object": "leads",
            "email_field": "email",
            "last_win_reason": "lastWinReason",
            "last_win_date": "lastWinReasonDate",
            "last_loss_reason": "lastLossReason",
            "last_loss_date": "lastLossReasonDate",
            "last_rejection_reason": "lastRejectionReason",
            "last_rejection_date": "lastRejectionReasonDate",
        },
        "segments": {
            "lead_source": {"sources": ["hs_analytics_source", "marketing.leadSource"]},
            "engagement": {"sources": ["marketing.leadScore"], "buckets": [25, 50, 75]},
        },
    }


MARKETO_REASON_FIELDS = (
    "lastWinReason",
    "lastWinReasonDate",
    "lastLossReason",
    "lastLossReasonDate",
    "lastRejectionReason",
    "lastRejectionReasonDate",
)
"""Custom Marketo lead fields the reasons land in (an admin creates them: no REST field admin)."""
