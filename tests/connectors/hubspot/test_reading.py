from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx

from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from tests.connectors.hubspot.conftest import (
    MakeConnector,
    add_contacts,
    assert_counts_match,
    server_calls,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_changes_streams_pages_oldest_first_with_inclusive_since(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ids = add_contacts(hubspot.emulator, 450, start=T0, step_ms=1000)

    records = list(connector.changes("contacts", None))

    assert [r.id for r in records] == ids
    assert [r.modified_at for r in records] == sorted(r.modified_at for r in records)
    assert records[0].modified_at == T0
    assert records[0].fields["email"] == "p0@example.com"
    assert records[0].version == "2026-03-01T12:00:00.000Z"
    assert connector.calls["search"] == 3  # 200 + 200 + 50

    since = records[200].modified_at
    later = list(connector.changes("contacts", since))
    assert [r.id for r in later] == ids[200:]  # the record modified exactly at `since` included
    assert_counts_match(connector, hubspot)


def test_ten_thousand_and_one_changes_in_one_pass(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    hubspot.emulator.seed(contacts=10_001, seed=7)
    connector.changes("contacts", None)  # nothing is sent before iteration
    assert server_calls(hubspot)["total"] == 0

    records = list(connector.changes("contacts", None))

    ids = [r.id for r in records]
    assert len(ids) == 10_001
    assert len(set(ids)) == 10_001
    assert all(a.modified_at <= b.modified_at for a, b in itertools.pairwise(records))
    # 50 pages in the first window, one page in the second: the theoretical minimum, no 400.
    assert connector.calls["search"] == 51
    assert_counts_match(connector, hubspot)


def test_a_window_full_of_one_millisecond_is_walked_by_id(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    hubspot.emulator.settings.search_max_results = 50
    conn = make_connector(search_max_results=50, search_page_size=20)
    same = add_contacts(hubspot.emulator, 120, start=T0, step_ms=0, prefix="bulk")
    after = add_contacts(hubspot.emulator, 10, start=T0 + timedelta(seconds=1), prefix="late")

    records = list(conn.changes("contacts", None))

    assert [r.id for r in records] == same + after
    # 3 pages to the cap; tie windows by id: 3 (re-read), 3, 1; then 1 page after the tie.
    assert conn.calls["search"] == 11
    assert_counts_match(conn, hubspot)


def test_merges_are_visible_on_the_survivor(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    winner, loser = add_contacts(hubspot.emulator, 2, start=T0)
    httpx.post(
        f"{hubspot.base_url}/crm/v3/objects/contacts/merge",
        json={"primaryObjectId": winner, "objectIdToMerge": loser},
        headers={"Authorization": f"Bearer {hubspot.access_token}"},
    ).raise_for_status()

    records = {r.id: r for r in connector.changes("contacts", T0)}

    assert set(records) == {winner}
    assert records[winner].merged_from == (loser,)
    assert records[winner].fields["hs_merged_object_ids"] == loser


def test_archived_records_are_deleted_and_the_poll_is_throttled(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    old, kept, gone = add_contacts(hubspot.emulator, 3, start=T0)
    em = hubspot.emulator
    em.clock.freeze(T0 - timedelta(days=1))
    em.portal.archive("contacts", em.portal.store("contacts").live[int(old)])
    em.clock.freeze(T0 + timedelta(hours=1))
    hubspot.client().crm.contacts.basic_api.archive(gone)
    em.clock.unfreeze()
    em.calls.reset()
    since = T0

    first = list(connector.changes("contacts", since))

    deleted = [r for r in first if r.deleted]
    assert [r.id for r in deleted] == [gone]  # archived before `since`: not reported
    assert deleted[0].modified_at == T0 + timedelta(hours=1)
    assert [r.id for r in first if not r.deleted] == [kept]
    assert server_calls(hubspot)["objects"] == 1

    em.calls.reset()
    second = list(connector.changes("contacts", since))
    assert [r.id for r in second] == [kept]  # the archive poll is not due yet
    assert server_calls(hubspot) == {"search": 1, "total": 1}

    connector.client.clock.advance(3600)  # type: ignore[attr-defined]
    third = list(connector.changes("contacts", since))
    assert server_calls(hubspot)["objects"] == 1
    assert [r.id for r in third if r.deleted] == [gone]


def test_idle_cycle_costs_one_call_per_object(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    add_contacts(hubspot.emulator, 5, start=T0)
    for obj in ("contacts", "companies", "deals"):
        list(connector.changes(obj, None))  # warm-up: property definitions, first archive poll
    hubspot.emulator.calls.reset()
    before = sum(connector.calls.values())
    since = datetime.now(UTC) + timedelta(days=1)

    for obj in ("contacts", "companies", "deals"):
        assert list(connector.changes(obj, since)) == []

    assert server_calls(hubspot) == {"search": 3, "total": 3}
    assert sum(connector.calls.values()) - before == 3


def test_fetch_reads_in_batches_of_100_and_skips_unknown_ids(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    ids = add_contacts(hubspot.emulator, 120, start=T0)
    wanted = [*ids, "999999999", "not-a-number"]

    records = list(connector.fetch("contacts", wanted))

    assert sorted(r.id for r in records) == sorted(ids)
    assert {r.fields["email"] for r in records} >= {"p0@example.com", "p119@example.com"}
    assert connector.calls["batch"] == 2
    assert_counts_match(connector, hubspot)


def test_configured_properties_replace_the_definitions_call(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    add_contacts(hubspot.emulator, 2, start=T0)
    conn = make_connector(properties={"contacts": ["firstname"]})

    records = list(conn.changes("contacts", None))

    assert set(records[0].fields) == {
        "firstname",
        "lastmodifieddate",
        "hs_object_id",
        "hs_merged_object_ids",
        "hs_updated_by_user_id",
        "email",
    }
    assert conn.calls["properties"] == 0
