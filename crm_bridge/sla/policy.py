"""SLA configuration: which leads enter, how long reps have, and what happens when they miss.

Everything an operator tunes lives here as frozen pydantic models under ``[sla]`` in the TOML, so
:func:`crm_bridge.config.load_config` reports a bad key the same way as every other section
(``sla.policies.inbound.accept.target_hours`` + env var + fix).  Vendor field names appear only
as *values* of this config (``owner_field = "OwnerId"``), never in the engine's code: the
architecture rule that only ``connectors/`` knows vendor names holds.

Why these shapes:

* **Teams own calendars, reps override them.**  The clock ticks in the owner's business time, so
  a rep's :class:`~crm_bridge.sla.calendar.RepOverrides` (time zone, hours, time off) are layered
  over the team calendar with :func:`~crm_bridge.sla.calendar.overlay`.
* **Reps are named by e-mail.**  E-mail is the one identity both CRMs share; the engine resolves
  it to a vendor owner id through ``Connector.owners()`` once per engine.
* **Webhook URLs are secrets.**  A Slack incoming-webhook URL *is* a credential, so it is a
  :class:`~pydantic.SecretStr` set through the environment or the secrets file
  (``CRM_BRIDGE_SLA__WEBHOOKS__<NAME>__URL``); :func:`~crm_bridge.config.load_config` refuses it
  in the TOML and adds it to the log-masking list, and reprs show ``**********``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from crm_bridge.notify import WebhookSettings  # moved there; re-exported here
from crm_bridge.sla.calendar import BusinessCalendar, RepOverrides, overlay

__all__ = [
    "BreachStep",
    "ClockName",
    "ClockSettings",
    "CrmSideSettings",
    "DisqualifySettings",
    "MarketingSideSettings",
    "MqlCriteria",
    "PolicySettings",
    "RecycleSettings",
    "RejectAction",
    "RemindSettings",
    "RepSettings",
    "SlaSettings",
    "TeamSettings",
    "WebhookSettings",
]

ClockName = Literal["accept", "first_touch"]
RejectAction = Literal["recycle", "disqualify"]
ActivityKind = Literal["call", "email", "meeting", "task", "note", "other"]
_WEBHOOK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _touch_kinds() -> list[ActivityKind]:
    return ["call", "email", "meeting"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CrmSideSettings(_Section):
    """Where the clock's lead lives (the CRM): connector, object and the fields the SLA reads."""

    connector: str = Field(description="Name of a configured connector, e.g. 'salesforce'.")
    object: str = Field(description="The lead object, e.g. 'Lead' (Salesforce) or 'contacts'.")
    owner_field: str = Field(description="Owner field, e.g. 'OwnerId' or 'hubspot_owner_id'.")
    status_field: str = Field(description="Lead status, e.g. 'Status' or 'hs_lead_status'.")
    accepted_statuses: list[str] = Field(min_length=1)
    rejected_statuses: list[str] = Field(default_factory=list)
    closed_statuses: list[str] = Field(
        default_factory=list,
        description="Statuses that end the SLA without action (converted, already recycled).",
    )
    reject_reason_field: str | None = Field(
        None, description="Field holding the rep's rejection reason code."
    )
    created_field: str | None = Field(
        None, description="When the lead became visible in the CRM (delay split), e.g. CreatedDate."
    )
    source_field: str | None = Field(None, description="Lead source on the CRM side (reports).")
    reassign_status: str | None = Field(
        None,
        description="Status written with a reassignment, so the new owner must accept again "
        "(e.g. 'Open - Not Contacted'); unset keeps the status.",
    )


class MarketingSideSettings(_Section):
    """The marketing platform: MQL criteria are read here, recycling writes back here.

    CRM leads are paired with marketing records through the sync engine's links
    (``link_pair`` / ``link_object``; the CRM id is the links' ``crm_id`` column).
    """

    connector: str
    object: str = Field(description="e.g. 'contacts'.")
    link_pair: str = Field(description="The sync pair whose links pair CRM leads with records.")
    link_object: str = Field(description="The pair's logical object, e.g. 'lead'.")
    lifecycle_field: str | None = None
    score_field: str | None = None
    source_field: str | None = None
    mql_date_field: str | None = Field(
        None, description="When the record became an MQL, e.g. a lifecycle-stage date property."
    )


class MqlCriteria(_Section):
    """Which leads enter a policy: all given criteria must hold (empty lists mean 'any')."""

    on: Literal["marketing", "crm"] = Field(
        "marketing", description="Evaluate on the linked marketing record or the CRM lead."
    )
    lifecycle_stages: list[str] = Field(default_factory=list)
    min_score: float | None = None
    sources: list[str] = Field(default_factory=list)
    lifecycle_field: str | None = Field(None, description="Only with on = 'crm'.")
    score_field: str | None = Field(None, description="Only with on = 'crm'.")


class ClockSettings(_Section):
    """One clock's target in business hours and when the owner is reminded (fraction of it)."""

    target_hours: float = Field(gt=0, le=24 * 365)
    remind_at: float | None = Field(
        0.75, gt=0, lt=1, description="Remind at this fraction of the target; unset: no reminder."
    )

    @property
    def target(self) -> timedelta:
        """The target as a duration of business time."""
        return timedelta(hours=self.target_hours)


class BreachStep(_Section):
    """One step of the breach chain, due ``after_hours`` business hours past the deadline."""

    action: Literal["escalate", "reassign", "recycle"]
    after_hours: float = Field(0.0, ge=0)


class RemindSettings(_Section):
    """How the owner is reminded: a CRM task and/or a webhook."""

    task: bool = True
    webhook: str | None = Field(None, description="Name of an [sla.webhooks] entry.")


class PolicySettings(_Section):
    """One SLA policy: entry criteria, two clocks, the breach chain and the reject path."""

    teams: list[str] = Field(min_length=1, description="Teams whose reps this policy covers.")
    mql: MqlCriteria = MqlCriteria()
    accept: ClockSettings | None = None
    first_touch: ClockSettings | None = None
    first_touch_kinds: list[ActivityKind] = Field(default_factory=_touch_kinds)
    remind: RemindSettings = RemindSettings()
    escalate_webhooks: list[str] = Field(default_factory=list)
    breach: list[BreachStep] = Field(default_factory=list)
    max_reassignments: int = Field(1, ge=0)
    reject_reasons: dict[str, RejectAction] = Field(
        default_factory=dict,
        description="Rejection reason code -> recycle | disqualify (the reason-code taxonomy).",
    )
    default_reject_action: RejectAction = "recycle"

    @model_validator(mode="after")
    def _has_a_clock(self) -> PolicySettings:
        if self.accept is None and self.first_touch is None:
            raise ValueError("a policy needs at least one clock: set accept or first_touch")
        return self

    @field_validator("breach")
    @classmethod
    def _ordered(cls, steps: list[BreachStep]) -> list[BreachStep]:
        hours = [s.after_hours for s in steps]
        if hours != sorted(hours):
            raise ValueError("breach steps must be listed in order of after_hours")
        for i, step in enumerate(steps):
            if step.action == "recycle" and i != len(steps) - 1:
                raise ValueError("recycle ends the chain: it must be the last step")
        return steps

    def clocks(self) -> dict[ClockName, ClockSettings]:
        """The configured clocks by name."""
        found: dict[ClockName, ClockSettings] = {}
        if self.accept is not None:
            found["accept"] = self.accept
        if self.first_touch is not None:
            found["first_touch"] = self.first_touch
        return found


class RepSettings(RepOverrides):
    """A rep: identity, capacity and availability, plus calendar overrides (see calendar docs)."""

    email: str
    name: str = ""
    cap: int | None = Field(None, ge=0, description="Most open SLA clocks at once (reassignment).")
    available: bool = Field(True, description="False: never picked by reassignment.")
    slack: str | None = Field(None, description="Slack member id, e.g. U012AB3CD, for mentions.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"not an e-mail address: {value!r}")
        return value.strip().lower()


class TeamSettings(_Section):
    """A team: its calendar, members (rep keys, the round-robin order) and manager."""

    calendar: str
    members: list[str] = Field(min_length=1)
    manager_email: str | None = None
    manager_slack: str | None = None
    default_cap: int | None = Field(None, ge=0)


class RecycleSettings(_Section):
    """Recycle to nurture: one coordinated change on both sides."""

    crm_status: str = Field(description="e.g. 'Recycled'.")
    owner_email: str = Field(description="The nurture queue / owner the lead goes back to.")
    crm_reason_field: str | None = None
    marketing_lifecycle: str | None = Field("lead", description="Marketing lifecycle stage.")
    marketing_lead_status: str | None = None
    marketing_status_field: str | None = None
    marketing_reason_field: str | None = None
    nurture_list: str | None = Field(None, description="Static list the record is added to.")
    clear_lifecycle_first: bool = Field(
        True, description="HubSpot only moves lifecycle stages backwards after a clear."
    )
    reason: str = "SLA breach"


class DisqualifySettings(_Section):
    """Disqualify (reject path): the CRM status and, optionally, the marketing lifecycle."""

    crm_status: str
    marketing_lifecycle: str | None = "other"


class SlaSettings(_Section):
    """The ``[sla]`` section."""

    crm: CrmSideSettings
    marketing: MarketingSideSettings | None = None
    calendars: dict[str, BusinessCalendar] = Field(min_length=1)
    reps: dict[str, RepSettings] = Field(min_length=1)
    teams: dict[str, TeamSettings] = Field(min_length=1)
    policies: dict[str, PolicySettings] = Field(min_length=1)
    webhooks: dict[str, WebhookSettings] = Field(default_factory=dict)
    recycle: RecycleSettings
    disqualify: DisqualifySettings | None = None
    initial_lookback_hours: float = Field(
        24.0, ge=0, description="How far back the first cycle reads lead changes."
    )
    activity_overlap_seconds: float = Field(
        300.0, ge=0, description="Re-read activities this far back (late-indexed touches)."
    )

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhook_names(cls, hooks: Any) -> Any:
        """Names are lower_snake_case because the URL can only come from an env var.

        Environment variable names are read case-insensitively (as lower case), so a webhook
        called ``Managers`` could never receive ``CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL``.
        Checked before the entries, so the rename is reported instead of a missing URL that no
        env var can supply.
        """
        if not isinstance(hooks, dict):
            return hooks  # pydantic reports the wrong type
        bad = [str(name) for name in hooks if not _WEBHOOK_NAME.match(str(name))]
        if bad:
            raise ValueError(
                f"webhook names must be lower_snake_case (their URL is set through "
                f"CRM_BRIDGE_SLA__WEBHOOKS__<NAME>__URL): rename {', '.join(map(repr, bad))}"
            )
        return hooks

    @model_validator(mode="after")
    def _references(self) -> SlaSettings:
        """Every name used must be defined; the message names the key to fix."""
        problems: list[str] = []
        for name, team in self.teams.items():
            if team.calendar not in self.calendars:
                problems.append(
                    f"teams.{name}.calendar: unknown calendar {team.calendar!r} "
                    f"(defined: {', '.join(sorted(self.calendars))})"
                )
            for member in team.members:
                if member not in self.reps:
                    problems.append(f"teams.{name}.members: unknown rep {member!r}")
        owners: dict[str, str] = {}
        for name, team in self.teams.items():
            for member in team.members:
                if member in owners and owners[member] != name:
                    problems.append(
                        f"teams.{name}.members: rep {member!r} is already in team "
                        f"{owners[member]!r} (a rep belongs to one team)"
                    )
                owners.setdefault(member, name)
        for name, policy in self.policies.items():
            for team_name in policy.teams:
                if team_name not in self.teams:
                    problems.append(f"policies.{name}.teams: unknown team {team_name!r}")
            hooks = [*policy.escalate_webhooks]
            if policy.remind.webhook is not None:
                hooks.append(policy.remind.webhook)
            for hook in hooks:
                if hook not in self.webhooks:
                    problems.append(
                        f"policies.{name}: unknown webhook {hook!r} (define [sla.webhooks.{hook}])"
                    )
            if policy.mql.on == "marketing" and self.marketing is None and _has_criteria(policy):
                problems.append(
                    f"policies.{name}.mql.on: 'marketing' needs an [sla.marketing] section"
                )
            wants_disqualify = "disqualify" in policy.reject_reasons.values() or (
                policy.default_reject_action == "disqualify"
            )
            if wants_disqualify and self.disqualify is None:
                problems.append(
                    f"policies.{name}.reject_reasons: disqualify needs [sla.disqualify]"
                )
        for key, team_name in self.team_of_rep.items():
            if key not in self.reps or self.teams[team_name].calendar not in self.calendars:
                continue  # already reported above
            try:
                self._rep_calendar(key)
            except ValidationError as exc:
                for err in exc.errors(include_url=False, include_input=False):
                    loc = ".".join(str(p) for p in err["loc"])
                    problems.append(f"reps.{key}{'.' + loc if loc else ''}: {err['msg']}")
        if problems:
            raise ValueError("; ".join(f"sla.{p}" for p in problems))
        return self

    # -- derived lookups (cached: the model is frozen) --------------------------------------------

    @cached_property
    def team_of_rep(self) -> dict[str, str]:
        """Rep key -> team name."""
        return {m: name for name, team in self.teams.items() for m in team.members}

    @cached_property
    def rep_by_email(self) -> dict[str, str]:
        """Lower-case e-mail -> rep key."""
        return {rep.email: key for key, rep in self.reps.items()}

    @cached_property
    def rep_calendars(self) -> dict[str, BusinessCalendar]:
        """Each team member's effective calendar (team calendar with the rep's overrides)."""
        return {key: self._rep_calendar(key) for key in self.team_of_rep}

    def _rep_calendar(self, key: str) -> BusinessCalendar:
        team_cal = self.calendars[self.teams[self.team_of_rep[key]].calendar]
        rep = self.reps[key]
        # Only the calendar fields: identity/capacity fields are not overrides.
        fields = rep.model_fields_set & set(RepOverrides.model_fields)
        overrides = RepOverrides.model_validate(rep.model_dump(include=fields))
        return overlay(team_cal, overrides)

    def cap_of(self, rep_key: str) -> int | None:
        """The rep's cap, or the team default."""
        rep = self.reps[rep_key]
        if rep.cap is not None:
            return rep.cap
        team = self.team_of_rep.get(rep_key)
        return self.teams[team].default_cap if team is not None else None


def _has_criteria(policy: PolicySettings) -> bool:
    mql = policy.mql
    return bool(mql.lifecycle_stages or mql.sources or mql.min_score is not None)
