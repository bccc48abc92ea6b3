"""Faults behind the handler (``after_apply``), body matching (``body_regex``) and the hit log.

These are what a crash test needs: a write the emulator has *applied* whose answer the client
never gets, picked out precisely (the N-th Collections write, not the query before it), and a way
to see the moment it is applied without sleeping.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpx
import pytest

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

V = "/services/data/v59.0"


def _contact(email: str) -> dict[str, Any]:
    return {"properties": {"email": email, "firstname": "Ada"}}


def _hs(hubspot: RunningHubSpot, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(
        base_url=hubspot.base_url,
        headers={"authorization": f"Bearer {hubspot.access_token}"},
        timeout=timeout,
        trust_env=False,
    )


def _live_emails(hubspot: RunningHubSpot) -> set[str]:
    contacts = hubspot.emulator.portal.store("contacts").live.values()
    return {c.props["email"] for c in contacts}


def test_after_apply_status_applies_the_write_then_answers_the_fault(
    hubspot: RunningHubSpot,
) -> None:
    hubspot.control(
        "POST",
        "faults",
        {"path": "/crm/v3/objects/contacts$", "method": "POST", "status": 503, "after_apply": True},
    )
    with _hs(hubspot) as client:
        answer = client.post("/crm/v3/objects/contacts", json=_contact("ada@example.com"))
    assert answer.status_code == 503
    assert answer.json()["category"] == "INTERNAL_ERROR"
    assert "ada@example.com" in _live_emails(hubspot)  # applied although the client saw a 503
    (hit,) = hubspot.control("GET", "faults/hits")
    assert hit["seq"] == 1 and hit["method"] == "POST"
    assert hit["path"] == "/crm/v3/objects/contacts"
    assert hit["fault"]["after_apply"] is True
    assert (hit["applied"], hit["done"], hit["client_gone"]) == (True, True, False)
    hubspot.control("DELETE", "faults/hits")
    assert hubspot.control("GET", "faults/hits") == []


def test_before_stage_faults_are_logged_but_not_applied(hubspot: RunningHubSpot) -> None:
    hubspot.control("POST", "faults", {"path": "/crm/v3/objects/contacts$", "status": 503})
    with _hs(hubspot) as client:
        assert client.post("/crm/v3/objects/contacts", json=_contact("b@x.example")).is_error
    assert _live_emails(hubspot) == set()
    (hit,) = hubspot.control("GET", "faults/hits")
    assert (hit["applied"], hit["done"]) == (False, True)


def test_after_apply_latency_delivers_the_real_answer_late(hubspot: RunningHubSpot) -> None:
    hubspot.control(
        "POST",
        "faults",
        {"path": "/batch/create", "latency": 0.2, "after_apply": True},
    )
    started = time.monotonic()
    with _hs(hubspot) as client:
        answer = client.post(
            "/crm/v3/objects/contacts/batch/create", json={"inputs": [_contact("c@x.example")]}
        )
    assert answer.status_code == 201
    assert answer.json()["results"][0]["properties"]["email"] == "c@x.example"
    assert time.monotonic() - started >= 0.2


def test_a_held_answer_is_abandoned_when_the_client_leaves(hubspot: RunningHubSpot) -> None:
    hubspot.control(
        "POST",
        "faults",
        {"path": "/batch/create", "latency": 60, "after_apply": True},
    )
    with _hs(hubspot, timeout=0.5) as client, pytest.raises(httpx.ReadTimeout):
        client.post(
            "/crm/v3/objects/contacts/batch/create", json={"inputs": [_contact("d@x.example")]}
        )
    assert "d@x.example" in _live_emails(hubspot)
    deadline = time.monotonic() + 10
    hits = hubspot.control("GET", "faults/hits")
    while not hits[0]["done"]:
        assert time.monotonic() < deadline, hits
        time.sleep(0.02)  # ok-sleep: deadline poll for the server noticing the closed socket
        hits = hubspot.control("GET", "faults/hits")
    assert (hits[0]["applied"], hits[0]["client_gone"]) == (True, True)


def test_body_regex_tells_composite_writes_from_queries(salesforce: RunningSalesforce) -> None:
    token = salesforce.emulator.issue_token()
    with httpx.Client(
        base_url=salesforce.base_url,
        verify=ssl.create_default_context(cafile=salesforce.ca_path),
        headers={"authorization": f"Bearer {token}"},
        trust_env=False,
    ) as http:
        armed = http.post(
            "/__emulator__/faults",
            json={
                "path": "/composite$",
                "method": "POST",
                "body_regex": "composite/sobjects",
                "status": 503,
                "after_apply": True,
            },
        )
        assert armed.status_code == 201
        query = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead", "referenceId": "q"}
            ],
        }
        assert http.post(f"{V}/composite", json=query).status_code == 200
        assert http.get("/__emulator__/faults/hits").json() == []
        lead = {"attributes": {"type": "Lead"}, "LastName": "Lovelace", "Company": "Engines"}
        write = {
            "allOrNone": False,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V}/composite/sobjects",
                    "referenceId": "w",
                    "body": {"allOrNone": False, "records": [lead]},
                }
            ],
        }
        answer = http.post(f"{V}/composite", json=write)
        assert answer.status_code == 503
        assert answer.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
        leads = salesforce.emulator.org.records_of("Lead").values()
        assert [r["LastName"] for r in leads] == ["Lovelace"]
        (hit,) = http.get("/__emulator__/faults/hits").json()
        assert hit["applied"] and hit["done"]
        assert http.get("/__emulator__/faults").json() == []  # used up


@pytest.mark.parametrize(
    "fault",
    [
        {"after_apply": "yes"},
        {"body_regex": "("},
        {"body_regex": 3},
        {"latency": -1},
        {"latency": "2"},
        {"stage": "after"},
    ],
)
def test_malformed_fault_options_are_refused(hubspot: RunningHubSpot, fault: Any) -> None:
    answer = httpx.post(f"{hubspot.base_url}/__emulator__/faults", json=fault, trust_env=False)
    assert answer.status_code == 400, answer.text
    assert hubspot.control("GET", "faults") == []
