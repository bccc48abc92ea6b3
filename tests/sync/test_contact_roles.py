"""Opportunity contact roles <-> deal-contact associations, through the real clients.

Both connectors serve "the people on a deal" as a set of ids (Salesforce's
``OpportunityContactRoles.ContactId``, HubSpot's ``associations.contacts``); the preset syncs it
as a ``references`` field translated through the people's links.  So a rep who adds a contact
role sees the HubSpot deal associated with that person's HubSpot contact, a marketer who
associates a contact with the deal gets a contact role in Salesforce, and removals travel too --
including a role added or removed without touching the Opportunity itself.
"""

from __future__ import annotations

from typing import Any

from crm_bridge.connector import Delete, Upsert
from crm_bridge.connectors.hubspot.associated import association_changes
from crm_bridge.connectors.salesforce.contact_roles import Roles, role_ops
from tests.sync.emulated import REP, Make


def _opportunity(e: Any, name: str = "Big deal") -> str:
    return str(
        e.rep().Opportunity.create(
            {"Name": name, "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": 900}
        )["id"]
    )


def _contact(e: Any, email: str) -> str:
    return str(e.rep().Contact.create({"LastName": email.split("@")[0], "Email": email})["id"])


def _role(e: Any, opportunity: str, contact: str) -> str:
    return str(
        e.rep().OpportunityContactRole.create(
            {"OpportunityId": opportunity, "ContactId": contact, "Role": "Decision Maker"}
        )["id"]
    )


def _roles(e: Any, opportunity: str) -> set[str]:
    rows = e.rep().query(
        f"SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId = '{opportunity}'"
    )["records"]
    return {str(r["ContactId"]) for r in rows}


def _deal_contacts(e: Any, deal: str) -> set[str]:
    portal = e.hubspot.emulator.portal
    with portal.lock:
        return {str(i) for i in portal.associations.links("deals", int(deal), "contacts")}


def _map_id(e: Any, side: str, record_id: str, obj: str = "leads") -> str:
    """The other side's id of a linked record of ``obj``."""
    with e.session.store.transaction(readonly=True) as tx:
        link = tx.link_for("main", obj, side, record_id)
    assert link is not None and link.active and link.map_id and link.crm_id
    return str(link.map_id if side == "crm" else link.crm_id)


def _synced_deal(e: Any) -> tuple[str, str, str, str]:
    """An opportunity with one contact role, synced: (opportunity, deal, contact, its HubSpot id)."""
    opp = _opportunity(e)
    ann = _contact(e, "ann@roles.example")
    _role(e, opp, ann)
    e.advance(1)
    e.cycle()
    return opp, _map_id(e, "crm", opp, "deals"), ann, _map_id(e, "crm", ann)


def test_a_contact_role_becomes_a_deal_association_with_that_persons_contact(make: Make) -> None:
    e = make()
    _, deal, _, hub_ann = _synced_deal(e)
    assert _deal_contacts(e, deal) == {hub_ann}
    assert e.dead_letters() == []
    before = e.data()
    e.advance(1)
    e.cycle()
    assert e.data() == before  # in step: no echo


def test_a_role_added_without_touching_the_opportunity_reaches_the_deal(make: Make) -> None:
    e = make()
    opp, deal, _, hub_ann = _synced_deal(e)
    bob = _contact(e, "bob@roles.example")
    e.advance(1)
    e.cycle()
    stamp = e.rep().Opportunity.get(opp)["SystemModstamp"]
    _role(e, opp, bob)
    assert e.rep().Opportunity.get(opp)["SystemModstamp"] == stamp  # the role is its own row
    e.advance(1)
    e.cycle()
    assert _deal_contacts(e, deal) == {hub_ann, _map_id(e, "crm", bob)}


def test_a_removed_role_removes_the_association(make: Make) -> None:
    e = make()
    opp, deal, _, _ = _synced_deal(e)
    (role,) = e.rep().query(f"SELECT Id FROM OpportunityContactRole WHERE OpportunityId = '{opp}'")[
        "records"
    ]
    e.rep().OpportunityContactRole.delete(role["Id"])
    e.advance(1)
    e.cycle()
    assert _deal_contacts(e, deal) == set()
    assert _roles(e, opp) == set()


def test_a_contact_associated_in_hubspot_gets_a_contact_role(make: Make) -> None:
    e = make()
    opp, deal, ann, hub_ann = _synced_deal(e)
    bob = _contact(e, "bob@roles.example")
    e.advance(1)
    e.cycle()
    hub_bob = _map_id(e, "crm", bob)
    e.marketer().crm.associations.v4.basic_api.create_default(
        from_object_type="deals",
        from_object_id=deal,
        to_object_type="contacts",
        to_object_id=hub_bob,
    )
    e.advance(1)
    e.cycle()
    assert _roles(e, opp) == {ann, bob}
    assert _deal_contacts(e, deal) == {hub_ann, hub_bob}
    assert e.dead_letters() == []


def test_a_lead_associated_in_hubspot_waits_for_its_conversion(make: Make) -> None:
    """A contact role needs a Contact: a person who is still a Lead is refused, clearly, and
    the deal is replayed once a rep converts the lead."""
    e = make()
    opp, deal, ann, hub_ann = _synced_deal(e)
    cy = e.create_contact("cy@roles.example", firstname="Cy", lastname="Roe")
    e.advance(1)
    e.cycle()  # Cy becomes a Salesforce lead
    lead = _map_id(e, "map", cy)
    e.marketer().crm.associations.v4.basic_api.create_default(
        from_object_type="deals", from_object_id=deal, to_object_type="contacts", to_object_id=cy
    )
    e.advance(1)
    e.cycle()
    (letter,) = e.dead_letters()
    assert (letter.obj, letter.error_code) == ("deals", "ROLE_NEEDS_CONTACT")
    assert lead in (letter.reason or "") and _roles(e, opp) == {ann}
    sf = e.salesforce.emulator
    e.update_lead(lead, OwnerId=sf.user_id(REP))  # a rep takes the lead over and converts it
    contact = sf.convert_lead(lead, do_not_create_opportunity=True, as_user=REP)["contactId"]
    e.advance(1)
    e.cycle()  # the link follows Cy to the Contact
    e.runner.replay(e.dead_letters())
    assert _roles(e, opp) == {ann, contact}
    assert _deal_contacts(e, deal) == {hub_ann, cy}
    assert e.dead_letters() == []


def test_a_converted_leads_opportunity_is_associated_with_the_same_hubspot_contact(
    make: Make,
) -> None:
    e = make()
    lead = e.create_lead("dee@roles.example", FirstName="Dee", Company="Dee Co")
    e.advance(1)
    e.cycle()
    hub_dee = _map_id(e, "crm", lead)
    result = e.salesforce.emulator.convert_lead(lead)
    e.advance(1)
    e.cycle()
    e.advance(1)
    e.cycle()  # the deal waited one cycle for the new Contact's link
    deal = _map_id(e, "crm", result["opportunityId"], "deals")
    assert _deal_contacts(e, deal) == {hub_dee}  # the person's HubSpot contact, not a new one
    assert e.dead_letters() == []


def test_role_ops_add_what_is_missing_and_delete_what_is_extra() -> None:
    current = {
        "006A": Roles([{"Id": "00KA", "ContactId": "003X"}, {"Id": "00KB", "ContactId": "003Y"}]),
        "006B": Roles(),
    }
    ops, owner = role_ops({"006A": ["003Y", "003Z"], "006B": []}, current)
    assert ops == [
        Upsert(key="role:006A:003Z", fields={"OpportunityId": "006A", "ContactId": "003Z"}),
        Delete(key="unrole:00KA", id="00KA"),
    ]
    assert owner == {"role:006A:003Z": "006A", "unrole:00KA": "006A"}


def test_association_changes_send_nothing_when_the_sets_agree() -> None:
    assert association_changes({"1": ["7", "8"]}, {"1": ["8", "7"]}) == ([], [])
    create, archive = association_changes({"1": ["7"], "2": []}, {"1": ["8"], "2": ["9"]})
    assert create == [
        {"from": {"id": "1"}, "to": {"id": "8"}},
        {"from": {"id": "2"}, "to": {"id": "9"}},
    ]
    assert archive == [{"from": {"id": "1"}, "to": [{"id": "7"}]}]


def test_a_contact_that_cannot_sync_does_not_hold_its_deal_back(make: Make) -> None:
    """One person on the deal fails to sync (no owner on the other side): the deal and its
    other people still sync, and a letter says who is missing until they link."""
    e = make()
    opp, deal, ann, hub_ann = _synced_deal(e)
    sf = e.salesforce.emulator
    orphan = e.rep().Contact.create(
        {
            "LastName": "Orphan",
            "Email": "orphan@roles.example",
            "OwnerId": sf.user_id(sf.settings.integration_username),  # no HubSpot owner
        }
    )["id"]
    _role(e, opp, orphan)
    e.rep().Opportunity.update(opp, {"StageName": "Negotiation/Review"})
    e.advance(1)
    e.cycle()
    assert e.marketer().crm.deals.basic_api.get_by_id(deal).properties["dealstage"] == (
        "contractsent"
    )
    assert _deal_contacts(e, deal) == {hub_ann}
    codes = {(d.obj, d.record_key, d.error_code) for d in e.dead_letters()}
    assert ("deals", opp, "REFERENCE_NOT_LINKED") in codes
    assert ("leads", orphan, "OWNER_NOT_FOUND") in codes
    before = e.data()
    e.advance(1)
    e.cycle()
    assert e.data() == before and _roles(e, opp) == {ann, orphan}  # nothing removed anywhere

    # The owner gets a HubSpot twin: the person links, and the replayed deal adds them.
    e.rep().Contact.update(orphan, {"OwnerId": sf.user_id(REP)})
    e.advance(1)
    e.cycle()
    e.runner.replay(e.dead_letters())
    assert _deal_contacts(e, deal) == {hub_ann, _map_id(e, "crm", orphan)}
    assert e.dead_letters() == []


def test_an_idle_cycle_reads_no_associations_again(make: Make) -> None:
    """Re-reading the deals at the cursor's instant costs no associations read per idle cycle
    (an association change moves the deal's version, so the version-keyed cache is exact)."""
    e = make()
    _synced_deal(e)
    for _ in range(3):
        e.advance(1)
        e.cycle()  # settle every cursor
    before_map, before_crm = dict(e.map.calls), dict(e.crm.calls)
    e.advance(1)
    report = e.cycle()
    # the cursor's instant was read again (passed over while reading: already applied)
    again = report.counts["already_applied"] + sum(
        report.counts[f"passed_over_{side}"] for side in ("crm", "map")
    )
    assert again >= 1
    assert e.map.calls["associations"] == before_map.get("associations", 0)
    assert e.map.calls["search"] - before_map.get("search", 0) == len(e.runner.settings.objects)
    # Salesforce: one read per object, even while a role change is the newest change at the
    # cursor (its opportunity was read by id once; the same role rows reuse that read)
    crm = sum(e.crm.calls.values()) - sum(before_crm.values())
    assert crm == len(e.runner.settings.objects)


def test_an_opportunity_edited_after_its_role_was_read_is_not_served_stale(make: Make) -> None:
    """The reused by-id read of a role's opportunity gives way when the opportunity moves."""
    e = make()
    opp, deal, _, _ = _synced_deal(e)
    for _ in range(2):
        e.advance(1)
        e.cycle()  # the role row is the newest change at the cursor; its read is reused
    e.rep().Opportunity.update(opp, {"Amount": 1234})
    e.advance(1)
    e.cycle()
    portal = e.hubspot.emulator.portal
    with portal.lock:
        amount = portal.store("deals").live[int(deal)].props.get("amount")
    assert float(amount) == 1234.0
    bob = _contact(e, "bob@roles.example")
    e.advance(1)
    e.cycle()
    _role(e, opp, bob)  # a new role row: a new page, read afresh
    e.advance(1)
    e.cycle()
    assert _map_id(e, "crm", bob) in _deal_contacts(e, deal)
