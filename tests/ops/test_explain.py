"""``explain``: a record's link, values vs baselines, decisions, dead letters, audit, verdict."""

from __future__ import annotations

from crm_bridge.ops.explain import explain
from tests.sync.emulated import Make


def test_a_synced_record_is_explained_by_either_id_or_its_email(make: Make) -> None:
    e = make()
    lead = e.create_lead("Ann@Lead.example", FirstName="Ann")
    e.advance(1)
    e.cycle()
    link = e.link_for("crm", lead)
    assert link is not None and link.map_id is not None

    for query in (lead, link.map_id, "ann@lead.example"):
        ex = explain(e.session, query)
        assert ex.link is not None and ex.link.id == link.id, query
        assert ex.summary.startswith("in sync: both sides hold the same values"), ex.summary
    first = next(f for f in ex.fields if f.name == "first_name")
    assert first.current == {"crm": "Ann", "map": "Ann"} == first.baseline


def test_an_edit_not_synced_yet_names_the_field_and_the_side(make: Make) -> None:
    e = make()
    lead = e.create_lead("bob@lead.example", Title="Engineer")
    e.advance(1)
    e.cycle()
    e.update_lead(lead, Title="CTO")

    ex = explain(e.session, lead)

    title = next(f for f in ex.fields if f.name == "title")
    assert title.current == {"crm": "CTO", "map": "Engineer"}
    assert title.baseline["crm"] == "Engineer" and title.changed_on() == ["crm"]
    assert ex.summary.startswith("not in sync yet: title differ; changed on crm")
    offline = explain(e.session, lead, live=False)
    assert offline.summary.startswith("in sync as far as the store knows")


def test_a_conflict_shows_the_last_decision(make: Make) -> None:
    e = make()
    lead = e.create_lead("cy@lead.example", Title="A")
    e.advance(1)
    e.cycle()
    link = e.link_for("crm", lead)
    assert link is not None and link.map_id
    e.update_lead(lead, Title="From CRM")
    e.advance(1)
    e.update_contact(link.map_id, jobtitle="From HubSpot")
    e.advance(1)
    e.cycle()

    ex = explain(e.session, lead)

    decided = next(f for f in ex.fields if f.name == "title").decision
    assert decided is not None
    assert (decided.crm_value, decided.map_value) == ("From CRM", "From HubSpot")
    assert decided.winner in ("crm", "map") and decided.rule
    assert ex.to_json()["fields"][0]["field"]


def test_a_dead_lettered_record_says_why_and_how_to_replay(make: Make) -> None:
    e = make()
    solo = e.salesforce.emulator.org.add_user(
        "solo.rep@example.com", "Solo", "Rep", email="solo.rep@example.com"
    )
    orphan = e.create_lead("orphan@lead.example", OwnerId=solo)
    e.advance(1)
    e.cycle()
    (dl,) = e.dead_letters()

    ex = explain(e.session, orphan)

    assert ex.link is None and [d.id for d in ex.dead_letters] == [dl.id]
    assert "OWNER_NOT_FOUND" in ex.summary and f"crm-bridge dlq replay {dl.id}" in ex.summary
    unknown = explain(e.session, "nobody@nowhere.example")
    assert unknown.summary.startswith("not synced: no link for 'nobody@nowhere.example'")


def test_a_deleted_record_has_a_closed_link_and_an_audit_trail(make: Make) -> None:
    e = make()
    lead = e.create_lead("gone@lead.example")
    e.advance(1)
    e.cycle()
    e.delete_lead(lead)
    e.advance(1)
    e.cycle(allow_deletes=True)

    ex = explain(e.session, lead)

    assert ex.link is not None and ex.link.status == "deleted"
    assert "is closed (deleted)" in ex.summary
    assert any(a.kind.startswith("sync.delete") for a in ex.audit)
