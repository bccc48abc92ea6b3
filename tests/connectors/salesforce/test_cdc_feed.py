"""SalesforceCdcFeed: the connector's Change Data Capture feed against the emulator's Pub/Sub API.

Edits come from a rep through simple-salesforce (no client id: not ours) or from the connector's
own ``write`` (which names crm-bridge in ``Sforce-Call-Options``).  Waits are bounded by the
feed's own ``timeout``; nothing sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crm_bridge.connector import ChangeFeed, ChangeHint, FeedBatch, Upsert
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.emulator.cdc import RETENTION_SECONDS
from crm_bridge.emulators.runtime import Fault
from crm_bridge.errors import ConfigError, TransientError

from .conftest import MakeConnector

WAIT = 5.0
OBJECTS = ["Person", "Lead", "Account"]

OpenFeed = Callable[..., tuple[SalesforceConnector, ChangeFeed]]


@pytest.fixture
def open_feed(salesforce: RunningSalesforce, make_connector: MakeConnector) -> Iterator[OpenFeed]:
    feeds: list[ChangeFeed] = []

    def open_(
        objects: list[str] | None = None, **overrides: Any
    ) -> tuple[SalesforceConnector, ChangeFeed]:
        connector = make_connector(cdc=True, pubsub_endpoint=salesforce.pubsub_address, **overrides)
        feed = connector.change_feed(objects or OBJECTS)
        feeds.append(feed)
        return connector, feed

    yield open_
    for feed in feeds:
        feed.close()


def _start(feed: ChangeFeed) -> str:
    """Subscribe from now and return the starting position (the first answer carries it)."""
    batch = feed.poll(None, timeout=WAIT)
    assert batch.position is not None and not batch.hints and not batch.lost
    return batch.position


def _until(feed: ChangeFeed, position: str, count: int) -> tuple[list[ChangeHint], FeedBatch]:
    """Poll until ``count`` hints came (each poll bounded by WAIT)."""
    hints: list[ChangeHint] = []
    batch = FeedBatch(position=position)
    deadline = time.monotonic() + 3 * WAIT
    while len(hints) < count and time.monotonic() < deadline:
        batch = feed.poll(batch.position, timeout=WAIT)
        hints.extend(batch.hints)
        if batch.lost:
            break
    return hints, batch


def test_a_reps_create_update_delete_become_hints_for_lead_and_person(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    _, feed = open_feed()
    position = _start(feed)
    rep = salesforce.simple_salesforce()
    lead = rep.Lead.create({"LastName": "Ann", "Company": "Acme"})["id"]
    rep.Lead.update(lead, {"Title": "CTO"})
    rep.Lead.delete(lead)

    hints, batch = _until(feed, position, 6)

    assert [(h.object, h.kind) for h in hints] == [
        ("Lead", "upsert"),
        ("Person", "upsert"),
        ("Lead", "upsert"),
        ("Person", "upsert"),
        ("Lead", "delete"),
        ("Person", "delete"),
    ]
    assert {h.record_id for h in hints} == {lead} and not any(h.ours for h in hints)
    assert len({h.event_id for h in hints}) == 6
    assert batch.position not in (None, position) and not batch.lost
    assert hints[0].occurred_at.tzinfo is not None


def test_our_own_writes_are_hinted_as_ours_and_unserved_objects_are_skipped(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    connector, feed = open_feed(objects=["Lead"])
    position = _start(feed)
    (result,) = connector.write("Lead", [Upsert("k", {"LastName": "Own", "Company": "Acme"})])
    rep = salesforce.simple_salesforce()
    rep.Contact.create({"LastName": "Not served"})
    rep.Lead.update(result.id, {"Title": "rep edit"})

    hints, _ = _until(feed, position, 2)

    assert [(h.object, h.ours) for h in hints] == [("Lead", True), ("Lead", False)]


def test_a_redelivered_event_is_dropped_and_calls_are_counted(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    connector, feed = open_feed(objects=["Lead"])
    position = _start(feed)
    salesforce.emulator.bus.faults.duplicate = 1
    rep = salesforce.simple_salesforce()
    lead = rep.Lead.create({"LastName": "Dup", "Company": "Acme"})["id"]
    rep.Lead.update(lead, {"Title": "x"})

    hints, _ = _until(feed, position, 2)

    assert [h.record_id for h in hints] == [lead, lead]
    assert feed.duplicates == 1
    assert connector.calls["pubsub.subscribe"] == 1
    assert connector.calls["pubsub.get_schema"] == 1  # one schema id, fetched once


def test_an_expired_position_is_lost_and_the_feed_resumes_from_now(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    _, first = open_feed(objects=["Lead"])
    position = _start(first)
    rep = salesforce.simple_salesforce()
    rep.Lead.create({"LastName": "Old", "Company": "Acme"})
    _, batch = _until(first, position, 1)
    stored = batch.position
    assert stored is not None
    first.close()
    salesforce.emulator.clock.advance(RETENTION_SECONDS + 60)

    _, restarted = open_feed(objects=["Lead"])  # a daemon restart with the stored position
    lost = restarted.poll(stored, timeout=WAIT)
    assert lost.lost and not lost.hints and lost.position is not None

    rep = salesforce.simple_salesforce()  # the rep logs in again, too
    lead = rep.Lead.create({"LastName": "New", "Company": "Acme"})["id"]
    assert lost.position is not None
    hints, after = _until(restarted, lost.position, 1)
    assert [h.record_id for h in hints] == [lead] and not after.lost


def test_a_restarted_feed_resumes_after_its_stored_position(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    _, first = open_feed(objects=["Lead"])
    position = _start(first)
    rep = salesforce.simple_salesforce()
    a = rep.Lead.create({"LastName": "A", "Company": "Acme"})["id"]
    _, batch = _until(first, position, 1)
    first.close()
    b = rep.Lead.create({"LastName": "B", "Company": "Acme"})["id"]  # while nobody listens

    _, second = open_feed(objects=["Lead"])
    assert batch.position is not None
    hints, _ = _until(second, batch.position, 1)

    assert [h.record_id for h in hints] == [b] and a != b


def test_gap_events_are_gap_hints_and_an_overflow_is_lost(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    _, feed = open_feed(objects=["Lead"])
    position = _start(feed)
    bus = salesforce.emulator.bus
    bus.inject_gap("Lead", ["00Q5g0000000099EAA"], "UPDATE")
    hints, batch = _until(feed, position, 1)
    assert [(h.kind, h.record_id) for h in hints] == [("gap", "00Q5g0000000099EAA")]

    bus.inject_overflow("Contact")  # not served: ignored
    bus.inject_overflow("Lead")
    assert batch.position is not None
    deadline = time.monotonic() + 3 * WAIT
    while not batch.lost and time.monotonic() < deadline:
        batch = feed.poll(batch.position, timeout=WAIT)
    assert batch.lost and batch.position is not None


def test_poll_returns_within_its_timeout_when_nothing_happens(open_feed: OpenFeed) -> None:
    _, feed = open_feed()
    position = _start(feed)
    started = time.monotonic()
    batch = feed.poll(position, timeout=0.3)
    elapsed = time.monotonic() - started
    assert batch.hints == () and batch.position == position
    assert 0.25 <= elapsed < 2.0


def test_an_expired_session_is_refreshed_once_and_a_failing_stream_raises(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    connector, feed = open_feed(objects=["Lead"])
    position = _start(feed)
    salesforce.emulator.expire_tokens()
    auth_calls = connector.calls["auth"]
    rep_token_user = salesforce.simple_salesforce()
    lead = rep_token_user.Lead.create({"LastName": "After", "Company": "Acme"})["id"]

    # a new stream (another position) meets the expired session: one refresh, then on
    feed.poll("AAAAAAAAAAA=", timeout=WAIT)  # an id the bus never issued: lost, resumes
    hints, _ = _until(feed, position, 1)
    assert [h.record_id for h in hints] == [lead]
    assert connector.calls["auth"] == auth_calls + 1

    salesforce.emulator.faults.add(
        Fault(path="/eventbus.v1.PubSub/Subscribe", status=503, times=None)
    )
    with pytest.raises(TransientError):
        feed.poll("AAAAAAAAAAE=", timeout=WAIT)


def test_the_feed_is_refused_unless_cdc_is_on(make_connector: MakeConnector) -> None:
    connector = make_connector()
    with pytest.raises(ConfigError, match="cdc"):
        connector.change_feed(["Lead"])
    assert not connector.calls  # refused before any call


def test_a_start_that_got_no_position_yet_keeps_its_stream(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    connector, feed = open_feed(objects=["Lead"])
    first = feed.poll(None, timeout=0.0)  # as PairFeeds.start does: the answer may not be in
    placed = feed.poll(first.position, timeout=WAIT)  # answered once the stream names its start
    assert placed.position is not None
    rep = salesforce.simple_salesforce()
    lead = rep.Lead.create({"LastName": "Early", "Company": "Acme"})["id"]

    hints, _ = _until(feed, placed.position, 1)

    assert [h.record_id for h in hints] == [lead]
    assert connector.calls["pubsub.subscribe"] == 1  # one stream throughout, never a new "now"


def test_without_the_extra_the_feed_names_it_and_the_connector_still_loads() -> None:
    # A fresh interpreter where grpc cannot be imported, as after a plain `pip install`.
    script = """
import importlib.abc, sys
class NoGrpc(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" or name.startswith("grpc."):
            raise ImportError("No module named 'grpc'")
        return None
sys.meta_path.insert(0, NoGrpc())
from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.errors import ConfigError
settings = SalesforceSettings(instance_url="https://x.example", token_url="https://x.example/t",
                              client_id="c", cdc=True)
connector = SalesforceConnector(settings, name="sf")
try:
    connector.change_feed(["Lead"])
except ConfigError as exc:
    print("refused:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "refused:" in done.stdout and "salesforce-cdc" in done.stdout
    assert "grpc" not in done.stderr


def test_one_event_naming_several_records_gives_a_hint_per_record(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    rep = salesforce.simple_salesforce()
    ids = [rep.Lead.create({"LastName": n, "Company": "Acme"})["id"] for n in ("a", "b")]
    _, feed = open_feed(objects=["Lead"])
    position = _start(feed)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Lead"}, "id": i, "Status": "Working - Contacted"} for i in ids
        ],
    }
    rep.restful("composite/sobjects", method="PATCH", data=json.dumps(body))

    hints, _ = _until(feed, position, 2)

    assert sorted(h.record_id for h in hints) == sorted(ids)
    assert len({h.event_id for h in hints}) == 2 and len({h.occurred_at for h in hints}) == 1


def test_a_contact_role_event_hints_its_opportunity(
    salesforce: RunningSalesforce, open_feed: OpenFeed
) -> None:
    """Roles are a field of the opportunity: their events must wake the deal, not be dropped."""
    _, feed = open_feed(objects=["Opportunity"])
    rep = salesforce.simple_salesforce()
    opp = rep.Opportunity.create(
        {"Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    )["id"]
    contact = rep.Contact.create({"LastName": "Buyer"})["id"]
    position = _start(feed)
    role = rep.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": contact})["id"]
    rep.OpportunityContactRole.delete(role)

    hints, _ = _until(feed, position, 2)

    assert [(h.object, h.record_id, h.kind) for h in hints] == [
        ("Opportunity", opp, "upsert"),  # a new role names its opportunity: read it by id
        ("Opportunity", role, "delete"),  # a removed one does not: the cursor read finds it
    ]
    assert not any(h.ours for h in hints)
