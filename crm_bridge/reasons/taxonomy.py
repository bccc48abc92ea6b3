"""The reason-code taxonomy and everything else the ``[reasons]`` TOML section configures.

Why the taxonomy lives in the TOML rather than in either CRM: the same codes must exist on both
sides (a Salesforce restricted picklist, a HubSpot enumeration), in reports and in list names, and
they change over time.  One versioned definition, validated like the rest of the config, is what
``crm-bridge reasons install`` makes both sides agree with.

Codes are stable machine values (``price``) -- they are the picklist API names and enumeration
values -- while labels are free to change.  A retired code is never deleted: it moves to
``deprecated`` with its replacement, installers deactivate it (historic records keep it) and
capture maps it to the replacement while counting it.

Vendor field names appear here only as *defaults* of mapping settings (architecture rule: nothing
outside ``connectors/`` knows a vendor's fields except through configuration).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CATEGORIES",
    "Category",
    "CrmReasonSettings",
    "MarketingReasonSettings",
    "ReasonCode",
    "ReasonsSettings",
    "SegmentSpec",
]

Category = Literal["won", "lost", "lead_rejected", "disqualified"]
CATEGORIES: tuple[Category, ...] = ("won", "lost", "lead_rejected", "disqualified")
DEAL_CATEGORIES: frozenset[str] = frozenset({"won", "lost"})
LEAD_CATEGORIES: frozenset[str] = frozenset({"lead_rejected", "disqualified"})
CATEGORY_LABELS: dict[str, str] = {
    "won": "Won",
    "lost": "Lost",
    "lead_rejected": "Rejected",
    "disqualified": "Disqualified",
}
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReasonCode(_Section):
    """One active code: which outcome it explains, how reps see it, and whether a note is due."""

    category: Category = Field(description="won, lost, lead_rejected or disqualified.")
    label: str = Field(min_length=1, max_length=80, description="What reps see, e.g. 'Price'.")
    description: str = Field("", max_length=1000, description="Help text for reps.")
    requires_note: bool = Field(
        False, description="The rep must also fill the note field (e.g. for 'Other')."
    )


class SegmentSpec(_Section):
    """A report dimension: where its value is read, and optional numeric buckets.

    ``sources`` are tried in order; the first non-empty value wins.  ``Field`` reads the closed
    record itself, ``account.Field`` the opportunity's account, ``marketing.property`` the
    marketing contact of the first person involved.  With ``combine = "path"`` every non-empty
    source contributes its label (``labels``, same order) and the value is the path joined by
    ``>`` -- e.g. lifecycle stage dates giving ``lead>mql>sql``.
    """

    sources: list[str] = Field(min_length=1)
    buckets: list[float] | None = Field(
        None, description="Ascending bucket edges for numbers: [10, 50] -> <10, 10-49, 50+."
    )
    combine: Literal["first", "path"] = "first"
    labels: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SegmentSpec:
        if self.buckets is not None and self.buckets != sorted(set(self.buckets)):
            raise ValueError("buckets must be strictly ascending")
        if self.labels is not None and len(self.labels) != len(self.sources):
            raise ValueError("labels must name every source")
        return self


def _default_segments() -> dict[str, SegmentSpec]:
    return {
        "lead_source": SegmentSpec(sources=["LeadSource", "marketing.hs_analytics_source"]),
        "campaign": SegmentSpec(sources=["Campaign__c", "marketing.hs_analytics_source_data_1"]),
        "industry": SegmentSpec(sources=["Industry", "account.Industry"]),
        "company_size": SegmentSpec(
            sources=["NumberOfEmployees", "account.NumberOfEmployees"],
            buckets=[10, 50, 250, 1000],
        ),
        "lifecycle_path": SegmentSpec(sources=["marketing.lifecyclestage"]),
        "engagement": SegmentSpec(sources=["marketing.num_conversion_events"], buckets=[1, 3, 6]),
    }


LeadCategory = Literal["lead_rejected", "disqualified"]


def _default_rejected() -> dict[str, LeadCategory]:
    return {"Rejected": "lead_rejected", "Closed - Not Converted": "disqualified"}


class CrmReasonSettings(_Section):
    """Where outcomes and reasons live on the CRM (Salesforce by default)."""

    opportunity_object: str = "Opportunity"
    lead_object: str = "Lead"
    contact_object: str = "Contact"
    account_object: str = "Account"
    stage_field: str = "StageName"
    won_stages: list[str] = Field(default_factory=lambda: ["Closed Won"], min_length=1)
    lost_stages: list[str] = Field(default_factory=lambda: ["Closed Lost"], min_length=1)
    lead_status_field: str = "Status"
    rejected_statuses: dict[str, LeadCategory] = Field(default_factory=_default_rejected)
    opportunity_reason_field: str = "Win_Loss_Reason__c"
    opportunity_note_field: str = "Win_Loss_Note__c"
    lead_reason_field: str = "Rejection_Reason__c"
    lead_note_field: str = "Rejection_Note__c"
    owner_field: str = "OwnerId"
    email_field: str = "Email"
    account_field: str = "AccountId"
    close_date_field: str = "CloseDate"
    validation_rules: bool = Field(
        True, description="Install rules that refuse a close/rejection without a reason."
    )
    rule_prefix: str = Field("CrmBridge_", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")


class MarketingReasonSettings(_Section):
    """Where reasons land on the marketing side (HubSpot by default)."""

    contact_object: str = "contacts"
    deal_object: str = "deals"
    email_field: str = "email"
    capture_deals: bool = Field(
        False,
        description="Also capture deals closed in the marketing tool (off when deals are "
        "synced from the CRM, which would count them twice).",
    )
    deal_stage_field: str = "dealstage"
    won_stages: list[str] = Field(default_factory=lambda: ["closedwon"])
    lost_stages: list[str] = Field(default_factory=lambda: ["closedlost"])
    deal_reason_field: str = "crm_bridge_deal_reason"
    deal_note_field: str = "crm_bridge_deal_reason_note"
    owner_field: str = "hubspot_owner_id"
    close_date_field: str = "closedate"
    last_win_reason: str = "last_win_reason"
    last_win_date: str = "last_win_reason_date"
    last_loss_reason: str = "last_loss_reason"
    last_loss_date: str = "last_loss_reason_date"
    last_rejection_reason: str = "last_rejection_reason"
    last_rejection_date: str = "last_rejection_reason_date"
    lists: bool = Field(True, description="Keep one static list per reason code.")
    list_name: str = Field(
        "{category} \u2013 {label}", description="List name template: {category}, {label}, {code}."
    )


class ReasonsSettings(_Section):
    """The ``[reasons]`` section: the taxonomy, the two connectors, expiry and mappings."""

    version: int = Field(ge=1, description="Bump on every taxonomy change (shown by plan).")
    crm: str = Field("salesforce", description="Connector holding opportunities and leads.")
    marketing: str = Field("hubspot", description="Connector that receives the reasons.")
    codes: dict[str, ReasonCode] = Field(min_length=1)
    deprecated: dict[str, str] = Field(
        default_factory=dict, description="Retired code -> the active code that replaces it."
    )
    list_expiry_days: int | None = Field(
        None, ge=1, description="Remove list members this many days after they were added."
    )
    batch_size: int = Field(100, ge=1, le=1000, description="Records per capture batch.")
    crm_fields: CrmReasonSettings = CrmReasonSettings()
    marketing_fields: MarketingReasonSettings = MarketingReasonSettings()
    segments: dict[str, SegmentSpec] = Field(default_factory=_default_segments)

    @model_validator(mode="after")
    def _taxonomy_is_consistent(self) -> ReasonsSettings:
        problems: list[str] = []
        for code in self.codes:
            if not _CODE.match(code):
                problems.append(f"code {code!r} must be lower_snake_case, at most 40 characters")
        for old, new in self.deprecated.items():
            if not _CODE.match(old):
                problems.append(f"deprecated code {old!r} must be lower_snake_case")
            if old in self.codes:
                problems.append(f"code {old!r} is both active and deprecated")
            if new not in self.codes:
                problems.append(f"deprecated code {old!r} maps to {new!r}, which is not active")
        labels: dict[tuple[str, str], str] = {}
        for code, spec in self.codes.items():
            key = (spec.category, spec.label.casefold())
            if key in labels:
                problems.append(
                    f"codes {labels[key]!r} and {code!r} share the label {spec.label!r}"
                )
            labels[key] = code
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- lookups ---------------------------------------------------------------------------------

    def codes_for(self, categories: frozenset[str]) -> Iterator[tuple[str, ReasonCode]]:
        """Active codes of ``categories``, in TOML order."""
        for code, spec in self.codes.items():
            if spec.category in categories:
                yield code, spec

    def deprecated_for(self, categories: frozenset[str]) -> Iterator[tuple[str, str]]:
        """``(old, replacement)`` whose replacement belongs to ``categories``."""
        for old, new in self.deprecated.items():
            if self.codes[new].category in categories:
                yield old, new

    def resolve(self, code: str) -> tuple[str, bool] | None:
        """``(active code, was_deprecated)`` for a stored value, or None when unknown."""
        if code in self.codes:
            return code, False
        if code in self.deprecated:
            return self.deprecated[code], True
        return None

    def label(self, code: str) -> str:
        """The label of an active code (the code itself when unknown)."""
        spec = self.codes.get(code)
        return spec.label if spec is not None else code

    def list_name(self, code: str) -> str:
        """The marketing list a person lands in for ``code`` (e.g. "Lost \u2013 Price", with an en dash)."""
        spec = self.codes[code]
        return self.marketing_fields.list_name.format(
            category=CATEGORY_LABELS[spec.category], label=spec.label, code=code
        )
