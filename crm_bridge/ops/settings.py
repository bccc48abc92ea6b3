"""The ``[alerts]`` configuration section (kept import-light: :mod:`crm_bridge.config` loads it).

Example::

    [alerts]
    send = ["cycle_failed", "guard_tripped", "budget_exhausted", "dead_letter_spike", "recovered"]
    dead_letter_spike = 25          # new dead letters in one cycle that raise an alert
    repeat_after_minutes = 60       # the same alert for the same pair is not re-sent sooner

    [alerts.webhooks.ops]
    format = "slack"                # or "json"
    # url: CRM_BRIDGE_ALERTS__WEBHOOKS__OPS__URL (a secret: never in the TOML)

The webhooks are the same kind of entry as ``[sla.webhooks.*]`` and go through the same sender
(:mod:`crm_bridge.notify`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm_bridge.notify import WebhookSettings

__all__ = ["ALERT_KINDS", "AlertKind", "AlertSettings"]

AlertKind = Literal[
    "cycle_failed", "guard_tripped", "budget_exhausted", "dead_letter_spike", "recovered"
]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "cycle_failed",
    "guard_tripped",
    "budget_exhausted",
    "dead_letter_spike",
    "recovered",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AlertSettings(BaseModel):
    """Where the daemon (and ``crm-bridge sync``) send alerts, and which ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhooks: dict[str, WebhookSettings] = Field(
        default_factory=dict, description="[alerts.webhooks.NAME]: every alert goes to each."
    )
    send: list[AlertKind] = Field(
        default_factory=lambda: list(ALERT_KINDS), description="Which alerts to send."
    )
    dead_letter_spike: int = Field(
        25, ge=1, description="New dead letters in one cycle that raise dead_letter_spike."
    )
    repeat_after_minutes: float = Field(
        60.0, ge=0, description="The same alert for the same pair is not re-sent sooner."
    )
    mention: str | None = Field(None, description="A Slack member or group id to mention.")

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhook_names(cls, hooks: Any) -> Any:
        """lower_snake_case, because the URL can only come from an env var (read lower-cased)."""
        if not isinstance(hooks, dict):
            return hooks
        bad = [str(name) for name in hooks if not _NAME.match(str(name))]
        if bad:
            raise ValueError(
                "webhook names must be lower_snake_case (their URL is set through "
                f"CRM_BRIDGE_ALERTS__WEBHOOKS__<NAME>__URL): rename {', '.join(map(repr, bad))}"
            )
        return hooks
