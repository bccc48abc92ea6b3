"""Seed realism, snapshot/load, reset and the control plane."""

from __future__ import annotations

from collections import Counter

import httpx
from hubspot.crm.contacts import SimplePublicObjectInputForCreate

from crm_bridge.connectors.hubspot.emulator import HubSpotEmulator, RunningHubSpot


def test_seed_is_realistic_and_deterministic(hubspot: RunningHubSpot) -> None:
    summary = hubspot.control("POST", "seed", {"contacts": 400, "seed": 7})
    assert summary["contacts"] == 400 and summary["deals"] > 0 and summary["engagements"] > 0
    portal = hubspot.emulator.portal
    contacts = list(portal.store("contacts").live.values())
    stages = Counter(c.props["lifecyclestage"] for c in contacts)
    assert stages["subscriber"] > stages["customer"] > 0
    owned = [c for c in contacts if "hubspot_owner_id" in c.props]
    assert owned and all(c.props["lifecyclestage"] != "subscriber" for c in owned)
    names = Counter((c.props["firstname"], c.props["lastname"]) for c in contacts)
    assert names.most_common(1)[0][1] > 1  # near-duplicates exist
    for key in ("email", "company", "jobtitle", "phone", "hs_analytics_source", "hs_lead_status"):
        assert all(key in c.props for c in contacts)
    deal_stages = {d.props["dealstage"] for d in portal.store("deals").live.values()}
    assert "closedwon" in deal_stages and len(deal_stages) >= 3
    deal = next(iter(portal.store("deals").live.values()))
    assert portal.associations.links("deals", deal.id, "contacts")
    assert portal.associations.links("deals", deal.id, "companies")
    other = HubSpotEmulator()
    other.seed(contacts=400, seed=7)
    assert [c.props["email"] for c in other.portal.store("contacts").live.values()] == [
        c.props["email"] for c in contacts
    ]


def test_seeded_records_pass_validation_when_echoed_back(hubspot: RunningHubSpot) -> None:
    hubspot.emulator.seed(contacts=60, seed=3)
    portal = hubspot.emulator.portal
    for obj in ("contacts", "companies", "deals", "calls", "emails", "meetings"):
        for rec in portal.store(obj).live.values():
            writable = {
                k: v for k, v in rec.props.items() if not portal.property_def(obj, k).read_only
            }  # type: ignore[union-attr]
            portal.validate(obj, writable, rec)


def test_snapshot_and_load_round_trip_over_http(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    cid = api.create(SimplePublicObjectInputForCreate(properties={"email": "snap@x.example"})).id
    hubspot.emulator.seed(contacts=20, seed=2)
    snap = hubspot.control("GET", "snapshot")
    hubspot.control("POST", "reset")
    assert api.get_page().results == []
    hubspot.control("POST", "load", snap)
    assert api.get_by_id(cid).properties["email"] == "snap@x.example"
    assert len(hubspot.emulator.portal.store("contacts").live) == 21
    again = api.create(SimplePublicObjectInputForCreate(properties={"email": "new@x.example"}))
    assert int(again.id) > max(hubspot.emulator.portal.store("deals").live, default=0)


def test_load_rejects_foreign_data(hubspot: RunningHubSpot) -> None:
    try:
        hubspot.emulator.load({"format": "something-else"})
    except ValueError as exc:
        assert "snapshot" in str(exc)
    else:
        raise AssertionError("load accepted a foreign snapshot")


def test_credentials_and_standalone_start() -> None:
    emulator = HubSpotEmulator()
    with emulator.start() as running:
        creds = running.credentials()
        assert creds["HUBSPOT_BASE_URL"] == running.base_url
        assert creds["HUBSPOT_ACCESS_TOKEN"] == "pat-na1-emulator"
        resp = httpx.get(
            f"{running.base_url}/crm/v3/objects/contacts",
            headers={"Authorization": f"Bearer {creds['HUBSPOT_ACCESS_TOKEN']}"},
        )
        assert resp.status_code == 200
