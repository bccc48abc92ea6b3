"""Which facts mean which funnel stage, per pair: the ``[funnel.PAIR]`` section of the config.

Why per pair: the stage a lead status stands for is a sales-process decision ("Working -
Contacted" is SAL in one org, still MQL in another), and each pair connects one CRM's process to
one marketing tool's lifecycle.  Defaults come from the pair's preset (:data:`PRESET_DEFAULTS`),
so a pair built on ``hubspot_salesforce`` has a working funnel with no section at all; a section
overrides single keys.  Vendor field names appear only as defaults here (nothing outside
``connectors/`` knows a vendor's fields except through configuration).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PRESET_DEFAULTS", "FunnelSettings", "LifecycleStage", "funnel_settings"]

LifecycleStage = Literal["mql", "sal", "sql", "opportunity", "won"]


class FunnelSettings(BaseModel):
    """Stage definitions and the fields the backfill reads (CRM first, then marketing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lead_object: str = "Lead"
    opportunity_object: str = "Opportunity"
    contact_object: str = "Contact"
    lead_status_field: str = "Status"
    lead_created_is_mql: bool = Field(
        True,
        description="A lead's creation date is its MQL date (leads reach the CRM when they "
        "qualify); off when the CRM also holds unqualified leads.",
    )
    mql_statuses: list[str] = Field(
        default_factory=list, description="Lead statuses that mean a marketing-qualified lead."
    )
    sal_statuses: list[str] = Field(
        default_factory=list, description="Lead statuses that mean sales accepted the lead."
    )
    sql_statuses: list[str] = Field(
        default_factory=list, description="Lead statuses that mean sales qualified the lead."
    )
    rejected_statuses: list[str] = Field(default_factory=list)
    disqualified_statuses: list[str] = Field(default_factory=list)
    recycled_statuses: list[str] = Field(default_factory=list)
    converted_date_field: str | None = "ConvertedDate"
    converted_opportunity_field: str | None = "ConvertedOpportunityId"
    email_field: str = "Email"
    owner_field: str = "OwnerId"
    source_field: str | None = "LeadSource"
    campaign_field: str | None = None
    stage_field: str = "StageName"
    won_stages: list[str] = Field(default_factory=lambda: ["Closed Won"])
    lost_stages: list[str] = Field(default_factory=lambda: ["Closed Lost"])
    amount_field: str | None = "Amount"
    close_date_field: str = "CloseDate"
    created_field: str = "CreatedDate"
    map_contact_object: str = "contacts"
    map_email_field: str = "email"
    lifecycle_stages: dict[str, LifecycleStage] = Field(
        default_factory=dict, description="Marketing lifecycle stage -> funnel stage."
    )
    lifecycle_date_fields: list[str] = Field(
        default_factory=list,
        description="Where a lifecycle stage's entry date is read; {stage} is the stage value, "
        "the first non-empty one wins.",
    )
    map_source_field: str | None = None
    map_campaign_field: str | None = None
    map_owner_field: str | None = None
    engagement_field: str | None = Field(
        None, description="Number of content downloads / form fills on the marketing contact."
    )

    @model_validator(mode="after")
    def _statuses_mean_one_stage(self) -> FunnelSettings:
        seen: dict[str, str] = {}
        problems = []
        for key in (
            "mql_statuses",
            "sal_statuses",
            "sql_statuses",
            "rejected_statuses",
            "disqualified_statuses",
            "recycled_statuses",
        ):
            for status in getattr(self, key):
                if status in seen:
                    problems.append(f"lead status {status!r} is in both {seen[status]} and {key}")
                seen[status] = key
        for template in self.lifecycle_date_fields:
            if "{stage}" not in template:
                problems.append(f"lifecycle_date_fields entry {template!r} lacks {{stage}}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


_HUBSPOT_SALESFORCE: dict[str, Any] = {
    "mql_statuses": ["Open - Not Contacted"],
    "sal_statuses": ["Accepted", "Working - Contacted"],
    "sql_statuses": ["Closed - Converted"],
    "rejected_statuses": ["Rejected"],
    "disqualified_statuses": ["Closed - Not Converted"],
    "recycled_statuses": ["Recycled"],
    "campaign_field": "Campaign__c",
    # The preset's lead-status map sets HubSpot's lifecycle from Salesforce: "Working" and
    # "Accepted" make a salesqualifiedlead (so here it is the SAL), "Closed - Converted" an
    # opportunity (the conversion: SQL).  Opportunities themselves come from Salesforce.
    "lifecycle_stages": {
        "marketingqualifiedlead": "mql",
        "salesqualifiedlead": "sal",
        "opportunity": "sql",
        "customer": "won",
    },
    "lifecycle_date_fields": ["hs_v2_date_entered_{stage}", "hs_lifecyclestage_{stage}_date"],
    "map_source_field": "hs_analytics_source",
    "map_campaign_field": "hs_analytics_source_data_1",
    "map_owner_field": "hubspot_owner_id",
    "engagement_field": "num_conversion_events",
}

PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "hubspot_salesforce": _HUBSPOT_SALESFORCE,
    "none": {},
}
"""Per preset, the values a pair's funnel starts from (``[funnel.PAIR]`` keys override them)."""


def funnel_settings(preset: str, overrides: dict[str, Any] | None = None) -> FunnelSettings:
    """The funnel of a pair on ``preset`` with ``overrides`` (a ``[funnel.PAIR]`` table) applied."""
    base = dict(PRESET_DEFAULTS.get(preset, {}))
    return FunnelSettings.model_validate({**base, **(overrides or {})})
