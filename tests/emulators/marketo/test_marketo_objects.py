"""Opportunities, roles and companies over httpx, and the 1018 answers under native CRM sync."""

from __future__ import annotations

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads

OPPS = "/rest/v1/opportunities.json"
ROLES = "/rest/v1/opportunities/roles.json"


def test_opportunity_sync_by_dedupe_fields(api: Api) -> None:
    [meta] = api.ok("GET", "/rest/v1/opportunities/describe.json")
    assert meta["idField"] == "marketoGUID" and meta["dedupeFields"] == ["externalOpportunityId"]
    created = api.ok(
        "POST",
        OPPS,
        json={
            "input": [
                {"externalOpportunityId": "o-1", "name": "Big deal", "amount": 1000},
                {"externalOpportunityId": "o-2"},
                {"name": "no key"},
                {"externalOpportunityId": "o-3", "name": "x", "bogus": 1},
            ]
        },
    )
    assert created[0]["status"] == "created" and created[0]["seq"] == 0
    assert [c.get("reasons", [{}])[0].get("code") for c in created[1:]] == ["1003", "1003", "1006"]
    guid = created[0]["marketoGUID"]
    updated = api.ok(
        "POST", OPPS, json={"input": [{"externalOpportunityId": "o-1", "stage": "Won"}]}
    )
    assert updated == [{"seq": 0, "marketoGUID": guid, "status": "updated"}]
    only = api.ok(
        "POST",
        OPPS,
        json={"action": "createOnly", "input": [{"externalOpportunityId": "o-1", "name": "n"}]},
    )
    assert only[0]["reasons"][0]["code"] == "1017"
    by_id = api.ok(
        "POST",
        OPPS,
        json={
            "action": "updateOnly",
            "dedupeBy": "idField",
            "input": [{"marketoGUID": "nope", "stage": "x"}],
        },
    )
    assert by_id[0]["reasons"][0]["code"] == "1013"
    assert api.error("POST", OPPS, json={"dedupeBy": "idField", "input": []}) == "1003"
    [found] = api.ok(
        "GET",
        OPPS,
        params={
            "filterType": "externalOpportunityId",
            "filterValues": "o-1",
            "fields": "name,stage,amount",
        },
    )
    assert (found["marketoGUID"], found["name"], found["stage"], found["amount"]) == (
        guid,
        "Big deal",
        "Won",
        1000,
    )
    assert api.error("GET", OPPS, params={"filterType": "stage", "filterValues": "Won"}) == "1003"
    deleted = api.ok(
        "POST",
        "/rest/v1/opportunities/delete.json",
        json={"input": [{"externalOpportunityId": "o-1"}]},
    )
    assert deleted[0]["status"] == "deleted"


def test_roles_compound_key(api: Api) -> None:
    [lead] = make_leads(api, {"email": "r@example.com"})
    [meta] = api.ok("GET", "/rest/v1/opportunities/roles/describe.json")
    assert meta["dedupeFields"] == ["externalOpportunityId", "leadId", "role"]
    role = {"externalOpportunityId": "o-1", "leadId": lead, "role": "Champion"}
    assert api.ok("POST", ROLES, json={"input": [role]})[0]["status"] == "created"
    assert (
        api.ok("POST", ROLES, json={"input": [{**role, "isPrimary": True}]})[0]["status"]
        == "updated"
    )
    found = api.ok("POST", ROLES, params={"_method": "GET"}, json={"input": [role]})
    assert len(found) == 1 and found[0]["leadId"] == lead
    found = api.ok(
        "GET",
        ROLES,
        params={"filterType": "leadId", "filterValues": str(lead), "fields": "role,isPrimary"},
    )
    assert (found[0]["role"], found[0]["isPrimary"]) == ("Champion", True)


def test_native_crm_sync_locks_opportunities_and_roles(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "settings", {"native_crm_sync": True})
    body = {"input": [{"externalOpportunityId": "o-1", "name": "x"}]}
    assert api.error("POST", OPPS, json=body) == "1018"
    assert api.error("POST", "/rest/v1/opportunities/delete.json", json=body) == "1018"
    assert (
        api.ok("GET", OPPS, params={"filterType": "externalOpportunityId", "filterValues": "o-1"})
        == []
    )  # reads still work
    assert api.error("GET", "/rest/v1/opportunities/roles/describe.json") == "1018"
    assert api.error("POST", ROLES, json={"input": []}) == "1018"
    marketo.emulator.reset()  # settings come back with a reset
    assert marketo.emulator.settings.native_crm_sync is False


def test_companies(api: Api) -> None:
    [meta] = api.ok("GET", "/rest/v1/companies/describe.json")
    assert meta["idField"] == "id" and meta["dedupeFields"] == ["externalCompanyId"]
    created = api.ok(
        "POST",
        "/rest/v1/companies.json",
        json={
            "input": [
                {"externalCompanyId": "acme", "company": "Acme", "industry": "Anvils"},
            ]
        },
    )
    assert created[0]["status"] == "created" and isinstance(created[0]["id"], int)
    again = api.ok(
        "POST",
        "/rest/v1/companies.json",
        json={
            "input": [
                {"externalCompanyId": "acme", "numberOfEmployees": 50},
            ]
        },
    )
    assert again == [{"seq": 0, "id": created[0]["id"], "status": "updated"}]
    [found] = api.ok(
        "GET",
        "/rest/v1/companies.json",
        params={
            "filterType": "externalCompanyId",
            "filterValues": "acme",
            "fields": "company,industry,numberOfEmployees",
        },
    )
    assert (found["company"], found["industry"], found["numberOfEmployees"]) == (
        "Acme",
        "Anvils",
        50,
    )
    assert (
        api.error(
            "GET",
            "/rest/v1/companies.json",
            params={"filterType": "externalCompanyId", "filterValues": "acme", "fields": "nope"},
        )
        == "1006"
    )


def test_duplicate_key_in_one_input_is_skipped_1036(api: Api) -> None:
    result = api.ok(
        "POST",
        "/rest/v1/companies.json",
        json={
            "input": [
                {"externalCompanyId": "d", "company": "D1"},
                {"externalCompanyId": "d", "company": "D2"},
            ]
        },
    )
    assert result[0]["status"] == "created"
    assert result[1]["status"] == "skipped" and result[1]["reasons"][0]["code"] == "1036"
