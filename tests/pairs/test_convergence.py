"""Both Marketo pairs converge on the emulators through the real connectors.

Creates, edits and deletes on both sides; the second cycle reads our own writes back as echoes and
writes nothing; no person is doubled.  The same scenario runs with HubSpot and with Salesforce as
the CRM (``any_pair``), only the CRM field names differ.
"""

from __future__ import annotations

from typing import Any

from tests.pairs.conftest import MakePair
from tests.pairs.harness import MarketoPair
from tests.sync.emulated import writes

# Logical field -> the CRM's name for it, per pair.
CRM_NAMES: dict[str, dict[str, str]] = {
    "hubspot": {"first": "firstname", "title": "jobtitle", "status": "hs_lead_status",
                "source": "hs_analytics_source", "phone": "phone"},
    "salesforce": {"first": "FirstName", "title": "Title", "status": "Status",
                   "source": "LeadSource", "phone": "Phone"},
}  # fmt: skip
# A CRM status value, and what Marketo's leadStatus must read after the sync.
STATUS = {"hubspot": ("IN_PROGRESS", "Working"), "salesforce": ("Working - Contacted",) * 2}
# A Marketo leadSource value and the CRM's value after the sync (value maps).
SOURCE = {"hubspot": ("Paid Search", "PAID_SEARCH"), "salesforce": ("Partner", "Partner Referral")}


def _crm(p: MarketoPair, person: dict[str, Any], logical: str) -> Any:
    return person.get(CRM_NAMES[p.kind][logical])


def test_initial_sync_both_ways_then_echo_free_and_idle(any_pair: MakePair) -> None:
    p = any_pair()
    n = CRM_NAMES[p.kind]
    status, marketo_status = STATUS[p.kind]
    source, crm_source = SOURCE[p.kind]
    ann = p.create_lead("ann@mkto.example", firstName="Ann", title="CMO", leadSource=source)
    p.create_lead("bob@mkto.example", firstName="Bob")
    p.create_person("cat@crm.example", **{n["first"]: "Cat", n["status"]: status})
    # the same person on both sides (e-mail case differs): matched, not doubled
    p.create_lead("eve@both.example", firstName="Eve", phone="+1 555 0100")
    eve_c = p.create_person("EVE@both.example", **{n["title"]: "VP"})
    p.advance(1)

    first = p.cycle()

    assert writes(first).get("created") == 3 and writes(first).get("linked") == 1
    people, leads = p.people(), p.leads()
    everyone = {"ann@mkto.example", "bob@mkto.example", "cat@crm.example", "eve@both.example"}
    assert set(people) == set(leads) == everyone
    # Marketo -> CRM: fields, and the lead source through the value map (map_to_crm)
    assert _crm(p, people["ann@mkto.example"], "title") == "CMO"
    assert _crm(p, people["ann@mkto.example"], "source") == crm_source
    assert _crm(p, people["eve@both.example"], "phone") == "+1 555 0100"
    # CRM -> Marketo: fields and the status through the value map (crm_to_map)
    assert leads["cat@crm.example"]["firstName"] == "Cat"
    assert leads["cat@crm.example"]["leadStatus"] == marketo_status
    assert leads["eve@both.example"]["title"] == "VP"
    links = {(link.crm_id, link.map_id) for link in p.links()}
    assert len(links) == 4 and (eve_c, leads["eve@both.example"]["id"]) in links
    assert ann in {m for _, m in links}

    before = p.data()
    echo = p.cycle()
    assert writes(echo) == {} and echo.counts["read_map"] + echo.counts["read_crm"] > 0
    assert p.data() == before
    idle = p.cycle()
    assert writes(idle) == {} and p.dead_letters() == []
    assert p.data() == before


def test_edits_and_deletes_on_both_sides_flow_and_settle(any_pair: MakePair) -> None:
    p = any_pair()
    n = CRM_NAMES[p.kind]
    ann = p.create_lead("ann@mkto.example", firstName="Ann")
    cat = p.create_person("cat@crm.example", **{n["first"]: "Cat"})
    gone_m = p.create_lead("gone.m@mkto.example", firstName="Gone")
    gone_c = p.create_person("gone.c@crm.example", **{n["first"]: "Gone"})
    p.advance(1)
    p.cycle()
    p.cycle()
    people, leads = p.people(), p.leads()
    ann_c = people["ann@mkto.example"]["id"]
    cat_m = leads["cat@crm.example"]["id"]

    # The marketer edits in Marketo, the rep edits in the CRM, each deletes one person.
    p.edit_lead(ann, title="Head of Demand", firstName="Annie")
    p.edit_person(cat, **{n["title"]: "Buyer", n["phone"]: "+1 555 0199"})
    # the one-way fields: status only flows crm -> map, so a Marketo edit of it never reaches the CRM
    p.edit_lead(cat_m, leadStatus="Hand-edited")
    p.delete_lead(gone_m)
    p.delete_person(gone_c)
    p.advance(1)

    report = p.cycle()

    assert writes(report).get("updated", 0) >= 2
    people, leads = p.people(), p.leads()
    assert _crm(p, people["ann@mkto.example"], "title") == "Head of Demand"
    assert _crm(p, people["ann@mkto.example"], "first") == "Annie"
    assert people["ann@mkto.example"]["id"] == ann_c
    assert leads["cat@crm.example"]["title"] == "Buyer"
    assert leads["cat@crm.example"]["phone"] == "+1 555 0199"
    assert _crm(p, people["cat@crm.example"], "status") != "Hand-edited"
    # Deleted on one side: never re-created there from the other side's copy.
    assert "gone.m@mkto.example" not in leads
    assert "gone.c@crm.example" not in people
    p.cycle()
    people, leads = p.people(), p.leads()
    # No duplicates anywhere: one live record per e-mail on each side, one link per person.
    # (the default delete policy "flag" keeps the other side's record and unlinks it)
    assert set(people) == {"ann@mkto.example", "cat@crm.example", "gone.m@mkto.example"}
    assert set(leads) == {"ann@mkto.example", "cat@crm.example", "gone.c@crm.example"}
    assert {(link.crm_id, link.map_id) for link in p.links()} == {(ann_c, ann), (cat, cat_m)}
    before = p.data()
    assert writes(p.cycle()) == {}
    assert p.data() == before
