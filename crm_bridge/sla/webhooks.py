"""Outgoing SLA webhooks: reminders and escalations, as generic JSON or Slack-compatible payloads.

The sender, its batching and its URL-withholding live in :mod:`crm_bridge.notify`, shared with
the daemon's alerts; this module keeps the SLA's event type and re-exports the rest, so existing
imports keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_bridge import notify
from crm_bridge.notify import MAX_EVENTS, json_payload

__all__ = ["MAX_EVENTS", "WebhookEvent", "WebhookSender", "json_payload", "slack_payload"]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One reminder or escalation; ``data`` is the generic JSON body of the event."""

    kind: str
    lead_id: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
    mention: str | None = None

    def item(self) -> dict[str, Any]:
        """The event in the generic JSON body."""
        return {"type": self.kind, "lead_id": self.lead_id, "text": self.text, **self.data}


def slack_payload(events: Sequence[WebhookEvent]) -> dict[str, Any]:
    """An incoming-webhook body: a ``text`` fallback plus one section block per event."""
    return notify.slack_payload(events, noun="SLA")


class WebhookSender(notify.WebhookSender[WebhookEvent]):
    """The shared sender, its Slack summaries naming "SLA events"."""

    noun = "SLA"
