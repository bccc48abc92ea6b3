"""Salesforce's person object (Leads and Contacts as one), through the emulator over TLS."""

from __future__ import annotations

from crm_bridge.connector import Upsert
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.people import kind_of

from .conftest import MakeConnector


def test_the_person_stream_holds_leads_and_contacts_in_one_order(
    connector: SalesforceConnector, salesforce: RunningSalesforce
) -> None:
    sf = salesforce.simple_salesforce()
    lead = sf.Lead.create({"LastName": "L", "Company": "Acme", "Email": "l@people.example"})["id"]
    salesforce.emulator.clock.advance(1)
    contact = sf.Contact.create({"LastName": "C", "Email": "c@people.example"})["id"]
    salesforce.emulator.clock.advance(1)
    sf.Lead.update(lead, {"Title": "later"})

    records = [r for r in connector.changes("Person", None) if r.id in (lead, contact)]
    assert [r.id for r in records] == [contact, lead]  # the lead's edit is the newest
    keys = [(r.modified_at, r.id) for r in connector.changes("Person", None)]
    assert keys == sorted(keys)
    by_id = {r.id: r for r in records}
    assert by_id[lead].object == by_id[contact].object == "Person"
    assert "Company" in by_id[contact].absent and "Status" in by_id[contact].absent
    assert "Company" not in by_id[lead].absent and by_id[lead].fields["Company"] == "Acme"
    fetched = {r.id for r in connector.fetch("Person", [contact, lead, "00Q5g00000ZZZZZZZZ"])}
    assert fetched == {lead, contact}


def test_new_people_become_leads_or_contacts_as_configured(
    make_connector: MakeConnector, salesforce: RunningSalesforce
) -> None:
    row = {"LastName": "New", "Company": "Acme", "Email": "new@people.example"}
    as_lead = make_connector()
    (made,) = as_lead.write("Person", [Upsert(key="a", fields=row, match_on="Email")])
    assert made.ok and kind_of(made.id or "") == "Lead"

    as_contact = make_connector(person_create_as="Contact")
    other = {**row, "Email": "other@people.example"}
    (made,) = as_contact.write("Person", [Upsert(key="b", fields=other, match_on="Email")])
    assert made.ok and kind_of(made.id or "") == "Contact"  # Company, a Lead field, left out
    contact = salesforce.simple_salesforce().Contact.get(made.id)
    assert contact["Email"] == "other@people.example"

    # an update goes to the record's own kind, whatever creates become
    (edit,) = as_contact.write(
        "Person", [Upsert(key="c", id=made.id, fields={"Title": "VP", "Status": "Working"})]
    )
    assert edit.ok and salesforce.simple_salesforce().Contact.get(made.id)["Title"] == "VP"
    (bad,) = as_contact.write("Person", [Upsert(key="d", id="001000000000001", fields={})])
    assert not bad.ok and bad.error_code == "MALFORMED_ID"


def test_lead_and_contact_writes_of_one_batch_share_one_composite_call(
    connector: SalesforceConnector, salesforce: RunningSalesforce
) -> None:
    sf = salesforce.simple_salesforce()
    lead = sf.Lead.create({"LastName": "L", "Company": "Acme", "Email": "l2@people.example"})["id"]
    contact = sf.Contact.create({"LastName": "C", "Email": "c2@people.example"})["id"]
    connector.calls.clear()
    results = connector.write(
        "Person",
        [
            Upsert(key="c", id=contact, fields={"Title": "Buyer"}),
            Upsert(key="l", id=lead, fields={"Title": "Champion"}),
        ],
    )
    assert [(r.key, r.ok) for r in results] == [("c", True), ("l", True)]  # input order
    assert connector.calls["composite"] == 1  # both kinds' Collections in one request
    assert sf.Lead.get(lead)["Title"] == "Champion"
    assert sf.Contact.get(contact)["Title"] == "Buyer"
