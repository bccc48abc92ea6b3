"""Composite: references between subrequests, allOrNone, PROCESSING_HALTED, one API call."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

V = "/services/data/v59.0"


def _graph(all_or_none: bool, contact_body: dict[str, Any]) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Composite Co"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "contact",
                "body": {**contact_body, "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": f"{V}/sobjects/Account/@{{acct.id}}?fields=Name",
                "referenceId": "read",
            },
            {"method": "GET", "url": f"{V}/query/?q=SELECT+Id+FROM+Contact", "referenceId": "q"},
        ],
    }


def test_references_resolve_and_count_once(salesforce: Any, sf: Any) -> None:
    before = salesforce.emulator.org.api_used
    result = sf.restful("composite", method="POST", json=_graph(True, {"LastName": "Ref"}))
    responses = result["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [201, 201, 200, 200]
    assert [r["referenceId"] for r in responses] == ["acct", "contact", "read", "q"]
    acct_id = responses[0]["body"]["id"]
    assert responses[0]["httpHeaders"]["Location"] == f"{V}/sobjects/Account/{acct_id}"
    assert responses[2]["body"]["Name"] == "Composite Co"
    assert responses[3]["body"]["totalSize"] == 1
    assert salesforce.emulator.org.api_used == before + 1
    contact = sf.Contact.get(responses[1]["body"]["id"])
    assert contact["AccountId"] == acct_id
    assert salesforce.emulator.calls.snapshot()["composite"] == 1


def test_all_or_none_rolls_everything_back(sf: Any) -> None:
    result = sf.restful("composite", method="POST", json=_graph(True, {"FirstName": "NoLast"}))
    responses = result["compositeResponse"]
    assert responses[1]["httpStatusCode"] == 400
    assert responses[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    for i in (0, 2, 3):
        assert responses[i]["httpStatusCode"] == 400
        assert responses[i]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_without_all_or_none_dependents_halt_and_others_run(sf: Any) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "bad", "body": {}},
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "dep",
                "body": {"LastName": "D", "AccountId": "@{bad.id}"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "free",
                "body": {"LastName": "F", "Company": "C"},
            },
        ],
    }
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert responses[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert responses[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "bad.id" in responses[1]["body"][0]["message"]
    assert responses[2]["httpStatusCode"] == 201
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1


def test_more_than_25_subrequests_is_rejected(sf: Any) -> None:
    subs = [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite", method="POST", json={"compositeRequest": subs})
    assert "25" in exc.value.content[0]["message"]
    ok = sf.restful("composite", method="POST", json={"compositeRequest": subs[:25]})
    assert len(ok["compositeResponse"]) == 25


def test_collections_inside_composite(sf: Any) -> None:
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/composite/sobjects",
                "referenceId": "batch",
                "body": {
                    "records": [{"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C"}]
                },
            }
        ]
    }
    responses = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert responses[0]["httpStatusCode"] == 200
    assert responses[0]["body"][0]["success"] is True
