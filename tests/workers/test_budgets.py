"""Shared rate budgets: N processes on one vendor account stay under the account's limit.

The multi-process test runs three real processes, each with four threads calling a real HubSpot
emulator (rate limits on, 20 calls per 2 s) through :class:`HubSpotClient`; the emulator's own
counters say how many calls it refused for the burst window and how many it ever counted in one
window.  The control run without shared budgets shows the test can fail: each process alone
stays under 20, so three together exceed it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulator, HubSpotEmulatorSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.errors import RateLimitedError
from crm_bridge.store import Store
from crm_bridge.workers.budgets import SharedBudgets, SharedDailyBudget, window_usage

pytestmark = pytest.mark.postgres

LIMIT, WINDOW = 20, 2.0
PROCESSES, THREADS, CALLS = 3, 4, 24


@pytest.fixture
def store(pg_schema: Callable[[], str]) -> Iterator[Store]:
    s = Store.open(pg_schema())
    yield s
    s.close()


def test_grants_stop_at_the_limit_and_come_back_after_a_window(store: Store) -> None:
    shared = SharedBudgets(store.engine, holder="test")
    try:
        grants = [shared.grant("acct", size=3, max_calls=10, window_seconds=1.0) for _ in range(4)]
        assert [g.size for g in grants] == [3, 3, 3, 1]  # the last block is cut to what is left
        refused = shared.grant("acct", size=3, max_calls=10, window_seconds=1.0)
        assert refused.lease_id is None and refused.wait > 0
        assert shared.grant("other", size=3, max_calls=10, window_seconds=1.0).size == 3
        # Released with one call used each: those calls still count for a window after release.
        for g in grants:
            assert g.lease_id is not None
            shared.release(g.lease_id, 1)
        assert window_usage(store.engine, "acct", 1.0) == 4
        again = shared.grant("acct", size=10, max_calls=10, window_seconds=1.0)
        assert again.size == 6
        deadline = time.monotonic() + 5
        while window_usage(store.engine, "acct", 1.0) > 6 and time.monotonic() < deadline:
            # Leases age on PostgreSQL's now(), which no injected clock reaches.
            time.sleep(0.05)  # ok-sleep
        assert window_usage(store.engine, "acct", 1.0) == 6  # the released calls aged out
    finally:
        shared.close()


def test_daily_budget_is_one_count_for_every_process(store: Store) -> None:
    first, second = SharedBudgets(store.engine), SharedBudgets(store.engine)
    try:
        budgets = [
            SharedDailyBudget(s, "mkto:daily", reserve_fraction=0.1, name="daily", day=lambda: "d1")
            for s in (first, second)
        ]
        for b in budgets:
            b.observe_usage(0, 50)  # 45 usable
        taken = 0
        with pytest.raises(RateLimitedError, match="all workers"):
            while taken < 100:
                budgets[taken % 2].acquire()
                taken += 1
        # Blocks of 20 then single calls: 45 in all, whoever asked.
        with store.engine.connect() as conn:
            import sqlalchemy as sa

            used = conn.execute(sa.text("SELECT used FROM rate_daily WHERE day = 'd1'")).scalar()
        assert used == 45
        assert taken <= 45
    finally:
        first.close()
        second.close()


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from collections import Counter
    from crm_bridge.connectors.hubspot.client import HubSpotClient
    from crm_bridge.connectors.hubspot.settings import HubSpotSettings
    from crm_bridge.http.budgets import use_budgets
    url, host, token, shared, start_at = sys.argv[1:6]
    threads, calls = int(sys.argv[6]), int(sys.argv[7])
    budgets = None
    if shared == "1":
        from crm_bridge.store import Store
        from crm_bridge.workers.budgets import SharedBudgets
        store = Store.open(url)
        budgets = SharedBudgets(store.engine)
        use_budgets(budgets)
    settings = HubSpotSettings(
        host=host, access_token=token, burst_limit=%(limit)d,
        burst_window_seconds=%(window)r, max_attempts=30, max_wait_seconds=5,
    )
    client = HubSpotClient(settings, name="hs", calls=Counter())
    body = {"inputs": [{"name": "email"}], "archived": False}
    def work(n):
        for _ in range(n):
            client.send("properties", "crm.properties.batch_api", "read", "contacts", body,
                        idempotent=True)
    time.sleep(max(0.0, float(start_at) - time.time()))  # ok-sleep: one start for all processes
    per = [calls // threads + (1 if i < calls %% threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=work, args=(n,)) for n in per]
    for t in ts: t.start()
    for t in ts: t.join()
    if budgets is not None:
        budgets.close()
    print(json.dumps({"sent": sum(client.calls.values())}))
    """
) % {"limit": LIMIT, "window": WINDOW}


@pytest.fixture
def limited_hubspot() -> Iterator[RunningHubSpot]:
    running = HubSpotEmulator(
        HubSpotEmulatorSettings(
            rate_limits_enabled=True, burst_limit=LIMIT, burst_window_seconds=WINDOW
        )
    ).start()
    yield running
    running.stop()


def _run_processes(url: str, hubspot: RunningHubSpot, *, shared: bool) -> list[dict[str, Any]]:
    start_at = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                url,
                hubspot.base_url,
                hubspot.access_token,
                "1" if shared else "0",
                str(start_at),
                str(THREADS),
                str(CALLS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_three_processes_share_one_burst_window(
    pg_schema: Callable[[], str], limited_hubspot: RunningHubSpot
) -> None:
    url = pg_schema()
    Store.open(url).close()  # migrate once, before the processes race to
    limiter = limited_hubspot.emulator.limiter
    results = _run_processes(url, limited_hubspot, shared=True)
    status = limiter.status()
    assert sum(r["sent"] for r in results) == PROCESSES * CALLS
    assert status["burst_refused"] == 0, status
    assert 0 < int(status["peak_burst"]) <= LIMIT, status


def test_without_sharing_three_processes_exceed_the_window(
    pg_schema: Callable[[], str], limited_hubspot: RunningHubSpot
) -> None:
    """The control: each process paces itself to the limit, so together they go over it."""
    results = _run_processes(pg_schema(), limited_hubspot, shared=False)
    status = limited_hubspot.emulator.limiter.status()
    assert sum(r["sent"] for r in results) >= PROCESSES * CALLS
    assert int(status["burst_refused"]) > 0, status
