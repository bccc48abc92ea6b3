"""Outgoing webhooks shared by the SLA (reminders, escalations) and the daemon's alerts.

Why one sender for both: an admin configures a Slack channel or an incident webhook once and
expects every crm-bridge message to arrive the same way -- same payload shapes, same batching,
same guarantee that the URL never shows up anywhere.  The SLA's module
(:mod:`crm_bridge.sla.webhooks`) re-exports these names, so nothing that imported them there
breaks.

Why batched: a cycle that finds 300 breaches must not send 300 POSTs to one Slack channel (Slack
rate-limits incoming webhooks to about one message per second).  Events are queued per webhook
and each webhook gets **one** POST per flush (chunked at ``MAX_EVENTS``).

Why the URL never appears anywhere: an incoming-webhook URL is a bearer credential.  It stays a
:class:`~pydantic.SecretStr` until the moment of sending; errors name the webhook (``managers``),
not its URL, and httpx exceptions (whose messages include the URL) are reported without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "MAX_EVENTS",
    "Notice",
    "WebhookSender",
    "WebhookSettings",
    "json_payload",
    "slack_payload",
]

MAX_EVENTS = 50
"""Events per POST (Slack allows 50 blocks per message)."""


class WebhookSettings(BaseModel):
    """An outgoing webhook.  ``url`` is a secret: set it through the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr
    format: Literal["json", "slack"] = "json"
    timeout_seconds: float = Field(10.0, gt=0, le=120)


class Notice(Protocol):
    """What the sender needs of an event: a line of text, whom to mention, and its JSON item."""

    @property
    def text(self) -> str:
        """The human sentence (Slack block text, and ``text`` in the JSON item)."""
        ...

    @property
    def mention(self) -> str | None:
        """A Slack member id to mention, if any."""
        ...

    def item(self) -> dict[str, Any]:
        """The event's object in the generic JSON body (``type`` first)."""
        ...


N = TypeVar("N", bound=Notice)


def json_payload(events: Sequence[Notice]) -> dict[str, Any]:
    """The generic JSON body: ``{"source": "crm-bridge", "events": [...]}``."""
    return {"source": "crm-bridge", "events": [e.item() for e in events]}


def slack_payload(events: Sequence[Notice], *, noun: str = "crm-bridge") -> dict[str, Any]:
    """An incoming-webhook body: a ``text`` fallback plus one section block per event."""
    blocks: list[dict[str, Any]] = []
    for e in events:
        who = f"<@{e.mention}> " if e.mention else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{who}{e.text}"}})
    summary = events[0].text if len(events) == 1 else f"{len(events)} {noun} events from crm-bridge"
    return {"text": summary, "blocks": blocks}


class WebhookSender(Generic[N]):
    """Queues events per webhook and flushes them in as few POSTs as possible.

    ``noun`` names the events in a multi-event Slack summary ("3 SLA events from crm-bridge").
    """

    noun = "crm-bridge"

    def __init__(
        self, webhooks: Mapping[str, WebhookSettings], http: httpx.Client | None = None
    ) -> None:
        self.webhooks = dict(webhooks)
        self._http = http
        self._own_http = http is None
        self.queued: dict[str, list[N]] = {}
        self.posts = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(webhooks={sorted(self.webhooks)})"

    @property
    def http(self) -> httpx.Client:
        """The HTTP client (created on first use; no proxies from the environment)."""
        if self._http is None:
            self._http = httpx.Client(trust_env=False)
        return self._http

    def queue(self, webhook: str, event: N) -> None:
        """Add an event for ``webhook`` (sent by :meth:`flush`)."""
        if webhook not in self.webhooks:
            raise KeyError(f"unknown webhook {webhook!r}")
        self.queued.setdefault(webhook, []).append(event)

    def flush(self, webhook: str) -> tuple[list[N], str | None]:
        """POST every queued event of ``webhook``: ``(delivered events, error or None)``.

        The queue is emptied either way; the caller decides what an undelivered event means
        (the SLA records only *delivered* steps, so the others come back next cycle).
        """
        events = self.queued.pop(webhook, [])
        settings = self.webhooks[webhook]
        delivered: list[N] = []
        for start in range(0, len(events), MAX_EVENTS):
            chunk = events[start : start + MAX_EVENTS]
            body = (
                slack_payload(chunk, noun=self.noun)
                if settings.format == "slack"
                else json_payload(chunk)
            )
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
