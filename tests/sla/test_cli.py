"""``crm-bridge sla status | explain | report`` on a store the engine filled (no CRM calls)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crm_bridge.cli import app

from .conftest import JSON_URL, SLACK_URL, T0, SlaWorld, admin_config, sla_config
from .tomlish import dumps


def test_status_explain_report(
    world: SlaWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead, _ = world.new_lead("Cli")
    other, _ = world.new_lead("Calm")
    world.cycle()
    world.as_rep("ann").Lead.update(other, {"Status": "Accepted"})
    world.advance_to(T0 + timedelta(hours=4, minutes=30))  # lead: accept breached, escalated
    world.cycle()

    sla = sla_config()
    sla["webhooks"] = {n: {"format": h["format"]} for n, h in sla["webhooks"].items()}
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__MANAGERS__URL", SLACK_URL)
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__OPS__URL", JSON_URL)
    monkeypatch.setenv("CRM_BRIDGE_SLA__WEBHOOKS__REPS__URL", JSON_URL)
    config = tmp_path / "c.toml"
    store = {"url": f"sqlite:///{world.store_path}"}
    config.write_text(dumps(admin_config(monkeypatch, store=store, sla=sla)))
    runner = CliRunner(env={"COLUMNS": "250"})  # the table must not fold the ids

    status = runner.invoke(app, ["sla", "status", "--config", str(config)])
    assert status.exit_code == 0, status.output
    # The CLI measures against the real clock (later than the emulators' frozen 2026-03-02),
    # so every running clock shows as breached; the steps taken come from the ledger.
    row = next(line for line in status.output.splitlines() if lead in line and "accept" in line)
    assert "breached" in row and "escalate" in row
    assert "3 running clocks" in status.output  # lead: accept + first touch; other: touch
    assert "secret-token" not in status.output

    explain = runner.invoke(app, ["sla", "explain", lead, "--config", str(config)])
    assert explain.exit_code == 0, explain.output
    assert "calendar=inside tz=UTC" in explain.output
    assert "escalate (accept): at 270/240 min, webhooks=managers,ops" in explain.output

    report = runner.invoke(app, ["sla", "report", "--days", "3650", "--config", str(config)])
    assert report.exit_code == 0, report.output
    assert "SAL rate by source:" in report.output
    assert "ORGANIC_SEARCH: 1/2 = 50%" in report.output

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    # The webhook env vars alone make a partial [sla]: every missing key is named.
    partial = runner.invoke(app, ["sla", "status", "--config", str(empty)])
    assert partial.exit_code != 0
    assert "sla.crm: required but not set" in partial.output
    for name in ("MANAGERS", "OPS", "REPS"):
        monkeypatch.delenv(f"CRM_BRIDGE_SLA__WEBHOOKS__{name}__URL")
    for name in ("SALESFORCE__CLIENT_SECRET", "HUBSPOT__ACCESS_TOKEN"):
        monkeypatch.delenv(f"CRM_BRIDGE_CONNECTORS__{name}")  # the empty config has no connectors
    none = runner.invoke(app, ["sla", "status", "--config", str(empty)])
    assert none.exit_code != 0
    assert "no [sla] section" in none.output
