"""Large change reads through a Bulk 2.0 queryAll snapshot, against the emulator over TLS."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta

from crm_bridge.connector import Delete, Record, Upsert
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.bulk_read import rest_datetime
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

from .conftest import MakeConnector, emulator_calls, reset_calls

BULK = {"query_batch_size": 200, "bulk_query_threshold": 300, "bulk_query_page": 200}


def _comparable(record: Record) -> tuple[object, ...]:
    return (
        record.id,
        record.version,
        record.modified_at,
        record.deleted,
        record.merged_into,
        record.modified_by,
        sorted(record.fields.items(), key=lambda kv: kv[0]),
    )


def test_a_large_read_comes_from_one_bulk_job_in_keyset_order_equal_to_rest(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    bulk = make_connector(**BULK)
    rest = make_connector(query_batch_size=200, bulk_query_threshold=0)
    bulk.describe_object("Lead")
    expected = list(rest.changes("Lead", None))
    reset_calls(salesforce, bulk)
    got = list(bulk.changes("Lead", None))
    assert [_comparable(r) for r in got] == [_comparable(r) for r in expected]
    # One REST page (its totalSize says 450 > 300), then: create, one poll, ceil(450 / 200)
    # results pages, and the REST read of what changed after the job's cut-off.
    assert dict(bulk.calls) == {"query": 2, "bulk2": 5}
    assert emulator_calls(salesforce) == dict(bulk.calls)


def test_small_reads_and_a_first_page_holding_everything_stay_on_rest(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=250)
    connector = make_connector(query_batch_size=200, bulk_query_threshold=300)
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    assert sum(1 for _ in connector.changes("Lead", None)) == 250
    assert dict(connector.calls) == {"query": 2}
    wide = make_connector(query_batch_size=2000, bulk_query_threshold=10)
    wide.describe_object("Lead")
    reset_calls(salesforce, wide)
    assert sum(1 for _ in wide.changes("Lead", None)) == 250  # done on the first page
    assert dict(wide.calls) == {"query": 1}


def test_the_snapshot_serves_later_cycles_and_a_record_changed_since_comes_once_and_newer(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    connector = make_connector(**BULK)
    first_cycle = list(itertools.islice(connector.changes("Lead", None), 100))
    cursor = first_cycle[-1].modified_at
    (snapshot,) = connector._snapshots.values()
    assert os.path.exists(snapshot.path) and snapshot.rows == 450
    # While the load runs, a rep edits a lead the load has not reached and deletes another.
    salesforce.emulator.clock.advance(5)
    tail = list(connector.changes("Lead", cursor))[-2:]
    edited, deleted = tail[0].id, tail[1].id
    assert connector.write("Lead", [Upsert("e", {"Company": "Edited"}, id=edited)])[0].ok
    assert connector.write("Lead", [Delete("d", deleted)])[0].ok
    reset_calls(salesforce, connector)
    second = list(connector.changes("Lead", cursor))
    assert "bulk2" not in connector.calls  # no new job: the snapshot served the cycle
    assert connector.calls["query"] == 1  # only the REST read of changes after the cut-off
    ids = [r.id for r in second]
    assert len(ids) == len(set(ids))
    by_id = {r.id: r for r in second}
    assert by_id[edited].fields["Company"] == "Edited"
    assert by_id[deleted].deleted
    assert [r.id for r in second[-2:]] == [edited, deleted]  # the newest last, in order
    keys = [(r.modified_at, r.id) for r in second]
    assert keys == sorted(keys)


def test_a_read_past_the_cut_off_drops_the_snapshot_and_its_file(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    connector = make_connector(**BULK)
    everything = list(connector.changes("Lead", None))
    (snapshot,) = connector._snapshots.values()
    salesforce.emulator.clock.advance(5)
    reset_calls(salesforce, connector)
    after = list(connector.changes("Lead", snapshot.cut + timedelta(seconds=1)))
    assert after == []
    assert connector._snapshots == {}
    assert not os.path.exists(snapshot.path)
    assert dict(connector.calls) == {"query": 1}
    assert len(everything) == 450


def test_close_removes_the_spool(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    connector = make_connector(**BULK)
    next(iter(connector.changes("Lead", None)))
    (snapshot,) = connector._snapshots.values()
    connector.close()
    assert not os.path.exists(snapshot.path)


def test_people_reads_use_one_snapshot_per_kind(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    connector: SalesforceConnector = make_connector(objects=["Person"], **BULK)
    people = list(connector.changes("Person", None))
    assert len(people) >= 450
    assert set(connector._snapshots) == {"Lead"}  # contacts were few: REST alone
    keys = [(r.modified_at, r.id) for r in people]
    assert keys == sorted(keys)


def test_bulk_datetimes_read_back_in_the_rest_shape() -> None:
    assert rest_datetime("2026-12-07T13:50:03.120Z") == "2026-12-07T13:50:03.120+0000"
    assert rest_datetime("2026-12-07T13:50:03.000+0000") == "2026-12-07T13:50:03.000+0000"
    assert rest_datetime("2026-12-07T14:50:03.5+01:00") == "2026-12-07T13:50:03.500+0000"
