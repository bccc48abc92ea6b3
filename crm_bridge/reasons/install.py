"""``crm-bridge reasons plan|install``: make both systems carry the taxonomy, idempotently.

Why plan and apply share one code path: the plan is computed from the same desired definitions
and the same reads the install uses, so what ``plan`` prints is what ``install`` does.  Apply
goes through the connectors' ``ensure_*`` methods, which compare before they write; a second
install therefore reports every step ``unchanged`` and sends no write at all.

What is installed (names come from :class:`~crm_bridge.reasons.taxonomy.ReasonsSettings`):

* CRM: a restricted picklist and a note field on opportunities (won + lost codes) and on leads
  (rejection + disqualification codes), plus validation rules refusing a close or a rejection
  without a reason, and a reason that ``requires_note`` without a note.
* Marketing: an enumeration property and a note on deals; on contacts the
  ``last_{win,loss,rejection}_reason`` enumerations and their date properties.

Codes dropped from the taxonomy are not sent; the connectors keep them as inactive values, so
historic records keep their reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crm_bridge.connector import Capability, Connector, FieldDefinition, PicklistValue
from crm_bridge.errors import CrmBridgeError
from crm_bridge.reasons.taxonomy import DEAL_CATEGORIES, LEAD_CATEGORIES, ReasonsSettings

__all__ = ["InstallPlan", "InstallStep", "RuleDefinition", "apply", "desired", "plan"]

Change = Literal["create", "update", "unchanged", "unknown", "manual"]
_DONE: dict[str, Change] = {"created": "create", "updated": "update", "unchanged": "unchanged"}


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    """A validation rule the CRM should enforce."""

    object: str
    name: str
    formula: str
    message: str


@dataclass(frozen=True, slots=True)
class InstallStep:
    """One field or rule on one side, and what installing it changes."""

    side: Literal["crm", "marketing"]
    connector: str
    kind: Literal["field", "rule"]
    target: str
    change: Change
    details: tuple[str, ...] = ()

    def render(self) -> str:
        """``create field Opportunity.Win_Loss_Reason__c (salesforce): + price; ...``."""
        verb = {
            "create": "create",
            "update": "update",
            "unchanged": "ok    ",
            "unknown": "ensure",
            "manual": "manual",
        }
        tail = f": {'; '.join(self.details)}" if self.details else ""
        return f"{verb[self.change]} {self.kind} {self.target} ({self.connector}){tail}"


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """Every step, in the order they are applied."""

    version: int
    steps: tuple[InstallStep, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> int:
        """Steps that would write (or wrote) something."""
        return sum(1 for s in self.steps if s.change in ("create", "update", "unknown"))

    @property
    def manual(self) -> int:
        """Steps an admin must do by hand (the connector cannot create fields)."""
        return sum(1 for s in self.steps if s.change == "manual")

    def lines(self) -> list[str]:
        """Printable lines, a summary last."""
        out = [s.render() for s in self.steps]
        tail = f", {self.manual} to create by hand" if self.manual else ""
        out.append(f"taxonomy version {self.version}: {self.changes} change(s){tail}")
        return out


@dataclass(frozen=True, slots=True)
class Desired:
    """What both sides should carry."""

    crm_fields: tuple[FieldDefinition, ...]
    crm_rules: tuple[RuleDefinition, ...]
    marketing_fields: tuple[FieldDefinition, ...]


def _values(settings: ReasonsSettings, categories: frozenset[str]) -> tuple[PicklistValue, ...]:
    return tuple(PicklistValue(code, spec.label) for code, spec in settings.codes_for(categories))


def _describe(settings: ReasonsSettings, categories: frozenset[str]) -> str:
    return (
        f"crm-bridge reason taxonomy v{settings.version}: "
        + ", ".join(sorted(categories))
        + ". Managed by `crm-bridge reasons install`."
    )


def _sf_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _any_pick(field_name: str, values: list[str]) -> str:
    parts = [f"ISPICKVAL({field_name}, {_sf_text(v)})" for v in values]
    return parts[0] if len(parts) == 1 else f"OR({', '.join(parts)})"


def desired(settings: ReasonsSettings) -> Desired:
    """The fields and rules the taxonomy asks for, per side."""
    crm = settings.crm_fields
    mk = settings.marketing_fields
    deal_values = _values(settings, DEAL_CATEGORIES)
    lead_values = _values(settings, LEAD_CATEGORIES)
    crm_fields = (
        FieldDefinition(
            crm.opportunity_object,
            crm.opportunity_reason_field,
            "Win/Loss Reason",
            "picklist",
            deal_values,
            description=_describe(settings, DEAL_CATEGORIES),
        ),
        FieldDefinition(
            crm.opportunity_object,
            crm.opportunity_note_field,
            "Win/Loss Note",
            "text",
            description="Details, required for reasons such as 'Other'.",
        ),
        FieldDefinition(
            crm.lead_object,
            crm.lead_reason_field,
            "Rejection Reason",
            "picklist",
            lead_values,
            description=_describe(settings, LEAD_CATEGORIES),
        ),
        FieldDefinition(
            crm.lead_object,
            crm.lead_note_field,
            "Rejection Note",
            "text",
            description="Details, required for reasons such as 'Other'.",
        ),
    )
    rules: list[RuleDefinition] = []
    if crm.validation_rules:
        closed = _any_pick(crm.stage_field, [*crm.won_stages, *crm.lost_stages])
        rejected = _any_pick(crm.lead_status_field, list(crm.rejected_statuses))
        rules.append(
            RuleDefinition(
                crm.opportunity_object,
                f"{crm.rule_prefix}Reason_Required",
                f"AND({closed}, ISBLANK(TEXT({crm.opportunity_reason_field})))",
                "Choose a Win/Loss Reason before closing the opportunity.",
            )
        )
        rules.append(
            RuleDefinition(
                crm.lead_object,
                f"{crm.rule_prefix}Reason_Required",
                f"AND({rejected}, ISBLANK(TEXT({crm.lead_reason_field})))",
                "Choose a Rejection Reason before rejecting or disqualifying the lead.",
            )
        )
        for obj, reason, note, cats in (
            (
                crm.opportunity_object,
                crm.opportunity_reason_field,
                crm.opportunity_note_field,
                DEAL_CATEGORIES,
            ),
            (crm.lead_object, crm.lead_reason_field, crm.lead_note_field, LEAD_CATEGORIES),
        ):
            noted = [c for c, spec in settings.codes_for(cats) if spec.requires_note]
            if noted:
                rules.append(
                    RuleDefinition(
                        obj,
                        f"{crm.rule_prefix}Reason_Note_Required",
                        f"AND({_any_pick(reason, noted)}, ISBLANK({note}))",
                        "This reason needs a note: say what happened.",
                    )
                )
    won = _values(settings, frozenset({"won"}))
    lost = _values(settings, frozenset({"lost"}))
    marketing_fields = (
        FieldDefinition(
            mk.deal_object,
            mk.deal_reason_field,
            "Win/Loss Reason",
            "picklist",
            deal_values,
            description=_describe(settings, DEAL_CATEGORIES),
        ),
        FieldDefinition(mk.deal_object, mk.deal_note_field, "Win/Loss Note", "text"),
        FieldDefinition(mk.contact_object, mk.last_win_reason, "Last Win Reason", "picklist", won),
        FieldDefinition(mk.contact_object, mk.last_win_date, "Last Win Reason Date", "text"),
        FieldDefinition(
            mk.contact_object, mk.last_loss_reason, "Last Loss Reason", "picklist", lost
        ),
        FieldDefinition(mk.contact_object, mk.last_loss_date, "Last Loss Reason Date", "text"),
        FieldDefinition(
            mk.contact_object,
            mk.last_rejection_reason,
            "Last Rejection Reason",
            "picklist",
            lead_values,
        ),
        FieldDefinition(
            mk.contact_object, mk.last_rejection_date, "Last Rejection Reason Date", "text"
        ),
    )
    return Desired(crm_fields, tuple(rules), marketing_fields)


# -- diffing ---------------------------------------------------------------------------------------


def _field_step(
    side: Literal["crm", "marketing"], connector: Connector[Any], wanted: FieldDefinition
) -> InstallStep:
    target = f"{wanted.object}.{wanted.name}"
    current = connector.field_definition(wanted.object, wanted.name)
    if current is None:
        extra = (f"{len(wanted.values)} values",) if wanted.kind == "picklist" else ("text",)
        return InstallStep(side, connector.name, "field", target, "create", extra)
    details: list[str] = []
    if current.label != wanted.label:
        details.append(f"label {current.label!r} -> {wanted.label!r}")
    if current.kind != wanted.kind:
        details.append(f"kind {current.kind} -> {wanted.kind} (refused: rename the field)")
    now = {v.value: v for v in current.values}
    names = {v.value for v in wanted.values}
    for v in wanted.values:
        before = now.get(v.value)
        if before is None:
            details.append(f"+ {v.value} ({v.label})")
        elif not before.active:
            details.append(f"reactivate {v.value}")
        elif before.label != v.label:
            details.append(f"relabel {v.value}: {before.label!r} -> {v.label!r}")
    for v in current.values:
        if v.value not in names and v.active:
            details.append(f"deactivate {v.value} (kept on existing records)")
    if wanted.kind == "picklist" and current.kind == "picklist" and not current.restricted:
        details.append("restrict to the listed values")
    if current.description != wanted.description and not details:
        details.append("description")
    change: Change = "update" if details else "unchanged"
    return InstallStep(side, connector.name, "field", target, change, tuple(details))


def _rule_step(connector: Connector[Any], rule: RuleDefinition) -> InstallStep:
    target = f"{rule.object}.{rule.name}"
    reader: Callable[[str, str], Mapping[str, Any] | None] | None = getattr(
        connector, "validation_rule", None
    )
    if reader is None:
        return InstallStep("crm", connector.name, "rule", target, "unknown", (rule.formula,))
    current = reader(rule.object, rule.name)
    if current is None:
        return InstallStep("crm", connector.name, "rule", target, "create", (rule.formula,))
    details = []
    if current.get("errorConditionFormula") != rule.formula:
        details.append(f"formula -> {rule.formula}")
    if current.get("errorMessage") != rule.message:
        details.append("message")
    if not current.get("active"):
        details.append("activate")
    return InstallStep(
        "crm", connector.name, "rule", target, "update" if details else "unchanged", tuple(details)
    )


def _require(connector: Connector[Any], capability: Capability, what: str) -> None:
    if capability not in connector.capabilities:
        raise CrmBridgeError(
            f"connector {connector.name!r} cannot {what} (no Capability.{capability.name})",
            connector=connector.name,
        )


def _manual_fields(
    settings: ReasonsSettings, marketing: Connector[Any], fields: tuple[FieldDefinition, ...]
) -> list[InstallStep]:
    """Marketing fields for an admin to create, when the connector has no field admin.

    Why not refuse: a marketing platform without a field-admin API (Marketo's REST API has
    none this connector uses) still takes the reasons as plain lead fields and static lists,
    so the install does the CRM side and lists what to create by hand.  Deal fields are only
    listed when deals are captured on the marketing side (``capture_deals``).
    """
    mk = settings.marketing_fields
    out: list[InstallStep] = []
    for f in fields:
        if f.object == mk.deal_object and not mk.capture_deals:
            continue
        kind = "text (string) field" if f.kind == "text" else "text (string) field of codes"
        out.append(
            InstallStep(
                "marketing",
                marketing.name,
                "field",
                f"{f.object}.{f.name}",
                "manual",
                (f"create a {kind} labelled {f.label!r} in {marketing.name}'s admin",),
            )
        )
    return out


def plan(
    settings: ReasonsSettings, *, crm: Connector[Any], marketing: Connector[Any]
) -> InstallPlan:
    """What an install would change; reads only."""
    want = desired(settings)
    _require(crm, Capability.PICKLIST_ADMIN, "install picklist fields")
    steps = [_field_step("crm", crm, f) for f in want.crm_fields]
    if want.crm_rules:
        _require(crm, Capability.VALIDATION_RULES, "install validation rules")
        steps.extend(_rule_step(crm, r) for r in want.crm_rules)
    if Capability.PICKLIST_ADMIN in marketing.capabilities:
        steps.extend(_field_step("marketing", marketing, f) for f in want.marketing_fields)
    else:
        steps.extend(_manual_fields(settings, marketing, want.marketing_fields))
    return InstallPlan(settings.version, tuple(steps))


def apply(
    settings: ReasonsSettings,
    *,
    crm: Connector[Any],
    marketing: Connector[Any],
    on_step: Callable[[InstallStep], None] | None = None,
) -> InstallPlan:
    """Install: fields first (rules refer to them), then rules; returns what was done.

    Each step's ``details`` come from the plan read just before it, its ``change`` from what the
    connector reports having done.
    """
    before = plan(settings, crm=crm, marketing=marketing)
    want = desired(settings)
    by_target = {(s.kind, s.target): s for s in before.steps}
    done: list[InstallStep] = []

    def record(kind: Literal["field", "rule"], target: str, result: str) -> None:
        planned = by_target[(kind, target)]
        change = _DONE[result]
        step = InstallStep(planned.side, planned.connector, kind, target, change, planned.details)
        done.append(step)
        if on_step is not None:
            on_step(step)

    for definition in want.crm_fields:
        record("field", f"{definition.object}.{definition.name}", crm.ensure_field(definition))
    for rule in want.crm_rules:
        result = crm.ensure_validation_rule(rule.object, rule.name, rule.formula, rule.message)
        record("rule", f"{rule.object}.{rule.name}", result)
    if Capability.PICKLIST_ADMIN in marketing.capabilities:
        for definition in want.marketing_fields:
            record(
                "field",
                f"{definition.object}.{definition.name}",
                marketing.ensure_field(definition),
            )
    else:
        for step in before.steps:
            if step.side == "marketing":
                done.append(step)
                if on_step is not None:
                    on_step(step)
    return InstallPlan(settings.version, tuple(done))
