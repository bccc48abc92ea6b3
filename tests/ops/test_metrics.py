"""``/metrics`` and ``/healthz`` scraped over a real socket after daemon cycles on the emulators."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.ops.metrics import Health, Metrics, limiters_of
from crm_bridge.ops.service import serve_ops
from crm_bridge.sync.daemon import Daemon
from tests.ops.conftest import JsonLog
from tests.sync.emulated import Emulated, Make

INTERVAL = 60.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics", trust_env=False, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def run_daemon(e: Emulated, clock: FakeMonotonic, cycles: int = 1) -> None:
    Daemon(
        runners=[e.runner],
        store=e.session.store,
        interval=INTERVAL,
        max_cycles=cycles,
        monotonic=clock,
    ).run()


def test_metrics_after_a_daemon_cycle(make: Make) -> None:
    e = make()
    e.create_lead("a@lead.example")
    e.create_contact("b@contact.example")
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    e.create_lead("orphan@lead.example", OwnerId=solo)
    e.advance(1)
    clock = FakeMonotonic()
    with serve_ops(e.session, ["main"], interval=INTERVAL, port=0, monotonic=clock) as ops:
        run_daemon(e, clock)
        found = samples(ops.url)
        health = httpx.get(f"{ops.url}/healthz", trust_env=False, timeout=10)

    assert value(found, "crm_bridge_cycles_total", pair="main", status="ok") == 1
    assert value(found, "crm_bridge_records_total", pair="main", outcome="created") == 2
    assert value(found, "crm_bridge_records_total", pair="main", outcome="dead_lettered") == 1
    assert value(found, "crm_bridge_dead_letters_open", pair="main") == 1
    with e.session.store.transaction(readonly=True) as tx:
        (run,) = tx.last_runs("main", limit=1)
    for connector, spent in run.calls.items():
        by_family = {
            dict(labels)["family"]: v
            for (name, labels), v in found.items()
            if name == "crm_bridge_api_calls_total" and dict(labels)["connector"] == connector
        }
        assert sum(by_family.values()) == spent > 0, connector
    last = value(found, "crm_bridge_last_success_timestamp_seconds", pair="main")
    assert abs(last - e.now().timestamp()) < 5  # the runner's (emulators') clock
    assert (
        value(found, "crm_bridge_cursor_lag_seconds", pair="main", object="leads", side="crm") == 0
    )
    assert value(found, "crm_bridge_pair_healthy", pair="main") == 1
    assert value(found, "crm_bridge_cycle_duration_seconds_count", pair="main") == 1
    assert health.status_code == 200
    assert health.json()["pairs"]["main"]["healthy"] is True


def test_healthz_is_503_once_a_pair_has_not_succeeded_for_n_intervals(make: Make) -> None:
    e = make()
    clock = FakeMonotonic()
    with serve_ops(
        e.session, ["main"], interval=INTERVAL, port=0, unhealthy_after=3, monotonic=clock
    ) as ops:
        run_daemon(e, clock)
        assert httpx.get(f"{ops.url}/healthz", trust_env=False).status_code == 200

        # HubSpot refuses every call from now on: the cycles fail.
        e.hubspot.control("POST", "faults", {"path": "/", "status": 401, "times": 1000})
        clock.t += 2 * INTERVAL
        run_daemon(e, clock)
        still = httpx.get(f"{ops.url}/healthz", trust_env=False)
        assert still.status_code == 200  # one failure within the allowance does not flap
        assert still.json()["pairs"]["main"]["last_status"] == "failed"

        clock.t += 1.5 * INTERVAL  # 3.5 intervals since the last success
        down = httpx.get(f"{ops.url}/healthz", trust_env=False)
        assert down.status_code == 503
        body = down.json()
        assert body["unhealthy"] == ["main"] and "pair main" in body["reason"]
        assert body["pairs"]["main"]["last_error"]
        found = samples(ops.url)
        assert value(found, "crm_bridge_pair_healthy", pair="main") == 0
        assert value(found, "crm_bridge_cycles_total", pair="main", status="failed") == 1

        e.hubspot.control("DELETE", "faults")
        run_daemon(e, clock)
        assert httpx.get(f"{ops.url}/healthz", trust_env=False).status_code == 200


def test_a_pair_that_never_succeeds_turns_unhealthy_after_the_grace_period() -> None:
    clock = FakeMonotonic()
    health = Health(["main"], interval=10, max_intervals=2, monotonic=clock)
    assert health.report().healthy
    clock.t += 21
    report = health.report()
    assert report.status_code == 503 and report.body["unhealthy"] == ["main"]


def test_retries_and_their_waits_are_counted(make: Make, json_log: JsonLog) -> None:
    e = make()
    e.create_contact("c@contact.example")
    e.advance(1)
    e.hubspot.control(
        "POST",
        "faults",
        {"path": "/contacts/search$", "status": 429, "times": 2, "headers": {"Retry-After": "2"}},
    )
    clock = FakeMonotonic()
    with serve_ops(e.session, ["main"], interval=INTERVAL, port=0, monotonic=clock) as ops:
        run_daemon(e, clock)
        found = samples(ops.url)
    assert len(json_log.events("http.retry")) == 2
    assert value(found, "crm_bridge_retries_total", action="rate_limited") == 2
    assert value(found, "crm_bridge_retry_wait_seconds_total", action="rate_limited") == 4.0


def test_each_metrics_instance_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.retry("retry", 1.0)
    assert b'crm_bridge_retries_total{action="retry"} 1.0' in one.render()
    assert b"crm_bridge_retries_total{" not in two.render()


def test_hubspot_pacing_limiters_are_found(make: Make) -> None:
    e = make()
    assert isinstance(e.map, HubSpotConnector)
    found = limiters_of(e.map)
    assert len(found) == 2 and all(hasattr(lim, "stats") for lim in found.values())
