"""The sync engine end to end on the Salesforce and HubSpot emulators, through the real clients.

Every test drives one pair (``hubspot_salesforce`` preset: Salesforce Lead <-> HubSpot contacts)
through crm-bridge's real connectors (simple-salesforce, hubspot-api-client) over 127.0.0.1
sockets, while people edit both sides through the same vendor clients.  Time moves on the
emulators' clocks; nothing sleeps.  See tests/sync/emulated.py for the wiring.
"""

from __future__ import annotations

import ssl
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hubspot.crm.contacts import PublicMergeInput

from crm_bridge.connector import FieldDefinition, PicklistValue
from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.errors import SyncAbortedError
from tests.sync.emulated import OTHER_REP, Make, oauth_refresh_token, writes


def _without_total(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k != "total"}


def salesforce_control(salesforce: RunningSalesforce, method: str, path: str) -> Any:
    """Call the Salesforce emulator's ``/__emulator__`` control plane over its TLS socket."""
    context = ssl.create_default_context(cafile=salesforce.ca_path)
    with httpx.Client(verify=context, trust_env=False) as http:
        response = http.request(method, f"{salesforce.base_url}/__emulator__/{path}")
        response.raise_for_status()
        return response.json() if response.content else None


# -- 1. initial sync both ways, then idle ---------------------------------------------------------


def test_initial_sync_both_ways_then_an_idle_cycle_writes_nothing(make: Make) -> None:
    e = make()
    ann = e.create_lead("ann@lead.example", FirstName="Ann", Title="CTO")
    bob = e.create_lead("bob@lead.example", FirstName="Bob", Status="Working - Contacted")
    eve = e.create_lead("eve@both.example", FirstName="Eve", Phone="+1 555 0100")
    cat, dan, eve_h = e.create_contacts(
        {
            "email": "cat@contact.example",
            "firstname": "Cat",
            "lastname": "Cole",
            "company": "Cole Ltd",
            "hs_analytics_source": "ORGANIC_SEARCH",
        },
        {
            "email": "dan@contact.example",
            "firstname": "Dan",
            "lastname": "Diaz",
            "company": "Diaz Inc",
            "jobtitle": "Buyer",
        },
        # the same person as the lead eve@both.example (e-mail case differs): matched, not doubled
        {"email": "EVE@both.example", "lastname": "Lead", "company": "Acme", "jobtitle": "VP"},
    )
    e.advance(1)

    first = e.cycle()

    # eve is linked, then each side gets what only the other had (title -> SF, phone -> HubSpot)
    assert writes(first) == {"created": 4, "linked": 1, "updated": 2}
    leads, contacts = e.leads(), e.contacts()
    everyone = {
        "ann@lead.example",
        "bob@lead.example",
        "eve@both.example",
        "cat@contact.example",
        "dan@contact.example",
    }
    assert set(leads) == set(contacts) == everyone
    # Salesforce -> HubSpot: fields, the owner as the same person, the status via the value map
    assert contacts["ann@lead.example"]["jobtitle"] == "CTO"
    assert contacts["ann@lead.example"]["hubspot_owner_id"] == "71000002"  # rick, by e-mail
    assert contacts["bob@lead.example"]["lifecyclestage"] == "salesqualifiedlead"
    assert contacts["eve@both.example"]["phone"] == "+1 555 0100"
    # HubSpot -> Salesforce: fields, the source via the value map (map_to_crm)
    assert leads["cat@contact.example"]["LeadSource"] == "Web"
    assert (leads["dan@contact.example"]["Title"], leads["dan@contact.example"]["Company"]) == (
        "Buyer",
        "Diaz Inc",
    )
    assert leads["eve@both.example"]["Title"] == "VP"
    links = {(link.crm_id, link.map_id) for link in e.links()}
    assert links == {
        (ann, contacts["ann@lead.example"]["id"]),
        (bob, contacts["bob@lead.example"]["id"]),
        (eve, eve_h),
        (leads["cat@contact.example"]["Id"], cat),
        (leads["dan@contact.example"]["Id"], dan),
    }

    # The next cycle reads our own writes back: echoes, nothing written.
    before = e.data()
    echo = e.cycle()
    assert writes(echo) == {} and echo.counts["read_crm"] + echo.counts["read_map"] > 0
    assert e.data() == before

    # An idle cycle: only change-stream reads, nothing written anywhere.
    e.salesforce.emulator.calls.reset()
    e.hubspot.emulator.calls.reset()
    idle = e.cycle()
    assert writes(idle) == {} and e.dead_letters() == []
    assert e.data() == before
    sf_calls = {k for k, v in e.salesforce.emulator.calls.snapshot().items() if v and k != "total"}
    hs_calls = {k for k, v in e.hubspot.emulator.calls.snapshot().items() if v and k != "total"}
    # one Composite for the person's two change streams (Leads, Contacts), one query each for
    # accounts and deals
    assert sf_calls == {"composite", "query"}
    assert e.salesforce.emulator.calls.snapshot()["total"] == 3
    assert hs_calls <= {"search", "objects"}  # objects: the archived listing poll


# -- 2. incremental edits -----------------------------------------------------------------------


def test_incremental_edits_on_each_side_flow_to_the_other(make: Make) -> None:
    e = make()
    ann = e.create_lead("ann@lead.example", FirstName="Ann")
    cat = e.create_contact("cat@contact.example", firstname="Cat", jobtitle="Buyer")
    e.advance(1)
    e.cycle()
    e.cycle()  # read-back of the initial writes
    ann_h = e.contacts()["ann@lead.example"]["id"]
    cat_l = e.leads()["cat@contact.example"]["Id"]
    assert e.lead(cat_l)["Title"] == "Buyer"

    # A rep edits a lead, including the one-way fields (Status flows out, LeadSource does not).
    e.update_lead(
        ann,
        Title="VP Sales",
        Phone="+1 555 0101",
        Status="Working - Contacted",
        LeadSource="Partner Referral",
    )
    # A marketer edits a contact: renames, clears the title, and touches the one-way fields.
    e.update_contact(
        cat,
        firstname="Catherine",
        jobtitle="",
        hs_analytics_source="PAID_SEARCH",
        lifecyclestage="customer",
    )
    new_lead = e.create_lead("new@lead.example", FirstName="Newman", Company="Fresh Co")
    new_contact = e.create_contact("new@contact.example", firstname="Nina", company="Nina AB")
    e.advance(1)

    report = e.cycle()

    assert writes(report) == {"updated": 2, "created": 2}
    hub_ann = e.contact(ann_h)
    assert (hub_ann["jobtitle"], hub_ann["phone"]) == ("VP Sales", "+1 555 0101")
    assert hub_ann["lifecyclestage"] == "salesqualifiedlead"  # Status, through the value map
    assert hub_ann["hs_analytics_source"] is None  # lead_source only flows map -> crm
    sf_cat = e.lead(cat_l)
    assert (sf_cat["FirstName"], sf_cat["Title"]) == ("Catherine", None)
    assert sf_cat["LeadSource"] == "Advertisement"  # PAID_SEARCH, through the value map
    assert sf_cat["Status"] == "Open - Not Contacted"  # status only flows crm -> map
    contacts, leads = e.contacts(), e.leads()
    assert contacts["new@lead.example"]["company"] == "Fresh Co"
    assert leads["new@contact.example"]["Company"] == "Nina AB"
    assert e.link_for("crm", new_lead) is not None and e.link_for("map", new_contact) is not None
    assert len(leads) == len(contacts) == 4

    # What we wrote comes back as echoes; the one-way differences never loop.
    before = e.data()
    assert writes(e.cycle()) == {} and writes(e.cycle()) == {}
    assert e.data() == before


# -- 3. concurrent edits ------------------------------------------------------------------------


def test_concurrent_edits_are_settled_per_field_rule_and_logged(make: Make) -> None:
    e = make()
    ann = e.create_lead("ann@lead.example", FirstName="Ann")
    bob = e.create_lead("bob@lead.example", FirstName="Bob")
    cy = e.create_lead("cy@lead.example", FirstName="Cy")
    e.advance(1)
    e.cycle()
    e.cycle()
    contacts = e.contacts()
    ann_h, bob_h, cy_h = (contacts[f"{n}@lead.example"]["id"] for n in ("ann", "bob", "cy"))
    ann_link, bob_link, cy_link = (e.link_for("crm", i) for i in (ann, bob, cy))
    assert ann_link is not None and bob_link is not None and cy_link is not None

    # Ann: the rep edits first, the marketer a minute later.  Bob: the other way round.
    # Cy: both at (nearly) the same moment, within the pair's 5 s clock-skew tolerance.
    e.update_lead(ann, Email="ann.rep@lead.example", FirstName="Ann (rep)")
    e.update_contact(bob_h, firstname="Bob (marketer)")
    e.update_lead(cy, FirstName="Cy (rep)")
    e.advance(2)
    e.update_contact(cy_h, firstname="Cy (marketer)")
    e.advance(58)
    e.update_contact(ann_h, email="ann.marketer@lead.example", firstname="Ann (marketer)")
    e.update_lead(bob, FirstName="Bob (rep)")
    e.advance(1)

    report = e.cycle()

    assert report.counts["conflicts"] == 4
    # email is crm_wins: Salesforce's value on both sides, whatever the times
    # first_name is latest_wins: the later edit on both sides; a tie goes to the CRM
    sf_ann, hub_ann = e.lead(ann), e.contact(ann_h)
    assert sf_ann["Email"] == hub_ann["email"] == "ann.rep@lead.example"
    assert sf_ann["FirstName"] == hub_ann["firstname"] == "Ann (marketer)"
    assert e.lead(bob)["FirstName"] == e.contact(bob_h)["firstname"] == "Bob (rep)"
    assert e.lead(cy)["FirstName"] == e.contact(cy_h)["firstname"] == "Cy (rep)"

    decisions = {(d.link_id, d.field): d for d in e.decisions()}
    assert set(decisions) == {
        (ann_link.id, "email"),
        (ann_link.id, "first_name"),
        (bob_link.id, "first_name"),
        (cy_link.id, "first_name"),
    }
    email = decisions[(ann_link.id, "email")]
    assert (email.crm_value, email.map_value, email.winner) == (
        "ann.rep@lead.example",
        "ann.marketer@lead.example",
        "crm",
    )
    assert email.rule == "crm_wins: crm_wins"
    ann_name = decisions[(ann_link.id, "first_name")]
    assert (ann_name.crm_value, ann_name.map_value, ann_name.winner) == (
        "Ann (rep)",
        "Ann (marketer)",
        "map",
    )
    assert ann_name.rule == "latest_wins: map changed later"
    assert ann_name.crm_modified_at is not None and ann_name.map_modified_at is not None
    assert (ann_name.map_modified_at - ann_name.crm_modified_at).total_seconds() >= 59
    bob_name = decisions[(bob_link.id, "first_name")]
    assert (bob_name.winner, bob_name.rule) == ("crm", "latest_wins: crm changed later")
    cy_name = decisions[(cy_link.id, "first_name")]
    assert (cy_name.winner, cy_name.rule) == ("crm", "latest_wins: tie within 5s skew")
    assert {d.run_id for d in decisions.values()} == {report.run_id}
    relinked = e.link_for("crm", ann)
    assert relinked is not None and relinked.identity == "ann.rep@lead.example"

    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


# -- 4. merges ----------------------------------------------------------------------------------


def test_salesforce_merge_rekeys_the_link_and_touches_nothing_else(make: Make) -> None:
    e = make()
    ann = e.create_lead("ann@lead.example", FirstName="Ann")
    e.advance(1)
    e.cycle()
    e.cycle()
    (link,) = e.links()
    ann_h = link.map_id
    assert link.crm_id == ann and ann_h is not None

    # A rep enters the same person again: a duplicate on Salesforce, never copied to HubSpot.
    dup = e.create_lead("Ann@Lead.example", FirstName="Annabel", Title="CTO", as_user=OTHER_REP)
    e.advance(1)
    report = e.cycle()
    assert writes(report) == {"dead_lettered": 1}
    (dl,) = e.dead_letters()
    assert (dl.record_key, dl.error_code) == (dup, "DUPLICATE_IDENTITY")
    assert ann in dl.reason and "merge" in dl.reason
    assert len(e.contacts()) == 1

    # ... so they merge them in Salesforce, keeping the new record.
    e.salesforce.emulator.merge("Lead", dup, [ann], as_user=OTHER_REP)
    e.advance(1)
    report = e.cycle()

    assert report.counts["merged"] == 1 and report.counts["created"] == 0
    rekeyed = e.link_for("crm", dup)
    assert rekeyed is not None and rekeyed.active
    assert (rekeyed.id, rekeyed.map_id) == (link.id, ann_h)
    assert e.link_for("crm", ann) is None
    contacts = e.contacts()
    assert list(contacts) == ["ann@lead.example"] and contacts["ann@lead.example"]["id"] == ann_h
    # the survivor's values flow to the linked contact
    survivor = contacts["ann@lead.example"]
    assert (survivor["firstname"], survivor["jobtitle"]) == ("Annabel", "CTO")
    assert [lead["Id"] for lead in e.leads().values()] == [dup]
    assert e.dead_letters() == []  # the duplicate synced once merged: its dead letter closed
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


def test_hubspot_merge_rekeys_the_link_and_creates_nothing(make: Make) -> None:
    e = make()
    old = e.create_contact("xan@old.example", firstname="Xan", lastname="Park", company="P")
    e.advance(1)
    e.cycle()
    e.cycle()
    (link,) = e.links()
    lead = link.crm_id
    assert link.map_id == old and lead is not None

    # Between two cycles a marketer imports the person again (a new address, a title) and
    # merges the old contact into the new one: the survivor is a contact the sync never saw.
    new = e.create_contact(
        "xan@new.example", firstname="Xan", lastname="Park", company="P", jobtitle="CEO"
    )
    e.marketer().crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=new, object_id_to_merge=old)
    )
    e.advance(1)
    report = e.cycle()

    assert report.counts["merged"] == 1 and report.counts["created"] == 0
    rekeyed = e.link_for("map", new)
    assert rekeyed is not None and rekeyed.active
    assert (rekeyed.id, rekeyed.crm_id) == (link.id, lead)
    assert e.link_for("map", old) is None
    # the same lead now carries the survivor's values; no second lead was made
    leads = e.leads()
    assert list(leads) == ["xan@new.example"] and leads["xan@new.example"]["Id"] == lead
    assert leads["xan@new.example"]["Title"] == "CEO"
    assert list(e.contacts()) == ["xan@new.example"]
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


def test_merging_two_linked_contacts_closes_the_losers_link_and_creates_nothing(
    make: Make,
) -> None:
    e = make()
    xan, yan = e.create_contacts(
        {"email": "xan@contact.example", "firstname": "Xan", "lastname": "Park", "company": "P"},
        {
            "email": "xan.park@home.example",
            "firstname": "Xan",
            "lastname": "Park",
            "company": "P",
            "phone": "+1 555 0199",
        },
    )
    e.advance(1)
    e.cycle()
    e.cycle()
    leads = e.leads()
    x_lead, y_lead = leads["xan@contact.example"]["Id"], leads["xan.park@home.example"]["Id"]
    x_link, y_link = e.link_for("map", xan), e.link_for("map", yan)
    assert x_link is not None and y_link is not None

    # A marketer merges the two contacts in HubSpot (Xan's record survives).
    e.marketer().crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=xan, object_id_to_merge=yan)
    )
    e.advance(1)
    report = e.cycle()

    assert report.counts["merged"] == 1 and report.counts["created"] == 0
    closed = e.link_for("map", yan)
    assert closed is not None and closed.status == "merged" and closed.merged_into == x_link.id
    survivor = e.link_for("map", xan)
    assert survivor is not None and survivor.active and survivor.crm_id == x_lead
    # delete_policy "flag": the loser's lead stays in Salesforce for a human; nothing is created
    leads = e.leads()
    assert set(leads) == {"xan@contact.example", "xan.park@home.example"}
    assert leads["xan@contact.example"]["Phone"] == "+1 555 0199"  # filled in by the merge
    assert list(e.contacts()) == ["xan@contact.example"]

    # An edit of the loser's lead must not resurrect a contact for it.
    e.update_lead(y_lead, Title="Resurrected?")
    e.advance(1)
    report = e.cycle()
    assert report.counts["created"] == 0
    assert list(e.contacts()) == ["xan@contact.example"]


# -- 5. deletes and the ratio guard ------------------------------------------------------------


@pytest.mark.parametrize("policy", ["archive", "flag"])
def test_delete_ratio_guard_aborts_then_allow_deletes_propagates(make: Make, policy: str) -> None:
    e = make(
        pair={
            "delete_guard_floor": 1,
            "max_delete_ratio": 0.2,
            "objects": {"leads": {"delete_policy": policy}},
        }
    )
    leads = [e.create_lead(f"lead{i}@lead.example") for i in range(3)]
    contacts = e.create_contacts(
        *(
            {"email": f"contact{i}@contact.example", "lastname": "C", "company": "C"}
            for i in range(3)
        )
    )
    e.advance(1)
    e.cycle()
    e.cycle()
    assert len(e.links()) == 6
    everyone = set(e.leads())

    # Half of the linked people are deleted: two leads in Salesforce, one contact in HubSpot.
    e.delete_lead(leads[0])
    e.delete_lead(leads[1])
    e.marketer().crm.contacts.basic_api.archive(contacts[0])
    e.advance(1)
    before = e.data()
    with e.session.store.transaction(readonly=True) as tx:
        cursors = {s: tx.get_change_cursor("main", s, "leads") for s in ("crm", "map")}

    with pytest.raises(SyncAbortedError, match="--allow-deletes") as aborted:
        e.runner.run_cycle()

    assert "would delete 3 of 6" in str(aborted.value)
    assert e.data() == before  # nothing written on either side
    assert len(e.links()) == 6
    with e.session.store.transaction(readonly=True) as tx:
        assert {s: tx.get_change_cursor("main", s, "leads") for s in ("crm", "map")} == cursors
        (run,) = tx.last_runs("main", limit=1)
    assert run.status == "aborted" and "--allow-deletes" in (run.error or "")

    report = e.cycle(allow_deletes=True)

    gone_in_sf = {"lead0@lead.example", "lead1@lead.example"}
    gone_in_hs = {"contact0@contact.example"}
    if policy == "archive":  # the counterparts follow
        assert writes(report) == {"deleted": 3}
        assert set(e.leads()) == set(e.contacts()) == everyone - gone_in_sf - gone_in_hs
        kind = "sync.delete.propagated"
    else:  # "flag": the counterparts stay, the links close
        assert writes(report) == {} and report.counts["deleted_flagged"] == 3
        assert e.data()[1] == before[1] and set(e.contacts()) == everyone - gone_in_hs
        assert set(e.leads()) == everyone - gone_in_sf
        kind = "sync.delete.flagged"
    assert len(e.links()) == 3
    closed = e.links(status="deleted")
    assert len(closed) == 3 and {leads[0], leads[1]} <= {link.crm_id for link in closed}
    assert contacts[0] in {link.map_id for link in closed}
    with e.session.store.transaction(readonly=True) as tx:
        assert len(tx.audit_entries(kind_prefix=kind, pair="main")) == 3
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


# -- 6. owners ----------------------------------------------------------------------------------


def test_owners_map_by_email_and_unmatched_owners_are_dead_lettered(make: Make) -> None:
    e = make()
    sana, tom = e.owners["sana.rep@example.com"], e.owners["tom.rep@example.com"]
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    mapped = e.create_lead("mapped@lead.example", OwnerId=sana)
    orphan = e.create_lead("orphan@lead.example", OwnerId=solo)
    hub = e.create_contact("hub@contact.example", hubspot_owner_id="71000004")  # tom
    e.advance(1)

    report = e.cycle()

    assert report.counts["created"] == 2 and report.counts["dead_lettered"] == 1
    contacts, leads = e.contacts(), e.leads()
    assert contacts["mapped@lead.example"]["hubspot_owner_id"] == "71000003"  # sana
    assert leads["hub@contact.example"]["OwnerId"] == tom
    assert "orphan@lead.example" not in contacts
    (dl,) = e.dead_letters()
    assert (dl.side, dl.record_key, dl.error_code) == ("map", orphan, "OWNER_NOT_FOUND")
    assert "solo.rep@example.com" in dl.reason and "default owner" in dl.reason

    # Reassigning a linked lead moves the contact to the same person on HubSpot.
    e.advance(1)
    e.update_lead(mapped, OwnerId=e.owners["uma.rep@example.com"])
    e.advance(1)
    e.cycle()
    assert e.contacts()["mapped@lead.example"]["hubspot_owner_id"] == "71000005"  # uma
    assert e.link_for("map", hub) is not None

    # An admin configures a default owner; the restarted sync replays the dead letter.
    restarted = make(pair={"default_map_owner": "71000001"})  # same store, maria by default
    replay = restarted.runner.replay(restarted.dead_letters())
    assert replay.counts["replayed"] == 1 and replay.counts["replay_created"] == 1
    assert restarted.contacts()["orphan@lead.example"]["hubspot_owner_id"] == "71000001"
    assert restarted.dead_letters() == []
    assert restarted.link_for("crm", orphan) is not None
    assert len(restarted.links()) == 3


# -- 7. picklist rejects and replay -------------------------------------------------------------


def _segment(obj: str, name: str, *values: str) -> FieldDefinition:
    return FieldDefinition(
        object=obj,
        name=name,
        label="Segment",
        kind="picklist",
        values=tuple(PicklistValue(v, v) for v in values),
        restricted=True,
    )


def test_picklist_rejects_are_dead_lettered_then_replayed_after_the_fix(make: Make) -> None:
    # Both sides have a "segment" picklist, but their vocabularies differ.
    e = make(
        pair={
            "objects": {"leads": {"fields": {"segment": {"crm": "Segment__c", "map": "segment"}}}}
        }
    )
    assert e.crm.ensure_field(_segment("Lead", "Segment__c", "SMB", "Enterprise", "Strategic"))
    assert e.map.ensure_field(_segment("contacts", "segment", "SMB", "Mid-Market", "Enterprise"))
    good_leads = [e.create_lead(f"l{i}@lead.example", Segment__c="SMB") for i in range(2)]
    strategic = e.create_lead("strategic@lead.example", Segment__c="Strategic")
    mid, *good_contacts = e.create_contacts(
        {"email": "mid@contact.example", "lastname": "M", "company": "M", "segment": "Mid-Market"},
        {"email": "c0@contact.example", "lastname": "C", "company": "C", "segment": "Enterprise"},
        {"email": "c1@contact.example", "lastname": "C", "company": "C", "segment": "SMB"},
    )
    e.advance(1)

    report = e.cycle()

    # Each batch's good records land; each bad one is parked with the vendor's reason.
    assert report.counts["created"] == 4 and report.counts["dead_lettered"] == 2
    contacts, leads = e.contacts(), e.leads()
    assert {"l0@lead.example", "l1@lead.example"} <= set(contacts)
    assert {"c0@contact.example", "c1@contact.example"} <= set(leads)
    assert "strategic@lead.example" not in contacts and "mid@contact.example" not in leads
    by_side = {dl.side: dl for dl in e.dead_letters()}
    assert set(by_side) == {"crm", "map"}
    to_sf, to_hs = by_side["crm"], by_side["map"]
    assert (to_sf.record_key, to_sf.error_code) == (mid, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert "Mid-Market" in to_sf.reason
    assert (to_hs.record_key, to_hs.error_code) == (strategic, "INVALID_OPTION")
    assert "Strategic was not one of the allowed options" in to_hs.reason
    assert len(good_leads) == len(good_contacts) == 2

    # Salesforce's admin adds the value; an operator replays (what `crm-bridge dlq replay` does).
    e.advance(30)
    e.crm.ensure_field(
        _segment("Lead", "Segment__c", "SMB", "Mid-Market", "Enterprise", "Strategic")
    )
    replay = e.runner.replay([to_sf])
    assert replay.counts["replayed"] == 1 and replay.counts["replay_created"] == 1
    mid_lead = e.leads()["mid@contact.example"]["Id"]
    assert e.lead(mid_lead)["Segment__c"] == "Mid-Market"
    assert [dl.side for dl in e.dead_letters()] == ["map"]

    # Until HubSpot is fixed, re-reading the lead (the cursor's overlap) fails the same way.
    e.advance(30)
    again = e.cycle()
    assert again.counts["dead_lettered"] == 1
    (to_hs,) = e.dead_letters()
    assert to_hs.attempts == 2 and to_hs.next_retry_at is not None

    # HubSpot's admin adds the option; the automatic replay picks the record up once it is due.
    e.map.ensure_field(
        _segment("contacts", "segment", "SMB", "Mid-Market", "Enterprise", "Strategic")
    )
    e.advance(30)
    still = e.cycle()  # past the overlap and not due yet: nothing tries the record
    assert still.counts["replayed"] == 0 and still.counts["created"] == 0
    assert [dl.id for dl in e.dead_letters()] == [to_hs.id]
    e.advance((to_hs.next_retry_at - e.now()).total_seconds() + 1)
    auto = e.cycle()
    assert auto.counts["replayed"] == 1 and auto.counts["replay_created"] == 1
    strategic_contact = e.contacts()["strategic@lead.example"]["id"]
    assert e.contact(strategic_contact, "segment")["segment"] == "Strategic"
    assert e.dead_letters() == []
    assert len(e.links()) == 6
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


def test_a_replayed_dead_letter_is_closed_on_the_runners_clock(make: Make) -> None:
    e = make()
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    e.create_lead("orphan@lead.example", OwnerId=solo)
    e.advance(1)
    e.cycle()
    (dl,) = e.dead_letters()
    e.advance(3600)  # an hour later (on the emulators' clock, which is the runner's clock)
    restarted = make(pair={"default_map_owner": "71000001"})

    assert restarted.runner.replay([dl]).counts["replayed"] == 1

    (closed,) = restarted.dead_letters(status="replayed")
    assert closed.resolved_at is not None
    assert closed.resolved_at >= closed.last_seen
    assert abs((closed.resolved_at - restarted.now()).total_seconds()) < 60


# -- 8. more changes than one HubSpot search can page ------------------------------------------


def test_10001_hubspot_changes_in_one_cycle_all_reach_salesforce(make: Make) -> None:
    n, per_ms = 10_001, 7
    e = make(pair={"max_records_per_cycle": 20_000})
    emulator = e.hubspot.emulator
    start = emulator.clock.now() - timedelta(seconds=5)
    # A bulk import straight into the portal, seven contacts per millisecond: the search cap
    # (10,000) falls inside a millisecond (records 9,996..10,002 share one).
    with emulator.portal.lock:
        for i in range(n):
            if i % per_ms == 0:
                emulator.clock.freeze(start + timedelta(milliseconds=i // per_ms))
            emulator.portal.create(
                "contacts",
                {"email": f"bulk{i}@import.example", "lastname": f"L{i}", "company": "Bulk"},
                None,
            )
    emulator.clock.unfreeze()
    e.realign_clocks()
    e.advance(1)
    started = time.monotonic()

    report = e.cycle()

    elapsed = time.monotonic() - started
    assert report.counts["read_map"] == n and report.counts["created"] == n
    assert report.counts["dead_lettered"] == 0
    page = e.map.settings.search_page_size
    # 50 pages reach the 10,000 cap, a second window reads the rest, plus the deals search
    assert e.map.calls["search"] >= 10_000 // page + 2
    leads = e.salesforce.emulator.org.stores["Lead"].records.values()
    emails = sorted(str(r["Email"]) for r in leads if not r.get("IsDeleted"))
    assert emails == sorted(f"bulk{i}@import.example" for i in range(n))  # each exactly once
    with e.session.store.transaction(readonly=True) as tx:
        assert tx.count_links("main", "leads") == n
    assert elapsed < 120, f"one 10,001-record cycle took {elapsed:.1f}s"
    # Salesforce got them in the largest batches: a Bulk 2.0 job, e-mail pre-reads 1,000 a call
    # (plus one describe per object read: Lead, Contact, Account, Opportunity and its roles).
    assert e.crm.calls["bulk2"] > 0 and e.crm.calls["describe"] <= 5
    assert sum(e.crm.calls.values()) - e.crm.calls["describe"] <= 21
    before = e.data()
    echo = e.cycle()
    assert echo.counts["echoes_skipped"] == n
    assert writes(echo) == {} and e.data() == before


# -- 9. a 429 storm and token expiry mid-cycle --------------------------------------------------


def test_a_429_storm_mid_cycle_is_retried_and_the_cycle_completes(make: Make) -> None:
    e = make(hubspot_overrides={"search_page_size": 2})  # so the contacts search has two pages
    for i in range(3):
        e.create_lead(f"lead{i}@lead.example")
    e.create_contacts(
        *(
            {"email": f"contact{i}@contact.example", "lastname": "C", "company": "C"}
            for i in range(3)
        )
    )
    e.advance(1)
    hs = e.hubspot
    wait = {"Retry-After": "2"}
    # Mid-cycle HubSpot answers 429 seven times: the second page of the contacts search twice,
    # the first write batch four times in a row (one short of the connector's five attempts),
    # then the deals search once.
    for fault in (
        {"path": "/contacts/search$", "skip": 1, "times": 2},
        {"path": "/contacts/batch/(upsert|create|update)$", "times": 4},
        {"path": "/deals/search$", "times": 1},
    ):
        hs.control("POST", "faults", {**fault, "status": 429, "headers": wait})
    hs.emulator.calls.reset()
    e.map.calls.clear()
    slept = len(e.clock.sleeps)

    report = e.cycle()

    assert writes(report) == {"created": 6}
    assert hs.control("GET", "faults") == []  # the whole storm was spent
    # Every send was counted by the connector exactly as the emulator saw it, 429s included.
    ours = {k: v for k, v in e.map.calls.items() if v}
    theirs = {k: v for k, v in hs.emulator.calls.snapshot().items() if v and k != "total"}
    assert ours == theirs
    assert report.calls["hubspot"] == sum(theirs.values())
    assert e.clock.sleeps[slept:].count(2.0) >= 7  # the server's Retry-After, slept 7 times
    assert set(e.leads()) == set(e.contacts()) and len(e.leads()) == 6
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before  # no retried create doubled a record


def test_token_expiry_mid_cycle_is_refreshed_and_the_cycle_completes(
    make: Make, hubspot: RunningHubSpot, salesforce: RunningSalesforce
) -> None:
    e = make(
        hubspot_overrides={
            "access_token": None,
            "client_id": hubspot.client_id,
            "client_secret": hubspot.client_secret,
            "refresh_token": oauth_refresh_token(hubspot),
        }
    )
    for i in range(2):
        e.create_lead(f"lead{i}@lead.example")
    e.create_contacts(
        *(
            {"email": f"contact{i}@contact.example", "lastname": "C", "company": "C"}
            for i in range(2)
        )
    )
    e.advance(1)
    expired: list[bool] = []

    def expire_every_token() -> None:
        hubspot.control("POST", "expire-tokens")
        salesforce_control(salesforce, "POST", "expire-tokens")
        expired.append(True)

    e.map.after_contacts_read = expire_every_token  # after both reads, before any write
    salesforce.emulator.calls.reset()
    hubspot.emulator.calls.reset()

    report = e.cycle()

    assert expired == [True]
    assert writes(report) == {"created": 4}
    # one token each at the start, one refresh each after the expiry; every send counted
    assert e.crm.calls["auth"] == 2 and e.map.calls["auth"] == 2
    sf_theirs = {k: v for k, v in salesforce.emulator.calls.snapshot().items() if v}
    hs_theirs = {k: v for k, v in hubspot.emulator.calls.snapshot().items() if v}
    assert {k: v for k, v in e.crm.calls.items() if v} == _without_total(sf_theirs)
    assert {("oauth" if k == "auth" else k): v for k, v in e.map.calls.items() if v} == (
        _without_total(hs_theirs)
    )
    e.log_in_again()  # the people's sessions expired too
    assert set(e.leads()) == set(e.contacts()) and len(e.leads()) == 4
    before = e.data()
    assert writes(e.cycle()) == {} and e.data() == before


# -- 9. capped reads through runs of records sharing one instant --------------------------------


def test_a_capped_read_moves_on_through_records_sharing_one_instant(make: Make) -> None:
    """Probe 4: a cap below the size of a bulk update used to re-read one page for ever."""
    e = make(pair={"max_records_per_cycle": 10, "overlap_seconds": 5})
    hs, sf = e.hubspot.emulator.clock, e.salesforce.emulator.clock
    hs.freeze()
    e.create_contacts(
        *({"email": f"hs{i}@cap.example", "lastname": f"H{i}", "company": "Cap"} for i in range(30))
    )
    hs.unfreeze()
    sf.freeze()  # one SystemModstamp for all thirty (and SOQL literals are whole seconds)
    for i in range(30):
        e.create_lead(f"sf{i}@cap.example", LastName=f"S{i}")
    sf.unfreeze()
    e.realign_clocks()
    e.advance(1)

    reports = [e.cycle() for _ in range(5)]

    assert {f"hs{i}@cap.example" for i in range(30)} <= set(e.leads())
    assert {f"sf{i}@cap.example" for i in range(30)} <= set(e.contacts())
    assert all(r.counts["read_crm"] <= 10 and r.counts["read_map"] <= 10 for r in reports)
    with e.session.store.transaction(readonly=True) as tx:
        assert tx.count_links("main", "leads") == 60
