"""Outgoing SLA webhooks: reminders and escalations, as generic JSON or Slack-compatible payloads.

Why batched: a cycle that finds 300 breaches must not send 300 POSTs to one Slack channel (Slack
rate-limits incoming webhooks to about one message per second).  Events are queued per webhook
during the cycle and each webhook gets **one** POST per cycle (chunked at ``MAX_EVENTS``).

Why the URL never appears anywhere: an incoming-webhook URL is a bearer credential.  It stays a
:class:`~pydantic.SecretStr` until the moment of sending; errors name the webhook (``managers``),
not its URL, and httpx exceptions (whose messages include the URL) are re-raised without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from crm_bridge.sla.policy import WebhookSettings

__all__ = ["MAX_EVENTS", "WebhookEvent", "WebhookSender", "json_payload", "slack_payload"]

MAX_EVENTS = 50
"""Events per POST (Slack allows 50 blocks per message)."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One reminder or escalation; ``data`` is the generic JSON body of the event."""

    kind: str
    lead_id: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
    mention: str | None = None


def json_payload(events: Sequence[WebhookEvent]) -> dict[str, Any]:
    """The generic JSON body: ``{"source": "crm-bridge", "events": [...]}``."""
    return {
        "source": "crm-bridge",
        "events": [
            {"type": e.kind, "lead_id": e.lead_id, "text": e.text, **e.data} for e in events
        ],
    }


def slack_payload(events: Sequence[WebhookEvent]) -> dict[str, Any]:
    """An incoming-webhook body: a ``text`` fallback plus one section block per event."""
    blocks: list[dict[str, Any]] = []
    for e in events:
        who = f"<@{e.mention}> " if e.mention else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{who}{e.text}"}})
    summary = events[0].text if len(events) == 1 else f"{len(events)} SLA events from crm-bridge"
    return {"text": summary, "blocks": blocks}


class WebhookSender:
    """Queues events per webhook and flushes them in as few POSTs as possible."""

    def __init__(
        self, webhooks: Mapping[str, WebhookSettings], http: httpx.Client | None = None
    ) -> None:
        self.webhooks = dict(webhooks)
        self._http = http
        self._own_http = http is None
        self.queued: dict[str, list[WebhookEvent]] = {}
        self.posts = 0

    def __repr__(self) -> str:
        return f"WebhookSender(webhooks={sorted(self.webhooks)})"

    @property
    def http(self) -> httpx.Client:
        """The HTTP client (created on first use; no proxies from the environment)."""
        if self._http is None:
            self._http = httpx.Client(trust_env=False)
        return self._http

    def queue(self, webhook: str, event: WebhookEvent) -> None:
        """Add an event for ``webhook`` (sent by :meth:`flush`)."""
        if webhook not in self.webhooks:
            raise KeyError(f"unknown webhook {webhook!r}")
        self.queued.setdefault(webhook, []).append(event)

    def flush(self, webhook: str) -> tuple[list[WebhookEvent], str | None]:
        """POST every queued event of ``webhook``: ``(delivered events, error or None)``.

        The queue is emptied either way; the caller records only *delivered* steps in the
        ledger, so undelivered ones come back next cycle (at-least-once, never silently lost).
        """
        events = self.queued.pop(webhook, [])
        settings = self.webhooks[webhook]
        delivered: list[WebhookEvent] = []
        for start in range(0, len(events), MAX_EVENTS):
            chunk = events[start : start + MAX_EVENTS]
            body = slack_payload(chunk) if settings.format == "slack" else json_payload(chunk)
            self.posts += 1
            try:
                response = self.http.post(
                    settings.url.get_secret_value(), json=body, timeout=settings.timeout_seconds
                )
            except httpx.HTTPError as exc:
                return delivered, f"webhook {webhook!r}: {type(exc).__name__} (URL withheld)"
            if response.status_code >= 300:
                return delivered, f"webhook {webhook!r} answered HTTP {response.status_code}"
            delivered.extend(chunk)
        return delivered, None

    def close(self) -> None:
        """Close the HTTP client if we created it."""
        if self._own_http and self._http is not None:
            self._http.close()
            self._http = None
