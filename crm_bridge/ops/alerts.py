"""Alerts: a failed cycle, a tripped guard, an exhausted budget, a dead-letter spike, recovery.

Why alerts come from cycle results and not from the daemon loop: ``crm-bridge sync`` run by
cron fails the same way a daemon cycle does, and both must page someone.  :class:`Alerter` is a
:class:`~crm_bridge.ops.events.Sink`, so every cycle a :class:`~crm_bridge.session.Session`
runs reaches it.

Why repeats are held back: a daemon with a revoked token fails every minute; one message an hour
(``repeat_after_minutes``) says the same thing without training people to mute the channel.  A
pair that alerted and then succeeds sends one ``recovered``.  Delivery failures are logged (with
the webhook's name, never its URL) and do not fail the cycle.

What each alert means and what to do is in ``docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from crm_bridge.log import get_logger
from crm_bridge.notify import WebhookSender
from crm_bridge.ops.events import CycleResult, Sink
from crm_bridge.ops.settings import AlertKind, AlertSettings

__all__ = ["Alert", "AlertSender", "Alerter", "alerts_for"]

_log = get_logger("crm_bridge.alerts")

_FIX: dict[str, str] = {
    "cycle_failed": "see the error; `crm-bridge status` shows the last runs",
    "guard_tripped": (
        "check why so many deletes were planned; if intended, run "
        "`crm-bridge sync --allow-deletes` once or raise pairs.PAIR.max_delete_ratio"
    ),
    "budget_exhausted": (
        "the vendor's API allocation (or its reserve) is used up; the daemon resumes when it "
        "resets -- look for another integration spending it"
    ),
    "dead_letter_spike": "`crm-bridge dlq list --pair PAIR` shows the codes; fix and replay",
    "recovered": "nothing to do",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as a webhook event (:class:`crm_bridge.notify.Notice`)."""

    kind: AlertKind
    pair: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
    mention: str | None = None

    def item(self) -> dict[str, Any]:
        """The event in the generic JSON body."""
        return {
            "type": f"crm_bridge.{self.kind}",
            "pair": self.pair,
            "text": self.text,
            "fix": _FIX[self.kind],
            **self.data,
        }


class AlertSender(WebhookSender[Alert]):
    """The shared sender; a multi-alert Slack summary reads "N alert events from crm-bridge"."""

    noun = "alert"


def alerts_for(
    result: CycleResult, settings: AlertSettings, *, mask: Callable[[str], str] = str
) -> list[Alert]:
    """The alerts one cycle result raises (before repeat suppression), most severe first."""
    if result.plan_only:
        return []
    found: list[Alert] = []
    error = mask(result.error_text or "")
    base: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status,
        "at": result.finished_at.isoformat(),
    }
    if result.error is not None:
        base["error"] = error
        base["error_class"] = type(result.error).__name__
    if result.guard_tripped:
        found.append(
            Alert(
                "guard_tripped",
                result.pair,
                f"crm-bridge pair {result.pair}: a safety guard stopped the cycle, nothing was "
                f"written: {error}",
                base,
            )
        )
    elif result.budget_exhausted:
        found.append(
            Alert(
                "budget_exhausted",
                result.pair,
                f"crm-bridge pair {result.pair}: API budget exhausted, the cycle stopped: {error}",
                base,
            )
        )
    elif result.status != "ok":
        found.append(
            Alert(
                "cycle_failed",
                result.pair,
                f"crm-bridge pair {result.pair}: cycle {result.status} "
                f"({base.get('error_class')}): {error}",
                base,
            )
        )
    new = result.new_dead_letters
    if len(new) >= settings.dead_letter_spike:
        codes: dict[str, int] = {}
        for dl in new:
            codes[dl.error_code or "unknown"] = codes.get(dl.error_code or "unknown", 0) + 1
        top = ", ".join(f"{c}={n}" for c, n in sorted(codes.items(), key=lambda kv: -kv[1])[:5])
        found.append(
            Alert(
                "dead_letter_spike",
                result.pair,
                f"crm-bridge pair {result.pair}: {len(new)} records dead-lettered in one cycle "
                f"({top}); {result.open_dead_letters} open",
                {
                    **base,
                    "new_dead_letters": len(new),
                    "open_dead_letters": result.open_dead_letters,
                    "codes": codes,
                },
            )
        )
    return [a for a in found if a.kind in settings.send]


class Alerter(Sink):
    """Sends the alerts of each cycle through the configured webhooks."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        http: httpx.Client | None = None,
        mask: Callable[[str], str] = str,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mask = mask
        self.sent: list[Alert] = []
        self._last: dict[tuple[str, str], datetime] = {}
        self._alerting: set[str] = set()

    def cycle_done(self, result: CycleResult) -> None:
        """Work out the cycle's alerts, drop repeats, send the rest."""
        if result.plan_only or not self.settings.webhooks:
            return
        alerts = alerts_for(result, self.settings, mask=self.mask)
        failing = any(a.kind != "dead_letter_spike" for a in alerts) or result.status != "ok"
        if failing:
            self._alerting.add(result.pair)
        elif result.pair in self._alerting:
            self._alerting.discard(result.pair)
            self._last = {k: v for k, v in self._last.items() if k[0] != result.pair}
            if "recovered" in self.settings.send:
                alerts.append(
                    Alert(
                        "recovered",
                        result.pair,
                        f"crm-bridge pair {result.pair}: cycles succeed again",
                        {"run_id": result.run_id, "at": result.finished_at.isoformat()},
                    )
                )
        due = [a for a in alerts if self._due(a, result.finished_at)]
        if due:
            self._send(due)

    def _due(self, alert: Alert, now: datetime) -> bool:
        key = (alert.pair, alert.kind)
        last = self._last.get(key)
        if last is not None and now - last < timedelta(minutes=self.settings.repeat_after_minutes):
            _log.info("alert.held_back", kind=alert.kind, pair=alert.pair, last_sent=last)
            return False
        self._last[key] = now
        return True

    def _send(self, alerts: list[Alert]) -> None:
        sender = AlertSender(self.settings.webhooks, self.http)
        try:
            for name in self.settings.webhooks:
                for alert in alerts:
                    sender.queue(
                        name,
                        Alert(
                            alert.kind, alert.pair, alert.text, alert.data, self.settings.mention
                        ),
                    )
                delivered, error = sender.flush(name)
                for alert in delivered:
                    _log.info("alert.sent", kind=alert.kind, pair=alert.pair, webhook=name)
                self.sent.extend(delivered)
                if error is not None:
                    _log.error("alert.undelivered", webhook=name, error=error)
        finally:
            sender.close()
