"""Three ``crm-bridge worker`` processes, four pairs, real emulators, a kill -9 and a manual sync.

The fleet: four Salesforce + HubSpot sandboxes (each pair its own org and portal, HubSpot rate
limits on), one PostgreSQL store in a schema of its own, three worker subprocesses started as an
admin would (config file, secrets in the environment).  One module-scoped scenario, then tests
that each check one property of what happened:

* the pairs were spread over the workers;
* a worker killed with ``kill -9`` while a HubSpot write of pair ``p0`` was applied and its
  answer held: another worker took the job over (procrastinate's stalled-job recovery) and the
  pair ends with every record on both sides exactly once -- nothing lost, nothing doubled;
* a ``crm-bridge sync --lock-wait`` started by hand while a worker was inside a cycle of pair
  ``p1`` waited for it, and no two runs of any pair ever overlapped in time;
* no HubSpot portal refused a call for its burst window (the emulators' own counters).

Polls have deadlines; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.connectors.salesforce.emulator.dml import Writer
from crm_bridge.demo.sandbox import DEFAULT_PAIR, Sandbox, _toml
from crm_bridge.emulators.runtime import Fault, FaultHit
from crm_bridge.store import Run, Store

pytestmark = pytest.mark.postgres

PAIRS = ("p0", "p1", "p2", "p3")
WORKERS = 3
LEADS, CONTACTS = 20, 20
BURST, BURST_WINDOW = 40, 2.0
DEFAULT_OWNER = "maria.manager@example.com"
DEADLINE = 45.0
HOLD = 60.0
"""The killed worker's held answer: it never comes (the worker is dead long before)."""
SHORT_HOLD = 2.0
"""The held answer of the cycle a manual sync must wait for."""


@dataclass
class Fleet:
    sandboxes: dict[str, Sandbox]
    store_url: str
    directory: Path
    config: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)

    def start_worker(self, name: str) -> None:
        with open(self.directory / f"{name}.out", "wb") as out:  # the child keeps its own copy
            self.procs[name] = self._popen(name, out)

    def _popen(self, name: str, out: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crm_bridge",
                "worker",
                "--config",
                str(self.config),
                "--name",
                name,
                "--heartbeat",
                "0.5",
                "--stalled-after",
                "3",
                "--lock-wait",
                "60",
                "--retries",
                "2",
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.out").read_text(errors="replace")

    def runs(self, pair: str) -> list[Run]:
        with Store.open(self.store_url) as store, store.transaction(readonly=True) as tx:
            return tx.last_runs(pair, limit=1000)

    def worker_rows(self) -> list[dict[str, Any]]:
        with Store.open(self.store_url) as store, store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text("SELECT * FROM workers")).mappings()]

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.output(n)[-3000:]}" for n in self.procs)


def _poll(what: str, check: Callable[[], Any], fleet: Fleet, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {timeout} s\n{fleet.logs()}")
        time.sleep(0.05)  # ok-sleep: deadline poll of the store / the emulators


def _people(sandbox: Sandbox) -> dict[str, Counter[str]]:
    """E-mails (case-folded) of the people on each side, with how often each occurs."""
    org = sandbox.salesforce.emulator.org
    portal = sandbox.hubspot.emulator.portal
    with org.lock, portal.lock:
        crm = Counter(
            str(r["Email"]).casefold()
            for obj in ("Lead", "Contact")
            for r in org.records_of(obj).values()
            if r.get("Email") and not r.get("IsDeleted") and not r.get("IsConverted")
        )
        hs = Counter(
            str(c.props.get("email")).casefold()
            for c in portal.store("contacts").live.values()
            if c.props.get("email")
        )
    return {"crm": crm, "map": hs}


def _add_leads(sandbox: Sandbox, prefix: str, count: int) -> list[str]:
    emulator = sandbox.salesforce.emulator
    org = emulator.org
    owner = emulator.user_id(DEFAULT_OWNER)
    emails = [f"{prefix}-{n}@fleet.example.com" for n in range(count)]
    with org.lock, org.atomic():
        writer = Writer(org, owner)
        for n, email in enumerate(emails):
            writer.create(
                "Lead",
                {
                    "FirstName": "Fleet",
                    "LastName": f"{prefix}{n}",
                    "Company": "Fleet Co",
                    "Email": email,
                },
            )
    return emails


def _held(sandbox: Sandbox) -> FaultHit | None:
    for hit in sandbox.hubspot.emulator.faults.hits():
        if hit.applied and not hit.done:
            return hit
    return None


def _pg_schema(admin: str) -> tuple[str, str]:
    name = f"crmb_workers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    url = make_url(admin).set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={name}"})
    return name, url.render_as_string(hide_password=False)


def _write_config(
    fleet_dir: Path, store_url: str, sandboxes: dict[str, Sandbox]
) -> tuple[Path, dict[str, str]]:
    env: dict[str, str] = {}
    lines = ["[store]", f"url = {_toml(store_url)}", "", "[daemon]", "interval_seconds = 2", ""]
    for n, (pair, sb) in enumerate(sandboxes.items()):
        tables = sb.connector_settings()
        sf, hs = tables["salesforce"], tables["hubspot"]
        env[f"CRM_BRIDGE_CONNECTORS__SF{n}__CLIENT_SECRET"] = str(sf.pop("client_secret"))
        env[f"CRM_BRIDGE_CONNECTORS__HS{n}__ACCESS_TOKEN"] = str(hs.pop("access_token"))
        hs.update(burst_limit=BURST, burst_window_seconds=BURST_WINDOW)
        for name, table in ((f"sf{n}", sf), (f"hs{n}", hs)):
            lines.append(f"[connectors.{name}]")
            lines.extend(f"{key} = {_toml(value)}" for key, value in table.items())
            lines.append("")
        org = sb.salesforce.emulator.org
        crm_owner = org.user_by_username(DEFAULT_OWNER)
        assert crm_owner is not None
        map_owner = next(
            o["id"] for o in sb.hubspot.emulator.portal.owners if o["email"] == DEFAULT_OWNER
        )
        pair_table = {**DEFAULT_PAIR, "crm": f"sf{n}", "map": f"hs{n}"}
        lines.append(f"[pairs.{pair}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in pair_table.items())
        lines.append(f'default_crm_owner = "{crm_owner["Id"]}"')
        lines.append(f'default_map_owner = "{map_owner}"')
        lines.append("")
    path = fleet_dir / "crm-bridge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, env


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    admin: str = request.getfixturevalue("pg_admin_url")
    schema, store_url = _pg_schema(admin)
    directory = tmp_path_factory.mktemp("fleet")
    sandboxes: dict[str, Sandbox] = {}
    fleet: Fleet | None = None
    try:
        for n, pair in enumerate(PAIRS):
            sb = Sandbox.start(
                store_url=store_url,
                workdir=directory / pair,
                hubspot_settings=HubSpotEmulatorSettings(
                    rate_limits_enabled=True, burst_limit=BURST, burst_window_seconds=BURST_WINDOW
                ),
            )
            sandboxes[pair] = sb
            sb.salesforce.emulator.seed(leads=LEADS, seed=20 + n)
            sb.hubspot.emulator.seed(contacts=CONTACTS, seed=40 + n)
            sb.align_owners()
        Store.open(store_url).close()  # migrated once, before the workers start
        config, secrets = _write_config(directory, store_url, sandboxes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        env.update(secrets)
        fleet = Fleet(sandboxes, store_url, directory, config, env)
        fleet.baseline = {pair: _people(sb) for pair, sb in sandboxes.items()}
        _run_scenario(fleet)
        yield fleet
    finally:
        if fleet is not None:
            for proc in fleet.procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        for sb in sandboxes.values():
            sb.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _ok_runs(fleet: Fleet, pair: str, *, after: datetime | None = None) -> list[Run]:
    return [
        r for r in fleet.runs(pair) if r.status == "ok" and (after is None or r.started_at > after)
    ]


def _run_scenario(fleet: Fleet) -> None:
    started = time.monotonic()
    for n in range(WORKERS):
        fleet.start_worker(f"w{n}")
    _poll(
        "every pair synced twice", lambda: all(len(_ok_runs(fleet, p)) >= 2 for p in PAIRS), fleet
    )

    # -- kill -9 of the worker holding pair p0, its HubSpot write applied, the answer held ------
    p0 = fleet.sandboxes["p0"]
    p0.hubspot.emulator.faults.add(
        Fault(path=r"/contacts/batch/(create|upsert)$", latency=HOLD, after_apply=True)
    )
    fleet.events["p0_new"] = _add_leads(p0, "p0-new", 5)
    _poll("p0's write is applied and its answer held", lambda: _held(p0), fleet)
    holder = _poll(
        "the worker running p0",
        lambda: next((w for w in fleet.worker_rows() if w["pair"] == "p0"), None),
        fleet,
    )
    victim = str(holder["name"])
    os.kill(int(holder["pid"]), signal.SIGKILL)
    fleet.procs[victim].wait(10)
    fleet.events["victim"] = victim
    fleet.events["killed_at"] = datetime.now(UTC)
    fleet.events["killed_mono"] = time.monotonic()

    # -- a manual sync of p1 while a worker is inside a p1 cycle -------------------------------
    p1 = fleet.sandboxes["p1"]
    p1.hubspot.emulator.faults.add(
        Fault(path=r"/contacts/batch/(create|upsert)$", latency=SHORT_HOLD, after_apply=True)
    )
    fleet.events["p1_new"] = _add_leads(p1, "p1-new", 3)
    _poll("p1's write is applied and its answer held", lambda: _held(p1), fleet)
    held_run = _poll(
        "the p1 run in flight",
        lambda: next((r for r in fleet.runs("p1") if r.status == "running"), None),
        fleet,
    )
    manual_start = datetime.now(UTC)
    manual = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_bridge",
            "sync",
            "--config",
            str(fleet.config),
            "--pair",
            "p1",
            "--lock-wait",
            "60",
        ],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    fleet.events.update(
        manual=manual, manual_start=manual_start, manual_end=datetime.now(UTC), held_run=held_run.id
    )

    # -- p0 recovered by another worker; every pair settles -------------------------------------
    _poll(
        "p0 synced again after the kill",
        lambda: _ok_runs(fleet, "p0", after=fleet.events["killed_at"]),
        fleet,
    )
    fleet.events["recovered_mono"] = time.monotonic()
    settle = datetime.now(UTC)
    _poll(
        "every pair synced after everything",
        lambda: all(_ok_runs(fleet, p, after=settle) for p in PAIRS),
        fleet,
    )
    for proc in fleet.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in fleet.procs.items():
        code = proc.wait(30)
        if name != fleet.events["victim"]:
            assert code == 0, f"{name} exited {code}\n{fleet.output(name)[-3000:]}"
    fleet.events["seconds"] = time.monotonic() - started


def test_pairs_are_spread_over_the_workers(fleet: Fleet) -> None:
    ran: dict[str, set[str]] = {}
    for name in fleet.procs:
        for line in fleet.output(name).splitlines():
            if line.startswith("job pair=") and " ok" in line:
                pair = line.split()[1].removeprefix("pair=")
                ran.setdefault(name, set()).add(pair)
    assert len(ran) == WORKERS, ran  # every worker ran cycles
    assert set().union(*ran.values()) == set(PAIRS)
    assert fleet.events["seconds"] < 90


def test_a_killed_workers_pair_is_finished_by_another_with_nothing_lost_or_doubled(
    fleet: Fleet,
) -> None:
    victim = fleet.events["victim"]
    recovered = [n for n in fleet.procs if n != victim and "worker.recover" in fleet.output(n)]
    assert recovered, fleet.logs()  # a survivor put the dead worker's job back
    # Taken over within the stall timeout (3 s) plus scheduling, not after a long timeout.
    assert fleet.events["recovered_mono"] - fleet.events["killed_mono"] < 20
    for pair, sb in fleet.sandboxes.items():
        people = _people(sb)
        for side in ("crm", "map"):
            base = fleet.baseline[pair][side]
            doubled = {e: n for e, n in people[side].items() if n > max(1, base.get(e, 0))}
            assert not doubled, (pair, side, doubled)
        lost_to_map = set(people["crm"]) - set(people["map"])
        lost_to_crm = set(people["map"]) - set(people["crm"])
        assert not lost_to_map and not lost_to_crm, (pair, lost_to_map, lost_to_crm)
    hs = _people(fleet.sandboxes["p0"])["map"]
    assert all(hs[e] == 1 for e in fleet.events["p0_new"]), hs


def test_a_manual_sync_waits_for_the_worker_and_no_runs_of_a_pair_overlap(fleet: Fleet) -> None:
    manual = fleet.events["manual"]
    assert manual.returncode == 0, manual.stdout + manual.stderr
    held = next(r for r in fleet.runs("p1") if r.id == fleet.events["held_run"])
    assert held.finished_at is not None
    # The manual sync started while the worker's run was in flight and ended only after it.
    assert held.started_at < fleet.events["manual_start"] < held.finished_at
    assert fleet.events["manual_end"] >= held.finished_at
    for pair in PAIRS:
        runs = sorted(fleet.runs(pair), key=lambda r: r.started_at)
        unfinished = [r for r in runs if r.finished_at is None]
        # Only the killed worker's run of p0 never finished (its successor recorded its own).
        assert len(unfinished) == (1 if pair == "p0" else 0), (pair, unfinished)
        for before, after in itertools.pairwise(runs):
            if before.finished_at is None:  # the killed worker's run, never finished
                continue
            assert before.finished_at <= after.started_at, (pair, before, after)


def test_no_portal_refused_a_call_for_its_burst_window(fleet: Fleet) -> None:
    for pair, sb in fleet.sandboxes.items():
        status = sb.hubspot.emulator.limiter.status()
        assert status["burst_refused"] == 0, (pair, status)
        assert 0 < int(status["peak_burst"]) <= BURST, (pair, status)
