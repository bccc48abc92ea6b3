"""Webhook payloads (generic JSON, Slack) and delivery, against respx; URLs never leak."""

from __future__ import annotations

import json

import httpx
import respx
from pydantic import SecretStr

from crm_bridge.sla.policy import WebhookSettings
from crm_bridge.sla.webhooks import MAX_EVENTS, WebhookEvent, WebhookSender

URL = "https://hooks.slack.test/services/T1/B2/very-secret"


def sender(fmt: str = "slack") -> WebhookSender:
    hooks = {"managers": WebhookSettings(url=SecretStr(URL), format=fmt)}  # type: ignore[arg-type]
    return WebhookSender(hooks, httpx.Client())


def event(n: int = 1) -> WebhookEvent:
    return WebhookEvent(
        kind="sla.escalation",
        lead_id=f"00Q{n}",
        text=f"SLA breach on lead 00Q{n}",
        data={"elapsed_business_minutes": 480, "target_business_minutes": 480},
        mention="UMARIA",
    )


@respx.mock
def test_slack_payload_is_one_post_with_a_block_per_event() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, text="ok"))
    s = sender()
    for n in range(3):
        s.queue("managers", event(n))
    delivered, error = s.flush("managers")
    assert error is None and len(delivered) == 3
    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert body["text"] == "3 SLA events from crm-bridge"
    assert body["blocks"][0]["text"]["text"] == "<@UMARIA> SLA breach on lead 00Q0"
    assert all(b["type"] == "section" for b in body["blocks"])


@respx.mock
def test_generic_json_payload_carries_the_clock_math() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(204))
    s = sender("json")
    s.queue("managers", event())
    s.flush("managers")
    body = json.loads(route.calls[0].request.content)
    assert body["source"] == "crm-bridge"
    [e] = body["events"]
    assert e["type"] == "sla.escalation"
    assert e["lead_id"] == "00Q1"
    assert e["elapsed_business_minutes"] == 480


@respx.mock
def test_large_batches_are_chunked_and_partial_failures_reported() -> None:
    responses = iter([httpx.Response(200), httpx.Response(503)])
    respx.post(URL).mock(side_effect=lambda request: next(responses))
    s = sender()
    for n in range(MAX_EVENTS + 5):
        s.queue("managers", event(n))
    delivered, error = s.flush("managers")
    assert len(delivered) == MAX_EVENTS  # the first chunk went through
    assert error == "webhook 'managers' answered HTTP 503"
    assert s.posts == 2


@respx.mock
def test_transport_errors_never_show_the_url() -> None:
    respx.post(URL).mock(side_effect=httpx.ConnectError(f"cannot connect to {URL}"))
    s = sender()
    s.queue("managers", event())
    delivered, error = s.flush("managers")
    assert delivered == []
    assert error is not None and "ConnectError" in error
    assert "very-secret" not in error
    assert "very-secret" not in repr(s)
