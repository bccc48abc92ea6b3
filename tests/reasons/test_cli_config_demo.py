"""The ``[reasons]`` config validation, the CLI verbs end to end, and the demo's report."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_bridge.cli import reasons_cmd
from crm_bridge.config import load_config
from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.errors import ConfigError
from crm_bridge.reasons.demo import demo_report
from crm_bridge.reasons.repository import ReasonRepository
from crm_bridge.store import Store

from .conftest import TAXONOMY_V1

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "crm_bridge", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_bad_taxonomy_is_reported_with_key_and_fix(tmp_path: Path) -> None:
    text = TAXONOMY_V1.replace('category = "won"', 'category = "maybe"', 1) + (
        '\n[reasons.deprecated]\nold_code = "nope"\n'
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, builtin_only=True)
    keys = {p.key for p in caught.value.problems}
    assert "reasons.codes.product_fit.category" in keys
    rendered = str(caught.value)
    assert "CRM_BRIDGE_REASONS__CODES__PRODUCT_FIT__CATEGORY" in rendered


def test_deprecated_code_must_map_to_an_active_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TAXONOMY_V1 + '\n[reasons.deprecated]\nold_code = "nope"\n')
    with pytest.raises(ConfigError, match="maps to 'nope', which is not active"):
        load_config(path, builtin_only=True)


def test_cli_plan_install_capture_report(
    tmp_path: Path, salesforce: RunningSalesforce, hubspot: RunningHubSpot
) -> None:
    store_path = tmp_path / "state.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///{store_path}"

[connectors.sf]
type = "salesforce"
instance_url = "{salesforce.instance_url}"
token_url = "{salesforce.token_url}"
client_id = "{salesforce.client_id}"
ca_bundle = "{salesforce.ca_path}"

[connectors.hs]
type = "hubspot"
host = "{hubspot.base_url}"
"""
        + TAXONOMY_V1
    )
    env = {
        "CRM_BRIDGE_CONNECTORS__SF__CLIENT_SECRET": salesforce.client_secret,
        "CRM_BRIDGE_CONNECTORS__HS__ACCESS_TOKEN": hubspot.access_token,
        "CRM_BRIDGE_DISABLE_PLUGINS": "1",
    }
    planned = _run("reasons", "plan", "--config", str(config), env=env)
    assert planned.returncode == 0, planned.stderr
    assert "create field Opportunity.Win_Loss_Reason__c" in planned.stdout
    assert "15 change(s)" in planned.stdout

    first = _run("reasons", "install", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    assert "15 change(s)" in first.stdout
    second = _run("reasons", "install", "--config", str(config), env=env)
    assert second.returncode == 0, second.stderr
    assert "0 change(s)" in second.stdout

    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    client.Opportunity.create(
        {
            "Name": "Won",
            "AccountId": account,
            "StageName": "Closed Won",
            "CloseDate": "2026-02-01",
            "Win_Loss_Reason__c": "product_fit",
        }
    )
    # Closed before `reasons install` ran: the default leaves it alone, and says so.
    default = _run("reasons", "capture", "--plan", "--config", str(config), env=env)
    assert default.returncode == 0, default.stderr
    assert "before_since=1" in default.stdout and "valid=1" not in default.stdout
    captured = _run("reasons", "capture", "--since", "2026-01-01", "--config", str(config), env=env)
    assert captured.returncode == 0, captured.stderr
    assert "valid=1" in captured.stdout
    assert "note: no pair syncs sf's people with hs's contacts" in captured.stdout

    out = tmp_path / "r.csv"
    report = _run(
        "report", "--config", str(config), "--format", "csv", "--output", str(out), env=env
    )
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    won = next(r for r in rows if r["section"] == "reason" and r["reason"] == "product_fit")
    assert won["count"] == "1" and won["rate"] == "1.0000"

    html = tmp_path / "r.html"
    assert (
        _run("report", "--config", str(config), "-f", "html", "-o", str(html), env=env).returncode
        == 0
    )
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_every_new_verb_documents_an_example() -> None:
    commands = [c.callback for c in reasons_cmd.reasons_app.registered_commands]
    commands.append(reasons_cmd.report)
    assert len(commands) == 4
    for callback in commands:
        assert callback is not None and "Example: crm-bridge" in (callback.__doc__ or "")


def test_cli_names_the_missing_section(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    result = _run("reasons", "plan", "--config", str(config), env={})
    assert result.returncode == 2
    assert "reasons: no [reasons] section" in result.stderr


def test_demo_ends_with_a_report_on_seeded_data(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    store: Store,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    salesforce.emulator.seed(leads=80, seed=3)
    # What the demo's sync does for the seeded people: link them to marketing contacts.
    client = hubspot.client()
    org = salesforce.emulator.org
    people = [*org.records_of("Contact").values(), *org.records_of("Lead").values()]
    seen: set[str] = set()
    with store.transaction() as tx:
        for rec in people:
            if str(rec["Email"]).lower() in seen:
                continue  # the seeds' duplicates are dead-lettered by the sync, never linked
            seen.add(str(rec["Email"]).lower())
            hub = client.crm.contacts.basic_api.create(
                {"properties": {"email": str(rec["Email"]).lower(), "lastname": "Synced"}}
            )
            tx.insert_link(
                "main",
                "leads",
                crm_id=rec["Id"],
                map_id=str(hub.id),
                crm_version=None,
                map_version=None,
            )
    lines = demo_report(None, crm=sf, marketing=hs, store=store)
    text = "\n".join(lines)
    assert "taxonomy v1 installed" in text
    assert "win / loss / rejection" in text and "reason capture by rep" in text
    with store.transaction(readonly=True) as tx:
        outcomes = ReasonRepository(tx).all_outcomes()
    assert outcomes, "the seeded org has closed deals and rejected leads"
    statuses = {o.status for o in outcomes}
    assert "valid" in statuses and "missing" in statuses  # some left for the capture to flag
    assert any(o.pushed_code for o in outcomes)
