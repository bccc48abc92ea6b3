"""HubSpot as the CRM, Marketo as marketing: SLA clocks, reminder tasks, recycle, reason pushes.

Everything vendor-specific comes from configuration (crm_bridge/demo/hubspot_crm.py, the same
tables docs/pairs.md shows as TOML): the SLA engine and the reason capture have no HubSpot or
Marketo branch.  Time passes on the emulators' clocks; nothing sleeps.
"""

from __future__ import annotations

from typing import Any

from hubspot.crm.contacts import SimplePublicObjectInput
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput

from crm_bridge.connector import Capability
from crm_bridge.demo.hubspot_crm import (
    MARKETO_REASON_FIELDS,
    NURTURE_OWNER,
    REP,
    reasons_section,
    sla_section,
)
from crm_bridge.reasons.capture import ReasonCapture, person_links
from crm_bridge.reasons.install import apply, plan
from crm_bridge.reasons.taxonomy import ReasonsSettings
from crm_bridge.sla.engine import build_engine
from crm_bridge.sla.policy import SlaSettings
from tests.pairs.conftest import MakePair
from tests.pairs.harness import MarketoPair
from tests.sync.emulated import writes

MANAGER = "maria.manager@example.com"
HOUR = 3600.0


def _owner_ids(p: MarketoPair) -> dict[str, str]:
    return {o.email: o.id for o in p.crm.owners() if o.email}


def _as(p: MarketoPair, email: str) -> Any:
    assert p.hubspot is not None
    return p.hubspot.client(access_token=p.hubspot.emulator.as_user(email))


def _tasks(p: MarketoPair) -> list[dict[str, Any]]:
    """Tasks in HubSpot, read through hubspot-api-client as the manager."""
    page = _as(p, MANAGER).crm.objects.basic_api.get_page(
        "tasks", properties=["hs_task_subject", "hubspot_owner_id"], limit=100
    )
    return [dict(t.properties) for t in page.results]


def _list_members(p: MarketoPair, name: str) -> set[str]:
    inst = p.marketo.emulator.instance
    with inst.lock:
        found = [sl for sl in inst.lists.values() if sl.name == name]
        return {str(m) for sl in found for m in sl.members}


def _pair(hubspot_pair: MakePair) -> MarketoPair:
    p = hubspot_pair(extra={"sla": sla_section(), "reasons": reasons_section()})
    for name in MARKETO_REASON_FIELDS:  # the Marketo admin creates the reason fields
        p.marketo.control("POST", "fields", {"name": name, "dataType": "string"})
    return p


def test_sla_breach_on_hubspot_crm_reminds_with_a_task_then_recycles_to_marketo_nurture(
    hubspot_pair: MakePair,
) -> None:
    p = _pair(hubspot_pair)
    sla = p.config.settings.sla
    assert isinstance(sla, SlaSettings)
    p.create_lead("hot@mkto.example", firstName="Hot", leadScore=80)
    p.create_lead("cold@mkto.example", firstName="Cold", leadScore=10)
    p.advance(1)
    p.cycle()
    people = p.people()
    hot_c, cold_c = people["hot@mkto.example"]["id"], people["cold@mkto.example"]["id"]
    owners = _owner_ids(p)
    # The manager routes both to Rick in HubSpot; only the MQL (score >= 50 in Marketo) enters.
    for contact in (hot_c, cold_c):
        _as(p, MANAGER).crm.contacts.basic_api.update(
            contact, SimplePublicObjectInput(properties={"hubspot_owner_id": owners[REP]})
        )
    p.advance(60)
    engine = build_engine(sla, p.session.connector, p.session.store, p.now)

    first = engine.run_cycle()
    assert first.counts["opened"] == 1 and first.open_clocks == 1
    assert _tasks(p) == []

    p.advance(3.1 * HOUR)  # past 75 % of the 4 business hours: a reminder task for Rick
    remind = engine.run_cycle()
    assert remind.counts["remind"] == 1
    tasks = _tasks(p)
    assert len(tasks) == 1 and tasks[0]["hubspot_owner_id"] == owners[REP]
    assert "accept" in str(tasks[0]["hs_task_subject"]).lower()
    assert engine.run_cycle().counts["remind"] == 0  # idempotent: no second task
    assert len(_tasks(p)) == 1

    p.advance(2 * HOUR)  # 5 h: one hour past the deadline, the recycle step is due
    recycled = engine.run_cycle()
    assert recycled.counts["recycle"] == 1, recycled.errors
    contact = _as(p, MANAGER).crm.contacts.basic_api.get_by_id(
        hot_c, properties=["hs_lead_status", "hubspot_owner_id"]
    )
    assert contact.properties["hs_lead_status"] == "BAD_TIMING"
    assert contact.properties["hubspot_owner_id"] == owners[NURTURE_OWNER]
    hot_m = p.leads()["hot@mkto.example"]
    assert hot_m["leadStatus"] == "Recycled"
    assert _list_members(p, "SLA nurture") == {hot_m["id"]}
    assert p.leads()["cold@mkto.example"].get("leadStatus") is None
    # The sync agrees with what the recycle wrote (BAD_TIMING maps to "Recycled"): no flip-flop.
    p.cycle()
    p.cycle()
    assert p.leads()["hot@mkto.example"]["leadStatus"] == "Recycled"
    before = p.data()
    assert writes(p.cycle()) == {} and p.data() == before
    assert engine.run_cycle().counts["recycle"] == 0


def test_reasons_on_hubspot_deals_and_lead_status_are_pushed_to_marketo_lists(
    hubspot_pair: MakePair,
) -> None:
    p = _pair(hubspot_pair)
    reasons = p.config.settings.reasons
    assert isinstance(reasons, ReasonsSettings)
    assert Capability.PICKLIST_ADMIN not in p.map.capabilities
    # Install: HubSpot gets the picklists, Marketo's fields are listed for the admin.
    planned = plan(reasons, crm=p.crm, marketing=p.map)
    assert planned.changes == 4 and planned.manual == 6
    apply(reasons, crm=p.crm, marketing=p.map)
    assert plan(reasons, crm=p.crm, marketing=p.map).changes == 0
    p.create_lead("buyer@mkto.example", firstName="Buyer", leadScore=70)
    p.create_lead("junk@mkto.example", firstName="Junk")
    p.advance(1)
    p.cycle()
    people = p.people()
    buyer_c, junk_c = people["buyer@mkto.example"]["id"], people["junk@mkto.example"]["id"]
    links = person_links(p.config.settings.pairs, reasons)
    assert links is not None and (links.pair, links.obj) == ("main", "leads")
    capture = ReasonCapture(
        reasons, crm=p.crm, marketing=p.map, store=p.session.store, now=p.now, links=links,
        since=None,
    )  # fmt: skip
    p.advance(60)
    # A rep loses a deal on price with the buyer on it, and rejects the junk lead.
    hs = _as(p, REP)
    deal = hs.crm.deals.basic_api.create(
        DealInput(
            properties={"dealname": "Buyer deal", "dealstage": "closedlost",
                        "crm_bridge_deal_reason": "price", "closedate": "2026-03-02"},
            associations=[{"to": {"id": buyer_c}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
        )
    )  # fmt: skip
    hs.crm.contacts.basic_api.update(
        junk_c,
        SimplePublicObjectInput(
            properties={"hs_lead_status": "UNQUALIFIED", "crm_bridge_rejection_reason": "not_icp"}
        ),
    )
    p.advance(60)

    report = capture.run_cycle()

    assert report.counts["valid"] == 2 and report.counts["pushed"] == 2, report.counts
    leads = p.leads()
    assert leads["buyer@mkto.example"]["lastLossReason"] == "price"
    assert leads["buyer@mkto.example"]["lastLossReasonDate"] == "2026-03-02"
    assert leads["junk@mkto.example"]["lastRejectionReason"] == "not_icp"
    assert _list_members(p, "Lost \u2013 Price") == {leads["buyer@mkto.example"]["id"]}
    assert _list_members(p, "Rejected \u2013 Not our ICP") == {leads["junk@mkto.example"]["id"]}
    assert str(deal.id)
    # Re-running pushes nothing again.
    p.advance(60)
    again = capture.run_cycle()
    assert again.counts["pushed"] == 0 and again.counts["people_updated"] == 0
