"""Lead conversion through the real clients: the link follows the lead to its Contact.

The pair syncs Salesforce's person (Leads and Contacts) with HubSpot contacts.  A rep converts a
lead in the Salesforce emulator (``convertLead``, as the UI does); the bridge must keep the
HubSpot contact, move the link to the new Contact, never write to the converted lead again, and
carry later edits both ways -- including an edit that raced the conversion.
"""

from __future__ import annotations

from typing import Any

from crm_bridge.connector import Upsert
from crm_bridge.connectors.salesforce.people import kind_of
from tests.sync.emulated import Make


def _linked_pair(e: Any, email: str) -> tuple[str, str]:
    lead = e.create_lead(email, FirstName="Ann", Title="Analyst")
    e.advance(1)
    e.cycle()
    link = e.link_for("crm", lead)
    assert link is not None and link.map_id
    return lead, link.map_id


def _contact_of(e: Any, lead: str) -> str:
    row = e.rep().query(f"SELECT ConvertedContactId FROM Lead WHERE Id = '{lead}'")["records"]
    return str(row[0]["ConvertedContactId"])


def test_a_converted_lead_keeps_its_hubspot_contact_and_later_edits_flow_both_ways(
    make: Make,
) -> None:
    e = make()
    lead, hub = _linked_pair(e, "ann@convert.example")
    e.salesforce.emulator.convert_lead(lead)
    e.advance(1)
    report = e.cycle()

    contact = _contact_of(e, lead)
    link = e.link_for("map", hub)
    assert link is not None and link.crm_id == contact and kind_of(contact) == "Contact"
    assert e.link_for("crm", lead) is None or e.link_for("crm", lead) == link
    assert len(e.contacts()) == 1  # no second HubSpot contact for the new Contact
    assert e.dead_letters() == [] and report.counts["dead_lettered"] == 0
    # The conversion is a person event for the funnel: when, the account, the opportunity.
    assert report.counts["converted"] == 1
    lead_row = e.rep().query(
        f"SELECT ConvertedAccountId, ConvertedOpportunityId FROM Lead WHERE Id = '{lead}'"
    )["records"][0]
    with e.session.store.transaction(readonly=True) as tx:
        (event,) = tx.audit_entries(kind_prefix="sync.person.converted", pair="main")
    assert event.subject == lead
    assert event.data["into"] == contact
    assert event.data["account"] == lead_row["ConvertedAccountId"]
    assert event.data["opportunity"] == lead_row["ConvertedOpportunityId"]
    assert e.cycle().counts["converted"] == 0  # recorded once, not on every re-read

    e.update_contact(hub, jobtitle="VP Marketing")
    e.advance(1)
    e.cycle()
    assert e.rep().Contact.get(contact)["Title"] == "VP Marketing"

    e.rep().Contact.update(contact, {"Title": "CMO"})
    e.advance(1)
    e.cycle()
    assert e.contact(hub)["jobtitle"] == "CMO"
    assert e.dead_letters() == []


def test_a_marketing_edit_racing_the_conversion_reaches_the_contact(make: Make) -> None:
    e = make()
    lead, hub = _linked_pair(e, "bo@convert.example")
    e.update_contact(hub, jobtitle="Head of Ops")
    e.salesforce.emulator.convert_lead(lead)
    e.advance(1)
    e.cycle()
    contact = _contact_of(e, lead)
    assert e.rep().Contact.get(contact)["Title"] == "Head of Ops"
    assert e.lead(lead)["Title"] == "Analyst"  # nothing written to the converted lead
    assert e.dead_letters() == []


def test_a_write_refused_by_a_converted_lead_is_no_dead_letter(make: Make) -> None:
    """The conversion lands between the bridge's read and its write to the lead."""
    e = make()
    lead, hub = _linked_pair(e, "cy@convert.example")
    e.update_contact(hub, jobtitle="Director")
    e.advance(1)
    original = e.crm.write

    def converted_on_the_way(obj: str, ops: Any) -> Any:
        e.crm.write = original  # once
        e.salesforce.emulator.convert_lead(lead)
        return original(obj, ops)

    e.crm.write = converted_on_the_way
    first = e.cycle()
    # The conversion's new Opportunity names the new Contact, whose link the next cycle makes:
    # the deal waits for it (retried then), and nothing else is dead-lettered.
    waiting = [(d.obj, d.error_code) for d in e.dead_letters()]
    assert first.counts["target_moved"] == 1 and set(waiting) <= {("deals", "REFERENCE_NOT_LINKED")}
    e.cycle()
    assert e.rep().Contact.get(_contact_of(e, lead))["Title"] == "Director"
    assert e.dead_letters() == []


def test_the_connector_refuses_nothing_silently_on_a_converted_lead(make: Make) -> None:
    e = make()
    lead, _ = _linked_pair(e, "di@convert.example")
    e.salesforce.emulator.convert_lead(lead)
    (result,) = e.crm.write("Person", [Upsert(key="k", id=lead, fields={"Title": "x"})])
    assert not result.ok and result.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"
    (moved,) = e.crm.fetch("Person", [lead])
    assert moved.deleted and moved.merged_into == _contact_of(e, lead)


def test_converting_into_a_contact_already_linked_closes_the_leads_link_into_it(
    make: Make,
) -> None:
    e = make()
    lead, hub_lead = _linked_pair(e, "ed@lead.example")
    account = e.rep().Account.create({"Name": "Ed Co"})["id"]
    contact = e.rep().Contact.create(
        {"LastName": "Ed", "Email": "ed@contact.example", "AccountId": account}
    )["id"]
    e.advance(1)
    e.cycle()
    contact_link = e.link_for("crm", contact)
    assert contact_link is not None and contact_link.map_id
    e.salesforce.emulator.convert_lead(lead, account_id=account, contact_id=contact)
    e.advance(1)
    e.cycle()
    survivor = e.link_for("crm", contact)
    assert survivor is not None and survivor.id == contact_link.id
    closed = e.link_for("map", hub_lead)
    assert closed is not None and closed.status == "merged"  # closed into the contact's link
    assert closed.merged_into == survivor.id
    # The pair's delete policy is "flag": the lead's HubSpot twin stays, and is not taken for a
    # new person (no new lead is made from it), now or in a later cycle.
    assert set(e.contacts()) == {"ed@contact.example", "ed@lead.example"}
    before = e.data()
    e.cycle()
    assert e.data() == before
    live = e.rep().query_all("SELECT Id FROM Lead WHERE IsConverted = false")["records"]
    assert live == []
    assert e.dead_letters() == []
