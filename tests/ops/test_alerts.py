"""Alerts reach a local HTTP receiver through the shared webhook sender; repeats are held back."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from crm_bridge.errors import AuthError, RateLimitedError, SyncAbortedError
from crm_bridge.notify import WebhookSettings
from crm_bridge.ops.alerts import Alerter
from crm_bridge.ops.settings import AlertSettings
from tests.ops.conftest import JsonLog, Receiver
from tests.sync.emulated import Emulated, Make


def alerter(e: Emulated, receiver: Receiver, fmt: str = "json", **settings: object) -> Alerter:
    hooks = {"ops": WebhookSettings(url=SecretStr(receiver.url), format=fmt)}  # type: ignore[arg-type]
    sink = Alerter(AlertSettings(webhooks=hooks, **settings))  # type: ignore[arg-type]
    e.session.tracker.add(sink)
    return sink


def test_a_failed_cycle_alerts_once_then_recovery_is_announced(
    make: Make, receiver: Receiver, json_log: JsonLog
) -> None:
    e = make()
    alerter(e, receiver)
    e.hubspot.control("POST", "faults", {"path": "/", "status": 401, "times": 1000})

    with pytest.raises(AuthError):
        e.runner.run_cycle()
    (alert,) = receiver.events()
    assert alert["type"] == "crm_bridge.cycle_failed" and alert["pair"] == "main"
    assert alert["error_class"] == "AuthError" and alert["status"] == "failed"
    assert "crm-bridge status" in alert["fix"]

    e.advance(120)  # well inside repeat_after_minutes
    with pytest.raises(AuthError):
        e.runner.run_cycle()
    assert len(receiver.events()) == 1  # held back
    assert json_log.events("alert.held_back")

    e.hubspot.control("DELETE", "faults")
    e.advance(1)
    e.runner.run_cycle()
    assert [a["type"] for a in receiver.events()] == [
        "crm_bridge.cycle_failed",
        "crm_bridge.recovered",
    ]
    assert receiver.url not in json_log.text  # the URL is a credential
    assert json_log.events("alert.sent")[0]["webhook"] == "ops"


def test_a_tripped_guard_and_a_dead_letter_spike_alert_in_slack_format(
    make: Make, receiver: Receiver
) -> None:
    e = make(pair={"delete_guard_floor": 0, "max_delete_ratio": 0.2})
    alerter(e, receiver, fmt="slack", dead_letter_spike=1, mention="UOPS")
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    e.create_lead("orphan@lead.example", OwnerId=solo)
    kept = e.create_lead("kept@lead.example")
    e.advance(1)
    e.cycle()
    (spike,) = receiver.bodies
    assert "1 records dead-lettered in one cycle (OWNER_NOT_FOUND=1)" in spike["text"]
    assert spike["blocks"][0]["text"]["text"].startswith("<@UOPS> crm-bridge pair main")

    e.delete_lead(kept)
    e.advance(1)
    with pytest.raises(SyncAbortedError):
        e.runner.run_cycle()
    guard = receiver.bodies[-1]
    assert "a safety guard stopped the cycle" in guard["text"]
    assert "max_delete_ratio" in guard["text"]


def test_an_exhausted_daily_budget_alerts(make: Make, receiver: Receiver) -> None:
    e = make()
    alerter(e, receiver)
    e.crm.budget.observe_usage(950, 1000)  # the last 10% is the reserve: no call is allowed

    with pytest.raises(RateLimitedError):
        e.runner.run_cycle()
    (alert,) = receiver.events()
    assert alert["type"] == "crm_bridge.budget_exhausted"
    assert "budget reached" in alert["error"]


def test_only_the_configured_alerts_are_sent_and_delivery_failures_are_logged(
    make: Make, receiver: Receiver, json_log: JsonLog
) -> None:
    e = make()
    alerter(e, receiver, send=["guard_tripped"])
    e.hubspot.control("POST", "faults", {"path": "/", "status": 401, "times": 1000})
    with pytest.raises(AuthError):
        e.runner.run_cycle()
    assert receiver.bodies == []

    e.session.tracker.sinks.pop()
    alerter(e, receiver)
    receiver.status = 500
    e.advance(1)
    with pytest.raises(AuthError):
        e.runner.run_cycle()
    (undelivered,) = json_log.events("alert.undelivered")
    assert undelivered["error"] == "webhook 'ops' answered HTTP 500"
