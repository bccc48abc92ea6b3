"""write(): Composite + Collections, match_on pre-reads, external ids, Bulk API 2.0."""

from __future__ import annotations

from crm_bridge.connector import Delete, Upsert, WriteOp
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.emulator.schema import Field

from .conftest import MakeConnector, emulator_calls, reset_calls


def _lead(key: str, **fields: object) -> Upsert:
    return Upsert(key, {"LastName": key, "Company": "Acme", **fields})


def _live(connector: SalesforceConnector, ids: list[str]) -> dict[str, dict[str, object]]:
    return {r.id: dict(r.fields) for r in connector.fetch("Lead", ids) if not r.deleted}


def _emails(salesforce: RunningSalesforce, email: str) -> list[str]:
    store = salesforce.emulator.org.stores["Lead"]
    return [
        rid
        for rid, rec in store.records.items()
        if (rec.get("Email") or "").lower() == email.lower() and not rec.get("IsDeleted")
    ]


def test_mixed_batch_keeps_input_order_and_rejects_only_the_bad_record(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    existing = connector.write("Lead", [_lead("old1"), _lead("old2")])
    old1, old2 = (str(r.id) for r in existing)
    ops: list[WriteOp] = [
        _lead("new1", Status="Working - Contacted"),
        Upsert("upd", {"Title": "CTO"}, id=old1),
        _lead("bad", Status="Not A Status"),
        Delete("del", old2),
        _lead("new2", NumberOfEmployees="12", DoNotCall="true"),
    ]
    reset_calls(salesforce, connector)
    results = connector.write("Lead", ops)
    assert dict(connector.calls) == {"composite": 1}
    assert emulator_calls(salesforce) == {"composite": 1}
    assert [r.key for r in results] == ["new1", "upd", "bad", "del", "new2"]
    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "Status" in str(results[2].error) and not results[2].retryable
    assert results[0].created and not results[1].created and results[1].id == old1
    live = _live(connector, [str(results[0].id), old1, old2, str(results[4].id)])
    assert live[old1]["Title"] == "CTO" and old2 not in live
    assert live[str(results[4].id)]["NumberOfEmployees"] == 12
    assert live[str(results[4].id)]["DoNotCall"] is True


def test_match_on_email_updates_existing_and_never_duplicates(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    (first,) = connector.write("Lead", [_lead("ann", Email="Ann.Lee@Example.com")])
    reset_calls(salesforce, connector)
    results = connector.write(
        "Lead",
        [
            Upsert(
                "ann-again",
                {
                    "LastName": "Lee",
                    "Company": "Acme",
                    "Email": "ann.lee@example.COM",
                    "Title": "VP",
                },
                match_on="Email",
            ),
            Upsert("bo", {"LastName": "Bo", "Company": "X", "Email": "bo@x.io"}, match_on="Email"),
            Upsert(
                "bo2", {"LastName": "Bo2", "Company": "X", "Email": "BO@x.io"}, match_on="Email"
            ),
        ],
    )
    assert all(r.ok for r in results), results
    # pre-read + the writes + the deferred same-email update
    assert dict(connector.calls) == {"composite": 3}
    assert results[0].id == first.id and not results[0].created
    assert results[1].created and results[2].id == results[1].id and not results[2].created
    assert _emails(salesforce, "ann.lee@example.com") == [first.id]
    assert _emails(salesforce, "bo@x.io") == [results[1].id]
    assert _live(connector, [str(results[1].id)])[str(results[1].id)]["LastName"] == "Bo2"


def test_one_thousand_records_cost_one_composite_call(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    results = connector.write("Lead", [_lead(f"k{i}", Email=f"k{i}@x.io") for i in range(1000)])
    assert len(results) == 1000 and all(r.ok and r.created for r in results)
    assert [r.key for r in results] == [f"k{i}" for i in range(1000)]
    assert len({r.id for r in results}) == 1000
    assert emulator_calls(salesforce) == {"composite": 1}
    assert dict(connector.calls) == {"composite": 1}
    # and 1,000 updates by id: one more call
    updates = [Upsert(f"u{i}", {"Title": "T"}, id=str(r.id)) for i, r in enumerate(results)]
    assert all(r.ok for r in connector.write("Lead", updates))
    assert emulator_calls(salesforce) == {"composite": 2}


def test_bulk_above_threshold_maps_results_back_in_order(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector(bulk_threshold=50)
    assert connector.object_spec("Lead").max_batch == 50_000
    ops = [_lead(f"b{i}", Email=f"b{i}@x.io") for i in range(60)]
    ops[17] = _lead("b17", Status="Nope")
    ops[18] = _lead("b0", Email="b0@x.io")  # same row content as ops[0]: still mapped once each
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    results = connector.write("Lead", ops)
    assert [r.key for r in results] == [op.key for op in ops]
    assert [i for i, r in enumerate(results) if not r.ok] == [17]
    assert results[17].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[0].id != results[18].id and all(r.created for r in results if r.ok)
    # create job, upload, close, one poll, successfulResults, failedResults
    assert emulator_calls(salesforce) == {"bulk2": 6}
    assert dict(connector.calls) == {"bulk2": 6}
    updates = [
        Upsert(f"u{i}", {"Title": "Bulk"}, id=str(r.id)) for i, r in enumerate(results) if r.ok
    ]
    updated = connector.write("Lead", updates)
    assert all(r.ok and not r.created for r in updated)
    assert {f["Title"] for f in _live(connector, [str(r.id) for r in updated]).values()} == {"Bulk"}
    assert emulator_calls(salesforce)["bulk2"] == 6 + 5  # nothing failed: no failedResults call


def test_external_id_match_uses_collections_upsert(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    lead_type = salesforce.emulator.org.schema["Lead"]
    lead_type.add_field(Field("Ext_Id__c", "string", length=40, external_id=True, custom=True))
    connector = make_connector()
    first = connector.write(
        "Lead",
        [Upsert("e", {"LastName": "E", "Company": "C", "Ext_Id__c": "X-1"}, match_on="Ext_Id__c")],
    )
    second = connector.write(
        "Lead",
        [Upsert("e", {"LastName": "F", "Company": "C", "Ext_Id__c": "x-1"}, match_on="Ext_Id__c")],
    )
    assert first[0].ok and first[0].created
    assert second[0].ok and not second[0].created and second[0].id == first[0].id
    assert connector.calls["query"] == 0  # no pre-read for an external id


def test_local_rejections_cost_no_call(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    results = connector.write(
        "Lead",
        [
            Delete("hard", "00Q5g0000000001AAA", mode="hard"),
            _lead("num", NumberOfEmployees="many"),
        ],
    )
    assert [r.error_code for r in results] == [
        "HARD_DELETE_UNSUPPORTED",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
    ]
    assert not any(r.ok for r in results)
    assert emulator_calls(salesforce) == {} and not connector.calls


def test_batches_larger_than_max_batch_are_refused(make_connector: MakeConnector) -> None:
    connector = make_connector(bulk_threshold=0, write_batch=10)
    try:
        connector.write("Lead", [_lead(str(i)) for i in range(11)])
    except ValueError as exc:
        assert "max_batch 10" in str(exc)
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("an oversized batch was accepted")
