"""Limits and the control plane over httpx: 606, 607, 615, 413/414, faults, counts, snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads

DESCRIBE = "/rest/v1/leads/describe.json"


def test_606_after_100_calls_in_20_seconds(api: Api, marketo: RunningMarketo) -> None:
    marketo.emulator.clock.freeze()
    for _ in range(100):
        assert api.call("GET", DESCRIBE)["success"] is True
    body = api.call("GET", DESCRIBE)
    assert body["success"] is False
    assert body["errors"] == [
        {"code": "606", "message": "Max rate limit '100' exceeded with in '20' secs"}
    ]
    marketo.emulator.clock.advance(19.9)
    assert api.error("GET", DESCRIBE) == "606"
    marketo.emulator.clock.advance(0.2)  # the first calls leave the window
    assert api.call("GET", DESCRIBE)["success"] is True
    assert marketo.control("GET", "limits")["daily_used"] == 101  # refused calls not counted


def test_607_daily_quota_resets_at_us_central_midnight(api: Api, marketo: RunningMarketo) -> None:
    # 05:59:58 UTC on 6 Dec is 23:59:58 in Chicago (CST, UTC-6).
    marketo.emulator.clock.freeze(datetime(2026, 12, 6, 5, 59, 58, tzinfo=UTC))
    api.token = marketo.token()
    marketo.control("POST", "settings", {"daily_quota": 3})
    for _ in range(3):
        assert api.call("GET", DESCRIBE)["success"] is True
    assert api.error("GET", DESCRIBE) == "607"
    marketo.emulator.clock.advance(1)
    assert api.error("GET", DESCRIBE) == "607"  # 23:59:59 in Chicago, still the same day
    marketo.emulator.clock.advance(1)
    assert api.call("GET", DESCRIBE)["success"] is True


def test_615_when_ten_calls_are_in_flight(api: Api, marketo: RunningMarketo) -> None:
    """Ten calls held by a latency fault fill the instance; the eleventh answers 615."""
    marketo.control("POST", "faults", {"path": "describe2", "latency": 1.5, "times": 10})
    results: list[dict[str, object]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                httpx.get(
                    f"{marketo.base_url}/rest/v1/leads/describe2.json",
                    headers=api.headers(),
                    timeout=30,
                ).json()
            )
        )
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(marketo.control("GET", "faults/hits")) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)  # ok-sleep: deadline poll until the 10 held calls reached the server
    assert marketo.control("GET", "limits")["in_flight"] == 10
    assert api.error("GET", DESCRIBE) == "615"
    for thread in threads:
        thread.join()
    assert [r["success"] for r in results] == [True] * 10
    assert api.call("GET", DESCRIBE)["success"] is True


def test_413_and_414(api: Api, marketo: RunningMarketo) -> None:
    big = {"input": [{"email": f"{i}@example.com", "title": "x" * 200} for i in range(5000)]}
    resp = api.raw("POST", "/rest/v1/leads.json", json=big)
    assert resp.status_code == 413
    long_values = ",".join(f"someone.with.a.long.address{i}@example.com" for i in range(250))
    resp = api.raw(
        "GET", "/rest/v1/leads.json", params={"filterType": "email", "filterValues": long_values}
    )
    assert resp.status_code == 414
    # The documented way out: POST with _method=GET and the query in a form body.
    body = api.call(
        "POST",
        "/rest/v1/leads.json",
        params={"_method": "GET"},
        data={"filterType": "email", "filterValues": long_values},
    )
    assert body["success"] is True and body["result"] == []
    marketo.control("POST", "settings", {"max_import_bytes": 100})
    resp = api.raw(
        "POST",
        "/bulk/v1/leads.json",
        params={"format": "csv"},
        files={"file": ("x.csv", b"email\n" + b"a@example.com\n" * 20, "text/csv")},
    )
    assert resp.status_code == 413


def test_injected_606_envelope_is_retried_by_nobody_and_counted(
    api: Api, marketo: RunningMarketo
) -> None:
    marketo.control(
        "POST",
        "faults",
        {"path": "describe", "status": 200, "body": {"marketo_error": "606"}, "times": 1},
    )
    assert api.error("GET", DESCRIBE) == "606"
    assert api.call("GET", DESCRIBE)["success"] is True
    assert marketo.control("GET", "calls")["leads"] == 2


def test_dropped_connection_fault(api: Api, marketo: RunningMarketo) -> None:
    marketo.control(
        "POST",
        "faults",
        {"path": "/rest/v1/leads.json", "method": "POST", "drop": True, "after_apply": True},
    )
    with pytest.raises(httpx.HTTPError):
        api.raw("POST", "/rest/v1/leads.json", json={"input": [{"email": "d@example.com"}]})
    [hit] = marketo.control("GET", "faults/hits")
    assert hit["applied"] is True
    found = api.ok(
        "GET",
        "/rest/v1/leads.json",
        params={"filterType": "email", "filterValues": "d@example.com"},
    )
    assert len(found) == 1  # the write was committed although its answer was lost


def test_call_counts_by_family(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("DELETE", "calls")
    make_leads(api, {"email": "a@example.com"})
    api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2024-01-01")
    api.get("/rest/v1/lists.json")
    counts = marketo.control("GET", "calls")
    assert (counts["leads"], counts["activities"], counts["lists"]) == (1, 1, 1)
    assert counts["total"] == 3


def test_snapshot_load_and_reset(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "fields", {"name": "slaState", "dataType": "string"})
    [lead] = make_leads(api, {"email": "s@example.com", "slaState": "breached"})
    sl = marketo.control("POST", "lists", {"name": "Snap"})["id"]
    api.ok("POST", f"/rest/v1/lists/{sl}/leads.json", json={"input": [{"id": lead}]})
    snap = marketo.control("GET", "snapshot")
    marketo.control("POST", "reset")
    assert marketo.emulator.instance.leads == {}
    assert api.error("GET", DESCRIBE) == "601"  # tokens are gone too
    marketo.control("POST", "load", snap)
    api.token = marketo.token()
    [back] = api.ok("GET", f"/rest/v1/lead/{lead}.json", params={"fields": "slaState"})
    assert back["slaState"] == "breached"
    assert (
        api.ok("GET", f"/rest/v1/lists/{sl}/leads/ismember.json", params={"id": lead})[0]["status"]
        == "memberof"
    )
    [new] = make_leads(api, {"email": "t@example.com"})
    assert new == lead + 1  # ids go on from the snapshot


def test_settings_route_validates_and_hides_the_secret(marketo: RunningMarketo) -> None:
    status = marketo.control("GET", "settings")
    assert "client_secret" not in status["settings"]
    resp = httpx.post(
        f"{marketo.base_url}/__emulator__/settings", json={"daily_quota": -1}, timeout=30
    )
    assert resp.status_code == 400
    resp = httpx.post(f"{marketo.base_url}/__emulator__/settings", json={"nope": 1}, timeout=30)
    assert resp.status_code == 400


def test_seeded_leads_are_deterministic(marketo: RunningMarketo) -> None:
    first = marketo.control("POST", "leads", {"count": 3, "seed": 7})["ids"]
    emails = [marketo.emulator.instance.leads[i].values["email"] for i in first]
    marketo.control("POST", "reset")
    marketo.control("POST", "leads", {"count": 3, "seed": 7})
    assert [lead.values["email"] for lead in marketo.emulator.instance.leads.values()] == emails


def test_settings_repr_hides_the_client_secret(marketo: RunningMarketo) -> None:
    settings = marketo.emulator.settings
    assert settings.client_secret not in repr(settings)
    assert settings.client_secret not in repr(marketo)


def test_413_for_a_chunked_body_without_length(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "settings", {"max_body_bytes": 1000})

    def chunks() -> Iterator[bytes]:
        yield b'{"input": ['
        for i in range(100):
            yield b'{"email": "c%d@example.com"},' % i
        yield b'{"email": "last@example.com"}]}'

    resp = api.raw(
        "POST",
        "/rest/v1/leads.json",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    small = api.raw(
        "POST",
        "/rest/v1/leads.json",
        content=iter([b'{"input": [{"email": "s@x.io"}]}']),
        headers={"Content-Type": "application/json"},
    )
    assert small.json()["result"][0]["status"] == "created"
