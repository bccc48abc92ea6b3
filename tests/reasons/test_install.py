"""``reasons plan|install`` on both emulators through the real clients: fresh, again, changed."""

from __future__ import annotations

from typing import Any

import pytest

from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.reasons import install

from .conftest import TAXONOMY_V2, reasons_settings


def _calls(sf: SalesforceConnector, hs: HubSpotConnector) -> dict[str, int]:
    return {
        **{f"sf:{k}": v for k, v in sf.calls.items() if v},
        **{f"hs:{k}": v for k, v in hs.calls.items() if v},
    }


def _hubspot_definitions(hubspot: RunningHubSpot) -> dict[str, Any]:
    defs = hubspot.emulator.portal.properties.defs
    return {obj: {n: d.to_json() for n, d in by_name.items()} for obj, by_name in defs.items()}


def test_fresh_install_creates_everything_and_second_run_changes_nothing(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    settings = reasons_settings()
    before = install.plan(settings, crm=sf, marketing=hs)
    assert {s.change for s in before.steps} == {"create"}
    assert before.changes == len(before.steps) == 4 + 3 + 8  # fields, rules (+note rule), props

    done = install.apply(settings, crm=sf, marketing=hs)
    assert [s.change for s in done.steps] == ["create"] * len(done.steps)

    # The org really has the restricted picklist, and the rule is enforced on writes.
    field = sf.field_definition("Opportunity", "Win_Loss_Reason__c")
    assert field is not None and field.restricted
    assert [v.value for v in field.values] == [
        "price",
        "no_budget",
        "competitor",
        "other_loss",
        "product_fit",
        "relationship",
    ]
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    opp = client.Opportunity.create(
        {
            "Name": "Deal",
            "AccountId": account,
            "StageName": "Prospecting",
            "CloseDate": "2026-03-01",
        }
    )["id"]
    with pytest.raises(Exception, match="Win/Loss Reason"):
        client.Opportunity.update(opp, {"StageName": "Closed Lost"})
    with pytest.raises(Exception, match="restricted picklist"):
        client.Opportunity.update(opp, {"StageName": "Closed Lost", "Win_Loss_Reason__c": "bogus"})
    with pytest.raises(Exception, match="needs a note"):
        client.Opportunity.update(
            opp, {"StageName": "Closed Lost", "Win_Loss_Reason__c": "other_loss"}
        )
    client.Opportunity.update(opp, {"StageName": "Closed Lost", "Win_Loss_Reason__c": "price"})

    # HubSpot enforces the enumeration on writes.
    hs_client = hubspot.client()
    with pytest.raises(Exception, match="not one of the allowed options"):
        hs_client.crm.contacts.basic_api.create({"properties": {"last_loss_reason": "bogus"}})
    hs_client.crm.contacts.basic_api.create({"properties": {"last_loss_reason": "price"}})

    # Second run: nothing to change, and no write reaches either side.
    sf.calls.clear()
    hs.calls.clear()
    tooling_before = salesforce.emulator.org.tooling.dump()
    props_before = _hubspot_definitions(hubspot)
    again = install.apply(settings, crm=sf, marketing=hs)
    assert {s.change for s in again.steps} == {"unchanged"}
    assert again.changes == 0
    # Exactly the reads (plan + ensure each read once per step): any write would add a call.
    steps = len(again.steps)
    assert _calls(sf, hs) == {"sf:tooling": 2 * 7, "hs:properties": 2 * (steps - 7)}
    assert salesforce.emulator.org.tooling.dump() == tooling_before
    assert _hubspot_definitions(hubspot) == props_before
    assert install.plan(settings, crm=sf, marketing=hs).changes == 0


def test_taxonomy_change_adds_and_deactivates_without_losing_old_values(
    sf: SalesforceConnector,
    hs: HubSpotConnector,
    salesforce: RunningSalesforce,
    hubspot: RunningHubSpot,
) -> None:
    install.apply(reasons_settings(), crm=sf, marketing=hs)
    client = salesforce.simple_salesforce()
    account = client.Account.create({"Name": "Acme"})["id"]
    old_opp = client.Opportunity.create(
        {
            "Name": "Old deal",
            "AccountId": account,
            "StageName": "Closed Lost",
            "CloseDate": "2026-01-10",
            "Win_Loss_Reason__c": "no_budget",
        }
    )["id"]
    deal = hubspot.client().crm.deals.basic_api.create(
        {"properties": {"dealname": "Old", "crm_bridge_deal_reason": "no_budget"}}
    )

    v2 = reasons_settings(TAXONOMY_V2)
    planned = install.plan(v2, crm=sf, marketing=hs)
    opp_step = next(s for s in planned.steps if s.target == "Opportunity.Win_Loss_Reason__c")
    assert opp_step.change == "update"
    assert "+ timing (Bad timing)" in opp_step.details
    assert "deactivate no_budget (kept on existing records)" in opp_step.details

    install.apply(v2, crm=sf, marketing=hs)
    field = sf.field_definition("Opportunity", "Win_Loss_Reason__c")
    assert field is not None
    by_value = {v.value: v.active for v in field.values}
    assert by_value["timing"] is True
    assert by_value["no_budget"] is False  # kept, inactive
    # The historic record keeps its value; new writes may not use it.
    assert client.Opportunity.get(old_opp)["Win_Loss_Reason__c"] == "no_budget"
    with pytest.raises(Exception, match="restricted picklist"):
        client.Opportunity.create(
            {
                "Name": "New",
                "AccountId": account,
                "StageName": "Closed Lost",
                "CloseDate": "2026-02-10",
                "Win_Loss_Reason__c": "no_budget",
            }
        )
    prop = hs.field_definition("deals", "crm_bridge_deal_reason")
    assert prop is not None
    assert {v.value: v.active for v in prop.values}["no_budget"] is False
    read: Any = hubspot.client().crm.deals.basic_api.get_by_id(
        deal.id, properties=["crm_bridge_deal_reason"]
    )
    assert read.properties["crm_bridge_deal_reason"] == "no_budget"

    # And v2 is now stable too.
    assert install.plan(v2, crm=sf, marketing=hs).changes == 0
