"""check(), changes(), fetch() and owners() against the emulator over TLS."""

from __future__ import annotations

import itertools

from crm_bridge.connector import Delete, Record, Upsert
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

from .conftest import MakeConnector, emulator_calls, reset_calls


def _leads(connector: object, n: int, prefix: str = "lead") -> list[str]:
    from crm_bridge.connectors.salesforce import SalesforceConnector

    assert isinstance(connector, SalesforceConnector)
    ids: list[str] = []
    ops = [
        Upsert(
            f"{prefix}{i}", {"LastName": f"L{i}", "Company": "Acme", "Email": f"{prefix}{i}@x.io"}
        )
        for i in range(n)
    ]
    for start in range(0, n, 1000):
        results = connector.write("Lead", ops[start : start + 1000])
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
        ids.extend(str(r.id) for r in results)
    return ids


def test_check_names_the_integration_user_with_two_calls(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    answer = connector.check()
    assert answer.startswith(salesforce.integration_username)
    assert "api usage 1/15000" in answer
    assert dict(connector.calls) == {"auth": 1, "query": 1}
    assert emulator_calls(salesforce) == dict(connector.calls)
    assert connector.integration_user_id == salesforce.emulator.user_id(
        salesforce.integration_username
    )


def test_changes_streams_pages_lazily_in_order(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=450)
    connector = make_connector(query_batch_size=200)
    stream = connector.changes("Lead", None)
    first = next(stream)
    assert connector.calls["query"] == 1  # a generator: one page fetched so far
    records = [first, *stream]
    assert len(records) == 450
    assert connector.calls["query"] == 3  # ceil(450 / 200)
    keys = [(r.modified_at, r.id) for r in records]
    assert keys == sorted(keys)
    assert len({r.id for r in records}) == 450
    assert all(r.version == r.fields["SystemModstamp"].replace("+00:00", "+0000") for r in records)
    assert all("attributes" not in r.fields and r.modified_at.tzinfo for r in records)
    assert emulator_calls(salesforce) == dict(connector.calls)


def test_default_page_is_2000_rows(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=4100)
    connector = make_connector()
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    assert sum(1 for _ in connector.changes("Lead", None)) == 4100
    assert dict(connector.calls) == {"query": 3}
    assert emulator_calls(salesforce) == {"query": 3}


def test_deletes_and_merges_arrive_in_the_same_stream(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    keep, gone, winner, loser = _leads(connector, 4)
    assert connector.write("Lead", [Delete("d", gone)])[0].ok
    salesforce.emulator.merge("Lead", winner, [loser])
    records = {r.id: r for r in connector.changes("Lead", None)}
    assert records[gone].deleted and records[gone].merged_into is None
    assert records[loser].deleted and records[loser].merged_into == winner
    assert not records[winner].deleted and not records[keep].deleted
    assert records[gone].modified_by == connector.integration_user_id


def test_exclude_own_changes_hides_integration_writes(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=20)
    connector = make_connector(exclude_own_changes=True)
    everything = make_connector()
    mine = connector.integration_user_id
    all_rows = list(everything.changes("Lead", None))
    filtered = list(connector.changes("Lead", None))
    assert any(r.modified_by == mine for r in all_rows)
    assert filtered and all(r.modified_by != mine for r in filtered)
    assert len(filtered) == sum(1 for r in all_rows if r.modified_by != mine)


def test_fetch_reads_1000_ids_per_composite_call_and_skips_unknown_ones(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    ids = _leads(connector, 1250)
    assert connector.write("Lead", [Delete("gone", ids[-1])])[0].ok
    reset_calls(salesforce, connector)
    unknown = "00Q5g00000ZZZZZZZZ"
    fetched = list(connector.fetch("Lead", [*ids, unknown, "not-an-id'); DROP"]))
    assert sorted(r.id for r in fetched) == sorted(ids)
    assert all(isinstance(r, Record) and r.fields["Company"] == "Acme" for r in fetched)
    assert [r.id for r in fetched if r.deleted] == [ids[-1]]  # queryAll: deleted ones too
    # 1,250 ids = 7 queries of <= 200 ids, five per Composite call
    assert dict(connector.calls) == {"composite": 2}
    assert emulator_calls(salesforce) == {"composite": 2}


def test_configured_fields_limit_the_select(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector(fields={"Lead": ["Email"]})
    _leads(connector, 1)
    (record,) = connector.changes("Lead", None)
    assert set(record.fields) == {
        "Id",
        "SystemModstamp",
        "LastModifiedById",
        "IsDeleted",
        "MasterRecordId",
        "Email",
    }


def test_owners_lists_users_by_email(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=5)
    connector = make_connector()
    owners = list(connector.owners())
    emails = {o.email for o in owners}
    assert salesforce.integration_username in emails
    assert len(owners) >= 6 and all(o.id.startswith("005") for o in owners)
    users = list(connector.changes("User", None))
    assert {u.id for u in users} == {o.id for o in owners}
    assert all("MasterRecordId" not in u.fields and u.merged_into is None for u in users)


def test_lost_query_locator_resumes_without_repeats(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=500)
    connector = make_connector(query_batch_size=200)
    stream = connector.changes("Lead", None)
    head = list(itertools.islice(stream, 200))
    # 2 h later: the token has expired *and* the query locator has been forgotten.
    salesforce.emulator.clock.advance(2 * 3600 + 1)
    rest = list(stream)
    ids = [r.id for r in head + rest]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert connector.calls["auth"] == 2  # one refresh after the 401
