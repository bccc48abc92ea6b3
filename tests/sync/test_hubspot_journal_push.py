"""End to end: HubSpot's webhooks journal wakes the pair, and a hinted cycle carries the edit.

Both emulators, the real connectors and vendor clients (tests/sync/emulated.py).  The pair's
channels are opened the way the daemon opens them (:meth:`PairFeeds.open`): HubSpot's side gets
the journal, Salesforce's side has none here.  PairFeeds and the feed share the connectors'
linked fake clock, so the feed's idle waits and the debounce pass without sleeping.
"""

from __future__ import annotations

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot
from crm_bridge.connectors.hubspot.journal import HubSpotJournalFeed
from crm_bridge.sync.push import PairFeeds
from tests.sync.emulated import Emulated, Make, writes


def _pair(make: Make, hubspot: RunningHubSpot) -> tuple[Emulated, PairFeeds]:
    e = make(
        hubspot_overrides={
            "portal_id": hubspot.portal_id,
            "app_id": hubspot.app_id,
            "private_app_id": hubspot.private_app_id,
            "journal_client_id": hubspot.client_id,
            "journal_client_secret": hubspot.client_secret,
        }
    )
    feeds = PairFeeds.open(e.runner, monotonic=e.clock.monotonic, pause=e.clock.sleep)
    assert feeds is not None and set(feeds.feeds) == {"map"} and not feeds.complete
    assert isinstance(feeds.feeds["map"], HubSpotJournalFeed)
    return e, feeds


def test_a_marketers_edit_in_hubspot_reaches_salesforce_through_the_journal(
    make: Make, hubspot: RunningHubSpot
) -> None:
    e, feeds = _pair(make, hubspot)
    contact = e.create_contact("push@journal.example", firstname="Pia", jobtitle="CTO")
    e.advance(1)
    e.cycle()
    e.cycle()
    feeds.commit(feeds.start())  # "now", before the edit, as the daemon does before its first cycle
    lead = e.leads()["push@journal.example"]
    assert lead["Title"] == "CTO"

    e.update_contact(contact, jobtitle="CEO")
    got = feeds.collect(wait=30.0)

    assert [(h.object, h.record_id, h.kind, h.ours) for h in got.hints["map"]] == [
        ("contacts", contact, "upsert", False)
    ]
    calls = sum(e.map.calls.values())
    report = e.runner.run_cycle(hints=got.hints)
    feeds.commit(got)

    assert e.leads()["push@journal.example"]["Title"] == "CEO"
    assert report.counts["read_hinted_map"] == 1 and writes(report) == {"updated": 1}
    # the hinted read: one batch read by id on HubSpot, no search pages
    assert sum(e.map.calls.values()) - calls == 1
    with e.runner.store.transaction(readonly=True) as tx:
        assert tx.get_feed_position(e.runner.name, "map") == got.positions["map"]


def test_crm_bridges_own_write_to_hubspot_comes_back_as_ours_and_is_not_read(
    make: Make, hubspot: RunningHubSpot
) -> None:
    e, feeds = _pair(make, hubspot)
    lead = e.create_lead("own@journal.example", FirstName="Ola", Title="CTO")
    e.advance(1)
    e.cycle()  # creates the contact in HubSpot: a write of ours
    started = feeds.start()
    feeds.commit(started)
    e.update_lead(lead, Title="VP")
    e.advance(1)
    e.cycle()  # the poll carries the rep's edit to HubSpot, through crm-bridge's private app
    contact = e.contacts()["own@journal.example"]["id"]

    got = feeds.collect(wait=30.0)
    hints = got.hints["map"]
    fetches = e.map.calls["batch"]
    report = e.runner.run_cycle(hints=got.hints)

    assert hints and all(h.ours and h.record_id == contact for h in hints)
    assert report.counts["hints_ours"] == len(hints) and report.counts["hints"] == 0
    assert e.map.calls["batch"] == fetches  # nothing read back
    assert e.contact(contact)["jobtitle"] == "VP"
