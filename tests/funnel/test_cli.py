"""``crm-bridge funnel`` as an admin runs it, against both emulators, cross-checked by brute force."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulatorSettings
from crm_bridge.demo.sandbox import Sandbox
from crm_bridge.funnel.repository import EventRepository
from crm_bridge.store import Store

from .brute import brute_funnel


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(
        workdir=tmp_path_factory.mktemp("funnel-cli"),
        hubspot_settings=HubSpotEmulatorSettings(rate_limits_enabled=False),
    ) as running:
        running.salesforce.emulator.seed(leads=160, seed=3)
        running.hubspot.emulator.seed(contacts=80, seed=4)
        yield running


def _run(
    sandbox: Sandbox, store: Path, *args: str, extra: str = ""
) -> subprocess.CompletedProcess[str]:
    config, secrets = sandbox.write_config(store.parent)
    if extra:
        config.write_text(config.read_text() + extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env.update(secrets)
    env["CRM_BRIDGE_STORE__URL"] = f"sqlite:///{store}"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", "funnel", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_backfilled_funnel_matches_a_brute_force_count(sandbox: Sandbox, tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    done = _run(sandbox, store, "--backfill", "--format", "json")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    with Store.open(f"sqlite:///{store}") as opened, opened.transaction(readonly=True) as tx:
        events = EventRepository(tx).events()
    assert events, "the backfill logged nothing"
    expected = brute_funnel(events, datetime.fromisoformat(model["generated_at"]))
    assert model["people"] == expected["people"] > 0
    for stage in model["stages"]:
        assert stage["count"] == expected[f"count.{stage['stage']}"], stage["stage"]
    for loss in model["losses"]:
        assert loss["count"] == expected[f"loss.{loss['stage']}"], loss["stage"]
    assert model["pipeline"] == pytest.approx(expected["pipeline"])
    assert model["won_amount"] == pytest.approx(expected["won_amount"])
    assert model["pipeline"] > 0

    again = _run(sandbox, store, "--backfill")  # a second fill adds nothing; table output
    assert again.returncode == 0, again.stderr
    assert "added=0" in again.stdout
    for title in ("funnel:", "by source", "by engagement", "by MQL month"):
        assert title in again.stdout


def test_csv_and_period(sandbox: Sandbox, tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    assert _run(sandbox, store, "--backfill", "--format", "json").returncode == 0
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).date().isoformat()
    done = _run(sandbox, store, "--format", "csv", "--since", future)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    stages = {r["stage"]: r["count"] for r in rows if r["section"] == "stage"}
    assert stages == {"mql": "0", "sal": "0", "sql": "0", "opportunity": "0", "won": "0"}


def test_bad_funnel_section_names_the_key(sandbox: Sandbox, tmp_path: Path) -> None:
    extra = '\n[funnel.main]\nsal_statuses = ["Rejected"]\n\n[funnel.nope]\nsql_statuses = []\n'
    done = _run(sandbox, tmp_path / "s.sqlite3", extra=extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "funnel.nope" in done.stderr
    assert "'Rejected' is in both" in done.stderr
    bad_date = _run(sandbox, tmp_path / "s.sqlite3", "--since", "March")
    assert bad_date.returncode == 2 and "--since" in bad_date.stderr
