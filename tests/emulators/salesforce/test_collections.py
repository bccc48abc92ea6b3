"""sObject Collections: 200-record batches, allOrNone, per-record statusCode errors, upsert."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _lead(i: int, **extra: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "Co", **extra}


def _create(sf: Any, records: list[dict[str, Any]], all_or_none: bool = False) -> Any:
    return sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": all_or_none, "records": records}
    )


def test_create_200_records_is_one_call_and_ordered(salesforce: Any, sf: Any) -> None:
    results = _create(sf, [_lead(i) for i in range(200)])
    assert len(results) == 200
    assert all(r["success"] and r["errors"] == [] for r in results)
    names = {
        r["Id"]: r["LastName"] for r in sf.query_all("SELECT Id, LastName FROM Lead")["records"]
    }
    assert [names[r["id"]] for r in results] == [f"L{i}" for i in range(200)]
    assert salesforce.emulator.calls.snapshot()["collections"] == 1


def test_201_records_is_exceeded_id_limit(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        _create(sf, [_lead(i) for i in range(201)])
    assert exc.value.content == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_partial_success_without_all_or_none(sf: Any) -> None:
    results = _create(sf, [_lead(0), {"attributes": {"type": "Lead"}, "Company": "x"}, _lead(2)])
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1] == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 2


def test_all_or_none_rolls_back_siblings(sf: Any) -> None:
    results = _create(sf, [_lead(0), _lead(1, Status="Nope"), _lead(2)], all_or_none=True)
    assert [r["success"] for r in results] == [False, False, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    for i in (0, 2):
        assert results[i]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert results[i]["id"] is None
    assert sf.query_all("SELECT COUNT() FROM Lead", include_deleted=True)["totalSize"] == 0


def test_mixed_types_and_missing_type(sf: Any) -> None:
    results = _create(
        sf,
        [
            {"attributes": {"type": "Account"}, "Name": "A"},
            {"attributes": {"type": "Contact"}, "LastName": "C"},
            {"LastName": "no type"},
        ],
    )
    assert results[0]["id"].startswith("001") and results[1]["id"].startswith("003")
    assert results[2]["errors"][0]["statusCode"] == "INVALID_TYPE"


def test_update_delete_and_retrieve(sf: Any) -> None:
    ids = [r["id"] for r in _create(sf, [_lead(i) for i in range(3)])]
    updates = [
        {"attributes": {"type": "Lead"}, "id": i, "Title": f"T{n}"} for n, i in enumerate(ids)
    ]
    updates.append({"attributes": {"type": "Lead"}, "id": "00Q5g0000000ZZZZZZ", "Title": "x"})
    results = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": updates}
    )
    assert [r["success"] for r in results] == [True, True, True, False]
    assert results[3]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    got = sf.restful(
        "composite/sobjects/Lead",
        params={"ids": ",".join([*ids, "00Q5g0000000ZZZZZZ"]), "fields": "Id,Title"},
    )
    assert [g["Title"] for g in got[:3]] == ["T0", "T1", "T2"]
    assert got[3] is None
    deleted = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": ",".join(ids[:2]), "allOrNone": "false"},
    )
    assert [(d["id"], d["success"]) for d in deleted] == [(ids[0], True), (ids[1], True)]
    again = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids[0]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1


def test_retrieve_by_post(sf: Any) -> None:
    ids = [r["id"] for r in _create(sf, [_lead(i) for i in range(2)])]
    got = sf.restful(
        "composite/sobjects/Lead", method="POST", json={"ids": ids, "fields": ["LastName"]}
    )
    assert [g["LastName"] for g in got] == ["L0", "L1"]


def test_upsert_collection_by_external_id(sf: Any) -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.Ext_Id__c",
            "Metadata": {"label": "Ext", "type": "Text", "length": 40, "externalId": True},
        },
    )
    first = sf.restful(
        "composite/sobjects/Lead/Ext_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": [_lead(1, Ext_Id__c="e1"), _lead(2, Ext_Id__c="e2")]},
    )
    assert [(r["created"], r["success"]) for r in first] == [(True, True), (True, True)]
    second = sf.restful(
        "composite/sobjects/Lead/Ext_Id__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "Ext_Id__c": "e1", "Title": "Boss"},
                {"attributes": {"type": "Lead"}, "Title": "no key"},
            ],
        },
    )
    assert second[0] == {"id": first[0]["id"], "success": True, "errors": [], "created": False}
    assert second[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Lead.get(first[0]["id"])["Title"] == "Boss"


def test_upsert_collection_needs_an_external_id_field(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects/Lead/Email", method="PATCH", json={"records": [_lead(1)]})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
