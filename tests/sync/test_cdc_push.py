"""Push from Salesforce CDC end to end: a rep's edit wakes the pair and a hinted cycle carries it.

The pair runs between the two emulators through the real connectors (:mod:`tests.sync.emulated`);
the Salesforce side's channel is the connector's own CDC feed over the emulator's Pub/Sub API,
collected by :class:`~crm_bridge.sync.push.PairFeeds` as the daemon does.  Waits are the
collector's, bounded; nothing sleeps to pass.
"""

from __future__ import annotations

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.sync.push import Collected, PairFeeds
from tests.sync.emulated import Emulated, Make, writes

WAIT = 5.0


def _pair(make: Make, salesforce: RunningSalesforce) -> tuple[Emulated, PairFeeds]:
    e = make(salesforce_overrides={"cdc": True, "pubsub_endpoint": salesforce.pubsub_address})
    feeds = PairFeeds.open(e.runner, debounce=0.05, max_delay=2.0, slice_seconds=0.2)
    assert feeds is not None and set(feeds.feeds) == {"crm"}  # HubSpot has no channel here
    feeds.commit(feeds.start())
    placed = feeds.collect(wait=0.5)  # the stream names where it starts
    feeds.commit(placed)
    assert feeds.positions["crm"] is not None
    return e, feeds


def _rest_calls(e: Emulated) -> int:
    """The connector's REST calls (the Pub/Sub stream's are counted apart, as pubsub.*)."""
    return sum(n for family, n in e.crm.calls.items() if not family.startswith("pubsub."))


def _heard(feeds: PairFeeds) -> Collected:
    """Listen until the channel says something (each collect is bounded by WAIT)."""
    for _ in range(3):
        got = feeds.collect(wait=WAIT)
        if not got.empty:
            return got
    raise AssertionError("the CDC channel said nothing")


def test_a_rep_edit_wakes_the_pair_through_cdc_and_a_hinted_cycle_carries_it(
    make: Make, salesforce: RunningSalesforce
) -> None:
    e, feeds = _pair(make, salesforce)
    try:
        lead = e.create_lead("cdc@lead.example", FirstName="Cai", Title="CTO")
        e.advance(1)
        e.cycle()
        e.cycle()
        drained = feeds.collect(wait=0.5)  # the create, as hints (the poll already handled it)
        feeds.commit(drained)
        e.update_lead(lead, Title="CEO")
        e.advance(1)
        calls = _rest_calls(e)

        heard = _heard(feeds)
        report = e.runner.run_cycle(hints=heard.hints)
        feeds.commit(heard)

        hinted = [h for h in heard.hints["crm"] if h.object == "Person"]
        assert [(h.record_id, h.kind, h.ours) for h in hinted] == [(lead, "upsert", False)]
        assert e.contacts()["cdc@lead.example"]["jobtitle"] == "CEO"
        assert report.counts["read_hinted_crm"] == 1 and writes(report) == {"updated": 1}
        assert _rest_calls(e) - calls == 1  # one read by id, no change-stream pages
        assert e.crm.calls["pubsub.subscribe"] == 1  # one stream for the whole test
        assert not heard.lost
    finally:
        feeds.close()


def test_our_own_write_to_salesforce_comes_back_as_ours_and_is_dropped_unread(
    make: Make, salesforce: RunningSalesforce
) -> None:
    e, feeds = _pair(make, salesforce)
    try:
        contact = e.create_contact("mine@x.example", firstname="Mia", jobtitle="Dev")
        e.advance(1)
        e.cycle()  # crm-bridge creates the lead in Salesforce: our write
        e.cycle()
        heard = _heard(feeds)
        assert heard.hints["crm"] and all(h.ours for h in heard.hints["crm"])
        feeds.commit(heard)

        e.update_contact(contact, jobtitle="Lead Dev")
        e.advance(1)
        e.cycle()  # the marketer's edit reaches Salesforce through our write
        echo = _heard(feeds)
        before = _rest_calls(e)
        report = e.runner.run_cycle(hints=echo.hints)
        feeds.commit(echo)

        assert echo.hints["crm"] and all(h.ours for h in echo.hints["crm"])
        assert report.counts["hints_ours"] >= 1 and report.counts["hints"] == 0
        assert _rest_calls(e) == before  # nothing read back
    finally:
        feeds.close()


def test_a_conversion_heard_through_cdc_moves_the_link_to_the_contact(
    make: Make, salesforce: RunningSalesforce
) -> None:
    e, feeds = _pair(make, salesforce)
    try:
        lead = e.create_lead("conv@cdc.example", FirstName="Cy", Company="Hooli")
        e.advance(1)
        e.cycle()
        e.cycle()
        feeds.commit(feeds.collect(wait=0.5))
        before = e.link_for("crm", lead)
        assert before is not None
        contact = salesforce.emulator.convert_lead(lead)["contactId"]
        e.advance(1)

        heard = _heard(feeds)
        report = e.runner.run_cycle(hints=heard.hints)
        feeds.commit(heard)

        person = {(h.record_id, h.kind) for h in heard.hints["crm"] if h.object == "Person"}
        assert {(lead, "upsert"), (contact, "upsert")} <= person
        link = e.link_for("crm", contact)
        assert link is not None and e.link_for("crm", lead) is None
        assert report.counts["converted"] == 1 and e.dead_letters() == []
        # the same HubSpot contact carries on (the new account and deal are created there)
        assert link.map_id == before.map_id
    finally:
        feeds.close()
