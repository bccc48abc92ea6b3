"""Accounts <-> companies through the real clients, and a contact's account as its company.

The preset syncs Salesforce accounts to HubSpot companies (matched on the web domain) before
people, and a Contact's ``AccountId`` becomes the HubSpot contact's primary company
(``associatedcompanyid``) -- translated through the accounts' links, never copied as an id.
"""

from __future__ import annotations

from typing import Any

from tests.sync.emulated import Make


def _companies(e: Any) -> dict[str, dict[str, Any]]:
    found = e.marketer().crm.companies.get_all(properties=["name", "domain"])
    return {str(c.id): dict(c.properties) for c in found}


def _account_links(e: Any) -> list[Any]:
    with e.session.store.transaction(readonly=True) as tx:
        return list(tx.iter_links("main", "accounts"))


def test_an_account_becomes_a_company_and_its_contact_is_associated_with_it(make: Make) -> None:
    e = make()
    acme = e.rep().Account.create({"Name": "Acme", "Website": "https://www.acme.example/"})["id"]
    contact = e.rep().Contact.create(
        {"LastName": "Ng", "FirstName": "Ann", "Email": "ann@acme.example", "AccountId": acme}
    )["id"]
    e.advance(1)
    report = e.cycle()

    (link,) = _account_links(e)
    assert link.crm_id == acme and link.map_id is not None
    company = _companies(e)[link.map_id]
    assert company["name"] == "Acme" and company["domain"] == "acme.example"
    person = e.link_for("crm", contact)
    assert person is not None and person.map_id is not None
    assert e.contact(person.map_id, "associatedcompanyid")["associatedcompanyid"] == link.map_id
    assert report.counts["dead_lettered"] == 0 and e.dead_letters() == []

    # The rep moves the contact to another account: its HubSpot company moves with it.
    globex = e.rep().Account.create({"Name": "Globex", "Website": "globex.example"})["id"]
    e.rep().Contact.update(contact, {"AccountId": globex})
    e.advance(1)
    e.cycle()
    moved = next(lk for lk in _account_links(e) if lk.crm_id == globex)
    assert e.contact(person.map_id, "associatedcompanyid")["associatedcompanyid"] == moved.map_id


def test_an_existing_company_with_the_same_domain_is_linked_not_duplicated(make: Make) -> None:
    e = make()
    e.marketer().crm.companies.basic_api.create(
        {"properties": {"name": "Initech Inc", "domain": "initech.example"}}
    )
    e.rep().Account.create({"Name": "Initech", "Website": "http://WWW.initech.example"})
    e.advance(1)
    e.cycle()
    assert [c["domain"] for c in _companies(e).values()] == ["initech.example"]
    assert len(_account_links(e)) == 1


def test_a_converted_leads_new_account_follows_it_to_hubspot(make: Make) -> None:
    e = make()
    lead = e.create_lead("cy@hooli.example", FirstName="Cy", Company="Hooli")
    e.advance(1)
    e.cycle()
    hub = e.link_for("crm", lead).map_id  # type: ignore[union-attr]
    assert e.contact(hub, "associatedcompanyid")["associatedcompanyid"] is None  # a lead: none

    e.salesforce.emulator.convert_lead(lead)
    e.advance(1)
    e.cycle()
    account = e.rep().query(f"SELECT ConvertedAccountId FROM Lead WHERE Id = '{lead}'")["records"][
        0
    ]["ConvertedAccountId"]
    company = next(lk.map_id for lk in _account_links(e) if lk.crm_id == account)
    assert _companies(e)[company]["name"] == "Hooli"
    assert e.contact(hub, "associatedcompanyid")["associatedcompanyid"] == company
    assert e.dead_letters() == []


def test_a_person_created_as_a_contact_starts_under_its_companys_account(make: Make) -> None:
    """``person_create_as = "Contact"``: the account rule is the marketing person's company."""
    e = make(salesforce_overrides={"person_create_as": "Contact"})
    acme = e.rep().Account.create({"Name": "Acme", "Website": "acme.example"})["id"]
    e.advance(1)
    e.cycle()
    (link,) = _account_links(e)
    assert link.map_id is not None
    ann = e.create_contact("ann@acme.example", firstname="Ann", lastname="Ng")
    e.update_contact(ann, associatedcompanyid=link.map_id)
    bea = e.create_contact("bea@nowhere.example", firstname="Bea", lastname="Lo")
    loose = e.marketer().crm.companies.basic_api.create({"properties": {"name": "Loose"}}).id
    e.update_contact(bea, associatedcompanyid=str(loose))  # a company no account is linked to
    e.advance(1)
    e.cycle()

    contacts = e.rep().query_all("SELECT Email, AccountId FROM Contact")["records"]
    accounts = {str(r["Email"]): r["AccountId"] for r in contacts}
    assert accounts == {"ann@acme.example": acme, "bea@nowhere.example": None}
    assert e.dead_letters() == []
    before = e.data()
    e.cycle()
    assert e.data() == before  # the starting value is no change to carry back
