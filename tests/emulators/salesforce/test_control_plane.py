"""Merge, seed, snapshot/load and the other Salesforce-specific control routes."""

from __future__ import annotations

from typing import Any

import httpx

from crm_bridge.connectors.salesforce.emulator import (
    RunningSalesforce,
    SalesforceEmulator,
    SalesforceEmulatorSettings,
)


def test_merge_marks_losers_deleted_with_master_record_id(
    salesforce: RunningSalesforce, sf: Any, control: Any
) -> None:
    salesforce.emulator.seed(leads=2)
    ids = [
        sf.Lead.create({"LastName": n, "Company": "C", "Email": "m@x.example"})["id"]
        for n in ("Master", "Loser1", "Loser2")
    ]
    before = sf.Lead.get(ids[0])["SystemModstamp"]
    control("clock", {"advance": 5})
    control(
        "merge",
        {
            "object": "Lead",
            "master": ids[0],
            "losers": ids[1:],
            "as_user": "rep1.0@crm-bridge.example",
        },
    )
    live = sf.query("SELECT Id FROM Lead WHERE Email = 'm@x.example'")["records"]
    assert [r["Id"] for r in live] == [ids[0]]
    gone = sf.query_all(
        "SELECT Id, IsDeleted, MasterRecordId, LastModifiedById FROM Lead "
        "WHERE MasterRecordId != null",
        include_deleted=True,
    )["records"]
    assert {r["Id"] for r in gone} == set(ids[1:])
    rep_id = salesforce.emulator.user_id("rep1.0@crm-bridge.example")
    assert all(
        r["IsDeleted"] and r["MasterRecordId"] == ids[0] and r["LastModifiedById"] == rep_id
        for r in gone
    )
    assert sf.Lead.get(ids[0])["SystemModstamp"] > before


def test_merge_of_a_deleted_record_fails(sf: Any, http: httpx.Client) -> None:
    a = sf.Lead.create({"LastName": "A", "Company": "C"})["id"]
    b = sf.Lead.create({"LastName": "B", "Company": "C"})["id"]
    sf.Lead.delete(b)
    resp = http.post("/__emulator__/merge", json={"object": "Lead", "master": a, "losers": [b]})
    assert resp.status_code == 400
    assert resp.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_seed_is_realistic_and_deterministic(salesforce: RunningSalesforce, sf: Any) -> None:
    salesforce.emulator.seed(leads=200, seed=7)
    users = sf.query("SELECT Username, ManagerId, Title FROM User")["records"]
    assert len(users) == 6  # integration, manager, four reps
    assert sum(1 for u in users if u["ManagerId"]) == 4
    leads = sf.query_all("SELECT Email, Status, LeadSource, Owner.Title, Company, Phone FROM Lead")[
        "records"
    ]
    assert len(leads) == 200
    emails = [lead["Email"].lower() for lead in leads]
    assert len(set(emails)) < len(emails)  # a few duplicate emails
    assert {lead["Status"] for lead in leads} >= {"Open - Not Contacted", "Working - Contacted"}
    assert any(lead["Phone"] is None for lead in leads)
    stages = {o["StageName"] for o in sf.query_all("SELECT StageName FROM Opportunity")["records"]}
    assert {"Closed Won", "Closed Lost", "Prospecting"} <= stages
    assert sf.query("SELECT COUNT() FROM OpportunityContactRole")["totalSize"] > 0
    other = SalesforceEmulator()
    other.seed(leads=200, seed=7)
    first = sorted(r["Email"] for r in other.org.records_of("Lead").values())
    assert first == sorted(lead["Email"] for lead in leads)


def test_snapshot_and_load_roundtrip(
    salesforce: RunningSalesforce, sf: Any, http: httpx.Client
) -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.Ext_Id__c",
            "Metadata": {"label": "Ext", "type": "Text", "length": 40, "externalId": True},
        },
    )
    lead = sf.Lead.create({"LastName": "Snap", "Company": "C", "Ext_Id__c": "s1"})["id"]
    snap = http.get("/__emulator__/snapshot").json()
    assert http.post("/__emulator__/reset").status_code == 204
    assert http.post("/__emulator__/load", json=snap).status_code == 204
    client = salesforce.simple_salesforce()
    assert client.Lead.get(lead)["Ext_Id__c"] == "s1"
    assert client.Lead.upsert("Ext_Id__c/s1", {"Title": "T"}) == 200  # index rebuilt
    new_id = client.Lead.create({"LastName": "After", "Company": "C"})["id"]
    assert new_id != lead
    client.session.close()


def test_seed_route_and_credentials(salesforce: RunningSalesforce, control: Any) -> None:
    counts = control("seed", {"leads": 20})
    assert counts["Lead"] == 20 and counts["User"] == 6
    creds = salesforce.credentials()
    assert creds["token_url"] == f"{salesforce.base_url}/services/oauth2/token"
    assert creds["api_version"] == "59.0"
    assert set(creds) >= {"base_url", "client_id", "client_secret", "ca_path"}


def test_settings_are_honoured() -> None:
    settings = SalesforceEmulatorSettings(
        daily_api_limit=3, token_ttl_seconds=60, duplicate_rules=True
    )
    with SalesforceEmulator(settings).start() as running:
        sf = running.simple_salesforce()
        sf.query("SELECT Id FROM User")
        assert sf.api_usage["api-usage"].total == 3
        assert running.emulator.org.duplicate_rules is True
        sf.session.close()
