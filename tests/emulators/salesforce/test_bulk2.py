"""Bulk API 2.0 through simple-salesforce's bulk2 client (wait=0) and raw HTTP for the edges."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from simple_salesforce.exceptions import SalesforceOperationError

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

V = "/services/data/v59.0"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_insert_and_results(sf: Any) -> None:
    records = [
        {"LastName": f"B{i}", "Company": "Bulk", "Email": f"b{i}@x.example"} for i in range(5)
    ]
    records.append({"LastName": "", "Company": "NoName", "Email": "bad@x.example"})
    [result] = sf.bulk2.Lead.insert(records=records, wait=0)
    assert result["numberRecordsProcessed"] == 6
    assert result["numberRecordsFailed"] == 1
    ok = _rows(sf.bulk2.Lead.get_successful_records(result["job_id"]))
    assert [r["LastName"] for r in ok] == [f"B{i}" for i in range(5)]
    assert all(r["sf__Id"].startswith("00Q") and r["sf__Created"] == "true" for r in ok)
    failed = _rows(sf.bulk2.Lead.get_failed_records(result["job_id"]))
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 5


def test_update_upsert_delete(sf: Any) -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.Ext_Id__c",
            "Metadata": {"label": "Ext", "type": "Text", "length": 40, "externalId": True},
        },
    )
    [ins] = sf.bulk2.Lead.insert(
        records=[{"LastName": "A", "Company": "C", "Ext_Id__c": "x1"}], wait=0
    )
    lead_id = _rows(sf.bulk2.Lead.get_successful_records(ins["job_id"]))[0]["sf__Id"]
    sf.Lead.update(lead_id, {"Phone": "+1 555 0100"})
    [upd] = sf.bulk2.Lead.update(
        records=[{"Id": lead_id, "Title": "CEO", "Phone": "#N/A", "Email": ""}], wait=0
    )
    assert upd["numberRecordsFailed"] == 0
    after = sf.Lead.get(lead_id)
    assert after["Title"] == "CEO"
    assert after["Phone"] is None  # #N/A clears a field; an empty value leaves it alone
    [ups] = sf.bulk2.Lead.upsert(
        records=[
            {"Ext_Id__c": "x1", "Title": "CTO"},
            {"Ext_Id__c": "x2", "LastName": "New", "Company": "C"},
        ],
        external_id_field="Ext_Id__c",
        wait=0,
    )
    created = [r["sf__Created"] for r in _rows(sf.bulk2.Lead.get_successful_records(ups["job_id"]))]
    assert created == ["false", "true"]
    assert sf.Lead.get(lead_id)["Title"] == "CTO"
    [dele] = sf.bulk2.Lead.delete(records=[{"Id": lead_id}], wait=0)
    assert dele["numberRecordsProcessed"] == 1
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1


def test_unknown_column_fails_the_job(sf: Any) -> None:
    with pytest.raises(SalesforceOperationError) as exc:
        sf.bulk2.Lead.insert(records=[{"LastName": "A", "Nope__c": "x"}], wait=0)
    assert "Field name not found : Nope__c" in str(exc.value)


def test_query_and_query_all(sf: Any) -> None:
    ids = [
        r["id"]
        for r in sf.restful(
            "composite/sobjects",
            method="POST",
            json={
                "records": [
                    {"attributes": {"type": "Lead"}, "LastName": f"Q{i}", "Company": "C"}
                    for i in range(5)
                ]
            },
        )
    ]
    sf.Lead.delete(ids[0])
    pages = list(
        sf.bulk2.Lead.query(
            "SELECT Id, LastName, Owner.Username FROM Lead ORDER BY LastName", max_records=2, wait=0
        )
    )
    assert len(pages) == 2  # 4 rows in pages of 2
    rows = [r for p in pages for r in _rows(p)]
    assert [r["LastName"] for r in rows] == ["Q1", "Q2", "Q3", "Q4"]
    assert rows[0]["Owner.Username"] == "integration@crm-bridge.example"
    everything = [
        r for p in sf.bulk2.Lead.query_all("SELECT Id FROM Lead", wait=0) for r in _rows(p)
    ]
    assert len(everything) == 5


def test_query_results_headers_and_412(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    job = http.post(
        f"{V}/jobs/query",
        headers=headers,
        json={"operation": "query", "query": "SELECT Id FROM User"},
    ).json()
    assert job["state"] == "UploadComplete"
    early = http.get(f"{V}/jobs/query/{job['id']}/results", headers=headers)
    assert early.status_code == 412
    assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    assert http.get(f"{V}/jobs/query/{job['id']}", headers=headers).json()["state"] == "JobComplete"
    resp = http.get(f"{V}/jobs/query/{job['id']}/results", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["Sforce-Locator"] == "null"
    assert resp.headers["Sforce-NumberOfRecords"] == "1"
    assert resp.headers["content-type"].startswith("text/csv")
    bad = http.post(
        f"{V}/jobs/query",
        headers=headers,
        json={"operation": "query", "query": "SELECT Nope FROM Lead"},
    )
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_unprocessed_records_answer_in_the_spelling_simple_salesforce_sends(
    salesforce: RunningSalesforce, sf: Any, http: httpx.Client
) -> None:
    """``get_unprocessed_records`` (``.../unprocessedRecords``) gets what the documented
    ``.../unprocessedrecords`` answers: the uploaded rows of an aborted job, none once complete."""
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    job = http.post(
        f"{V}/jobs/ingest", headers=headers, json={"object": "Lead", "operation": "insert"}
    ).json()
    url = f"{V}/jobs/ingest/{job['id']}"
    http.put(
        f"{url}/batches",
        headers={**headers, "Content-Type": "text/csv"},
        content=b"LastName,Company\nA,C\nB,C\n",
    )
    http.patch(url, headers=headers, json={"state": "Aborted"})
    documented = http.get(f"{url}/unprocessedrecords", headers=headers)
    assert documented.status_code == 200
    pending = _rows(sf.bulk2.Lead.get_unprocessed_records(job["id"]))
    assert pending == _rows(documented.text)
    assert pending == [{"LastName": "A", "Company": "C"}, {"LastName": "B", "Company": "C"}]
    [done] = sf.bulk2.Lead.insert(records=[{"LastName": "D", "Company": "C"}], wait=0)
    every = sf.bulk2.Lead.get_all_ingest_records(done["job_id"])
    assert every["unprocessedRecords"] == [] and len(every["successfulRecords"]) == 1


def test_upload_answers_201_and_states_are_enforced(
    salesforce: RunningSalesforce, http: httpx.Client
) -> None:
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    job = http.post(
        f"{V}/jobs/ingest",
        headers=headers,
        json={
            "object": "Lead",
            "operation": "insert",
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    ).json()
    assert job["state"] == "Open"
    url = f"{V}/jobs/ingest/{job['id']}"
    put = http.put(
        f"{url}/batches",
        headers={**headers, "Content-Type": "text/csv"},
        content=b"LastName,Company\nA,C\n",
    )
    assert put.status_code == 201
    closed = http.patch(url, headers=headers, json={"state": "UploadComplete"}).json()
    assert closed["state"] == "UploadComplete"
    assert http.get(url, headers=headers).json()["state"] == "JobComplete"
    again = http.put(
        f"{url}/batches",
        headers={**headers, "Content-Type": "text/csv"},
        content=b"LastName,Company\nB,C\n",
    )
    assert again.status_code == 400
    aborted = http.post(
        f"{V}/jobs/ingest", headers=headers, json={"object": "Lead", "operation": "insert"}
    ).json()
    resp = http.patch(
        f"{V}/jobs/ingest/{aborted['id']}", headers=headers, json={"state": "Aborted"}
    )
    assert resp.json()["state"] == "Aborted"
    listed = http.get(f"{V}/jobs/ingest", headers=headers).json()
    assert {j["id"] for j in listed["records"]} == {job["id"], aborted["id"]}
    assert http.delete(url, headers=headers).status_code == 204
