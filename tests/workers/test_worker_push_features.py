"""Workers run the feature jobs once per interval fleet-wide, and honour HubSpot's push channel.

Real ``crm-bridge worker`` subprocesses on the machine's PostgreSQL (a schema per test) against
the Salesforce and HubSpot emulators, configured as an admin would (TOML + secrets in the env):

* **feature jobs**: three workers serving every pair and one ``--pair main`` worker, the reason
  capture configured and installed, ``interval_seconds = 2``.  The capture runs as one job at a
  time for the whole fleet, each start at least an interval after the previous one, never on
  the ``--pair`` worker, and it does its work (a closed-won opportunity's reason is captured);
* **push**: two workers with ``daemon.push`` and HubSpot's webhooks journal, ``interval_seconds
  = 3600``.  Exactly one worker listens; a marketer's edit in HubSpot reaches Salesforce through
  a hinted cycle within seconds, the journal position is stored after it, and the pair's next
  full cycle stays an interval after the last full one (hinted cycles do not move it);
* **failover**: the listening worker is killed with SIGKILL; the other takes the channel over
  (the listener lock went with the dead session) and a marketer's edit still arrives by push.

Polls have deadlines; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hubspot.crm.contacts import SimplePublicObjectInput

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox, _toml
from crm_bridge.store import Store
from crm_bridge.workers.features import FeatureRuns
from tests.reasons.conftest import TAXONOMY_V1

pytestmark = pytest.mark.postgres

DEADLINE = 60.0
MANAGER = "maria.manager@example.com"


def _poll(what: str, check: Callable[[], Any], logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {DEADLINE} s\n{logs()}")
        time.sleep(0.05)  # ok-sleep: deadline poll of the store, the emulators and the output


class Fleet:
    """Worker subprocesses on one config; their output in files."""

    def __init__(self, directory: Path, config: Path, env: dict[str, str]) -> None:
        self.directory, self.config, self.env = directory, config, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *extra: str) -> None:
        with open(self.directory / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen(
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
                    "30",
                    *extra,
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.out").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.output(n)[-3000:]}" for n in self.procs)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            code = proc.wait(60)
            assert code == 0, f"{name} exited {code}\n{self.output(name)[-3000:]}"

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _world(
    pg_schema: Callable[[], str], tmp_path: Path, daemon: str, extra: str = ""
) -> tuple[Sandbox, Fleet]:
    sb = Sandbox.start(
        store_url=pg_schema(),
        workdir=tmp_path,
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    )
    sb.salesforce.emulator.seed(leads=5, seed=7)
    sb.hubspot.emulator.seed(contacts=5, seed=8)
    sb.align_owners()
    config, secrets = sb.write_config(tmp_path)
    text = config.read_text().replace("[daemon]\ninterval_seconds = 5\n", daemon)
    config.write_text(text + extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env.update(secrets, CRM_BRIDGE_DISABLE_PLUGINS="1")
    Store.open(sb.store_url).close()  # migrated once, before the workers start
    return sb, Fleet(tmp_path, config, env)


# -- feature jobs --------------------------------------------------------------------------------

REASONS = TAXONOMY_V1.replace('crm = "sf"', 'crm = "salesforce"').replace(
    'marketing = "hs"', 'marketing = "hubspot"'
)
INTERVAL = 2.0


@pytest.fixture
def features(pg_schema: Callable[[], str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    sb, fleet = _world(pg_schema, tmp_path, f"[daemon]\ninterval_seconds = {INTERVAL}\n", REASONS)
    try:
        installed = subprocess.run(
            [
                sys.executable,
                "-m",
                "crm_bridge",
                "reasons",
                "install",
                "--config",
                str(fleet.config),
            ],
            env=fleet.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        client = sb.salesforce.simple_salesforce()
        for n in range(3):
            fleet.start(f"w{n}")
        fleet.start("wp", "--pair", "main")
        runs = FeatureRuns(Store.open(sb.store_url).engine)
        _poll("two reason captures", lambda: len(runs.history("reasons")) >= 2, fleet.logs)
        account = client.Account.create({"Name": "Acme"})["id"]
        client.Opportunity.create(
            {
                "Name": "Won",
                "AccountId": account,
                "StageName": "Closed Won",
                "CloseDate": datetime.now(UTC).date().isoformat(),  # after `since`
                "Win_Loss_Reason__c": "product_fit",
            }
        )
        _poll(
            "the won reason captured",
            lambda: any("valid=1" in (r["summary"] or "") for r in runs.history("reasons")),
            fleet.logs,
        )
        client.session.close()  # no keep-alive connection left to the emulator
        _poll("three more captures", lambda: len(runs.history("reasons")) >= 5, fleet.logs)
        fleet.stop()
        status = subprocess.run(
            [sys.executable, "-m", "crm_bridge", "status", "--config", str(fleet.config)],
            env={**fleet.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        yield {"history": runs.history("reasons"), "fleet": fleet, "status": status.stdout}
        runs.engine.dispose()
    finally:
        fleet.kill()
        sb.stop()


def test_the_reason_capture_runs_once_per_interval_across_the_fleet(
    features: dict[str, Any],
) -> None:
    history, fleet = features["history"], features["fleet"]
    assert all(r["status"] == "ok" for r in history), history
    for before, after in itertools.pairwise(history):
        # one at a time fleet-wide, and never sooner than an interval after the last start
        assert before["finished_at"] is not None and before["finished_at"] <= after["started_at"]
        assert after["started_at"] - before["started_at"] >= timedelta(seconds=INTERVAL)
    by = {r["worker"] for r in history}
    assert by <= {"w0", "w1", "w2"}, by  # never the --pair worker
    assert "feature reasons" not in fleet.output("wp")
    assert "running feature jobs reasons" in fleet.output("w0")
    assert any("valid=1" in (r["summary"] or "") for r in history)
    latest = history[-1]
    assert "feature jobs (workers)" in features["status"], features["status"]
    assert f"reasons │ {latest['worker']}" in features["status"], features["status"]


# -- push ----------------------------------------------------------------------------------------

PUSH_DAEMON = (
    "[daemon]\ninterval_seconds = 3600\npush = true\n"
    "push_debounce_seconds = 0.2\npush_max_delay_seconds = 1\n"
)


def _push_world(pg_schema: Callable[[], str], tmp_path: Path) -> tuple[Sandbox, Fleet]:
    """A world whose workers listen to HubSpot's webhooks journal."""
    sb, fleet = _world(pg_schema, tmp_path, PUSH_DAEMON)
    hs = sb.hubspot
    text = fleet.config.read_text().replace(
        "[connectors.hubspot]\n",
        "[connectors.hubspot]\n"
        f"portal_id = {hs.portal_id}\napp_id = {hs.app_id}\n"
        f"private_app_id = {hs.private_app_id}\njournal_client_id = {_toml(hs.client_id)}\n"
        "journal_poll_seconds = 0.3\n",
    )
    fleet.config.write_text(text)
    fleet.env["CRM_BRIDGE_CONNECTORS__HUBSPOT__JOURNAL_CLIENT_SECRET"] = hs.client_secret
    return sb, fleet


def _listeners(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM push_listeners")).mappings()
        return [dict(r) for r in rows]


def _edit_a_linked_contact(sb: Sandbox, title: str) -> Callable[[], bool]:
    """A marketer edits a contact linked to a lead; returns: whether the lead shows it."""
    org, hs = sb.salesforce.emulator.org, sb.hubspot
    with org.lock:
        lead = next(
            r
            for r in org.records_of("Lead").values()
            if r.get("Email") and not r.get("IsConverted")
        )
    email = str(lead["Email"]).casefold()
    portal = hs.emulator.portal
    with portal.lock:
        contact = next(
            c.id
            for c in portal.store("contacts").live.values()
            if str(c.props.get("email", "")).casefold() == email
        )
    marketer = hs.client(access_token=hs.emulator.as_user(MANAGER))
    marketer.crm.contacts.basic_api.update(
        contact, SimplePublicObjectInput(properties={"jobtitle": title})
    )

    def arrived() -> bool:
        with org.lock:
            return org.records_of("Lead")[lead["Id"]].get("Title") == title

    return arrived


@pytest.fixture
def pushed(pg_schema: Callable[[], str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    sb, fleet = _push_world(pg_schema, tmp_path)
    hs = sb.hubspot
    store = Store.open(sb.store_url)
    try:
        fleet.start("a")
        fleet.start("b")

        def listener() -> list[dict[str, Any]]:
            return _listeners(store)

        def position() -> str | None:
            with store.transaction(readonly=True) as tx:
                return tx.get_feed_position("main", "map")

        (held,) = _poll("a listener", listener, fleet.logs)
        _poll("the journal's starting place stored after a full cycle", position, fleet.logs)
        before = position()
        org = sb.salesforce.emulator.org
        with org.lock:
            lead = next(
                r
                for r in org.records_of("Lead").values()
                if r.get("Email") and not r.get("IsConverted")
            )
        email = str(lead["Email"]).casefold()
        portal = hs.emulator.portal
        with portal.lock:
            contact = next(
                c.id
                for c in portal.store("contacts").live.values()
                if str(c.props.get("email", "")).casefold() == email
            )
        edited = time.monotonic()
        marketer = hs.client(access_token=hs.emulator.as_user(MANAGER))
        marketer.crm.contacts.basic_api.update(
            contact, SimplePublicObjectInput(properties={"jobtitle": "Chief Push Officer"})
        )

        def title() -> bool:
            with org.lock:
                return org.records_of("Lead")[lead["Id"]].get("Title") == "Chief Push Officer"

        _poll("the edit in Salesforce", title, fleet.logs)
        took = time.monotonic() - edited
        _poll("the position after the hinted cycle", lambda: position() != before, fleet.logs)
        with store.transaction(readonly=True) as tx:
            runs = tx.last_runs("main", limit=100)
        with store.engine.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT scheduled_at FROM procrastinate_jobs WHERE status = 'todo'"
                    " AND queueing_lock = 'main'"
                )
            ).scalar()
        listeners_at_end = listener()
        fleet.stop()
        yield {
            "fleet": fleet,
            "held": held,
            "took": took,
            "runs": runs,
            "waiting": waiting,
            "listeners": listeners_at_end,
            "after_stop": listener(),
        }
    finally:
        fleet.kill()
        store.close()
        sb.stop()


def test_one_worker_listens_and_a_hubspot_edit_arrives_by_a_hinted_cycle(
    pushed: dict[str, Any],
) -> None:
    fleet, held = pushed["fleet"], pushed["held"]
    assert held["worker"] in ("a", "b") and held["complete"] is False  # Salesforce has no CDC here
    assert [r["worker"] for r in pushed["listeners"]] == [held["worker"]]  # the fleet listens once
    assert pushed["after_stop"] == []  # a stopped worker gives its pairs up
    assert pushed["took"] < 30  # seconds, against an interval of an hour
    hinted = [r for r in pushed["runs"] if r.counts.get("hints")]
    assert hinted and all(r.status == "ok" for r in hinted), pushed["runs"]
    other = "b" if held["worker"] == "a" else "a"
    # the listener asked for the hinted cycle (any worker may have run it); the other never listened
    assert f"push pair=main worker={held['worker']} hinted ok" in fleet.output(held["worker"])
    assert "push pair=" not in fleet.output(other)


def test_hinted_cycles_do_not_move_the_next_full_cycle(pushed: dict[str, Any]) -> None:
    full = [r for r in pushed["runs"] if not r.counts.get("hints")]
    assert full, pushed["runs"]
    assert pushed["waiting"] is not None
    hinted = [r for r in pushed["runs"] if r.counts.get("hints")]

    def off(run: Any) -> float:
        """How far the waiting cycle is from an hour after ``run`` started (seconds)."""
        return abs((pushed["waiting"] - (run.started_at + timedelta(seconds=3600))).total_seconds())

    # exactly an hour after a full cycle (the first scheduled one or the listener's first): the
    # due time is computed from the stored start, so it matches to the microsecond; a hinted
    # cycle may start within a second of a full one, so "nearest" is what tells them apart
    nearest = min(pushed["runs"], key=off)
    assert nearest in full and off(nearest) < 0.001, (pushed["waiting"], pushed["runs"])
    assert all(off(r) > 0 for r in hinted), (pushed["waiting"], pushed["runs"])


def test_a_listener_killed_mid_run_is_replaced_and_push_goes_on(
    pg_schema: Callable[[], str], tmp_path: Path
) -> None:
    """kill -9 of the listening worker: another takes the pair's channel over and uses it."""
    sb, fleet = _push_world(pg_schema, tmp_path)
    store = Store.open(sb.store_url)
    try:
        fleet.start("a")
        fleet.start("b")
        (held,) = _poll("a listener", lambda: _listeners(store), fleet.logs)

        def position() -> str | None:
            with store.transaction(readonly=True) as tx:
                return tx.get_feed_position("main", "map")

        _poll("the first full cycle and the journal's place", position, fleet.logs)
        dead = str(held["worker"])
        fleet.procs[dead].kill()  # SIGKILL: no clean release, the lock goes with its session
        fleet.procs[dead].wait(10)
        survivor = "b" if dead == "a" else "a"
        _poll(
            "the other worker listening",
            lambda: [r["worker"] for r in _listeners(store)] == [survivor],
            fleet.logs,
        )
        arrived = _edit_a_linked_contact(sb, "Chief Failover Officer")
        _poll("the edit in Salesforce through the new listener", arrived, fleet.logs)
        _poll(
            "the survivor's push line",
            lambda: f"push pair=main worker={survivor}" in fleet.output(survivor),
            fleet.logs,
        )
        pushes = [
            line for line in fleet.output(survivor).splitlines() if line.startswith("push pair=")
        ]
        assert pushes and all(line.endswith(" ok") for line in pushes), pushes
        del fleet.procs[dead]  # it exited by SIGKILL: not a clean stop to check
        fleet.stop()
    finally:
        fleet.kill()
        store.close()
        sb.stop()
