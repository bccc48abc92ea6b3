"""The demo's SLA act runs against the emulators and tells the whole breach story."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.http import FakeClock
from crm_bridge.sla.demo import run_sla_demo
from crm_bridge.store import Store


def test_run_sla_demo(
    tmp_path: Path, salesforce: RunningSalesforce, hubspot: RunningHubSpot
) -> None:
    clock = FakeClock(salesforce.emulator.clock.now())
    crm = SalesforceConnector(
        SalesforceSettings(
            instance_url=salesforce.instance_url,
            token_url=salesforce.token_url,
            client_id=salesforce.client_id,
            client_secret=SecretStr(salesforce.client_secret),
            ca_bundle=salesforce.ca_path,
            objects=["Person", "Lead"],
        ),
        name="salesforce",
        clock=clock,
    )
    marketing = HubSpotConnector(
        HubSpotSettings(host=hubspot.base_url, access_token=SecretStr(hubspot.access_token)),
        name="hubspot",
        clock=clock,
    )
    store = Store.open(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    try:
        lines = run_sla_demo(
            salesforce, hubspot, crm=crm, marketing=marketing, store=store, clock=clock
        )
    finally:
        crm.close()
        marketing.close()
        store.close()
    text = "\n".join(lines)
    assert "remind=1" in text
    assert "escalate=1" in text
    assert "reassign=1" in text
    assert "lead owner is now cat" in text
    assert "recycle=1" in text
    assert "lead status 'Recycled', owner nurture; marketing lifecycle 'lead'" in text
    assert "bob: off" in text  # explain shows who was passed over and why
