"""query / queryAll / paging through the real client, and the SOQL subset's rules and errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

BATCH_200 = {"Sforce-Query-Options": "batchSize=200"}


def _leads(sf: Any, n: int, **extra: Any) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 200):
        chunk = [
            {"attributes": {"type": "Lead"}, "LastName": f"L{i:05d}", "Company": "Co", **extra}
            for i in range(start, min(n, start + 200))
        ]
        result = sf.restful(
            "composite/sobjects", method="POST", json={"allOrNone": True, "records": chunk}
        )
        ids.extend(r["id"] for r in result)
    return ids


@pytest.mark.parametrize("n,pages", [(0, 1), (1, 1), (200, 1), (201, 2), (400, 2), (401, 3)])
def test_paging_boundaries(sf: Any, n: int, pages: int) -> None:
    ids = _leads(sf, n)
    first = sf.query("SELECT Id FROM Lead ORDER BY LastName", headers=BATCH_200)
    assert first["totalSize"] == n
    assert first["done"] is (pages == 1)
    assert len(first["records"]) == min(n, 200)
    seen, page = [r["Id"] for r in first["records"]], first
    count = 1
    while not page["done"]:
        url = page["nextRecordsUrl"]
        assert url.startswith("/services/data/v59.0/query/01g"), url
        page = sf.query_more(url, identifier_is_url=True)
        seen.extend(r["Id"] for r in page["records"])
        count += 1
    assert count == pages
    assert "nextRecordsUrl" not in page
    assert seen == ids


def test_default_batch_is_2000_and_query_all_iter_follows(sf: Any) -> None:
    ids = _leads(sf, 2001)
    first = sf.query("SELECT Id FROM Lead")
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].endswith("-2000")
    assert [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead")] == ids


def test_batch_size_is_clamped_to_200(sf: Any) -> None:
    _leads(sf, 250)
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(page["records"]) == 200


def test_query_hides_deleted_query_all_shows_them(sf: Any) -> None:
    keep, gone = _leads(sf, 2)
    sf.Lead.delete(gone)
    live = sf.query("SELECT Id, IsDeleted FROM Lead")
    assert [r["Id"] for r in live["records"]] == [keep]
    every = sf.query_all("SELECT Id, IsDeleted FROM Lead ORDER BY LastName", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(keep, False), (gone, True)]


def test_record_shape_and_datetime_format(sf: Any) -> None:
    lead_id = sf.Lead.create({"LastName": "Shape", "Company": "Co", "Email": "s@x.example"})["id"]
    rec = sf.query("SELECT Id, Email, CreatedDate, Owner.Username FROM Lead")["records"][0]
    assert rec["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}",
    }
    assert list(rec) == ["attributes", "Id", "Email", "CreatedDate", "Owner"]
    assert rec["CreatedDate"].endswith(".000+0000") or rec["CreatedDate"][-9] == "."
    assert len(rec["CreatedDate"]) == len("2024-01-01T00:00:00.000+0000")
    assert rec["Owner"]["attributes"]["type"] == "User"
    assert rec["Owner"]["Username"] == "integration@crm-bridge.example"


def test_where_operators(sf: Any) -> None:
    rows = [
        ("Alpha", "Acme", "a@acme.example", "Web", 10),
        ("Beta", "Acme", None, "Other", 50),
        ("Gamma", "Blue", "G@BLUE.example", "Web", None),
        ("Delta", "Blue", "d@blue.example", None, 500),
    ]
    for name, company, email, source, employees in rows:
        data: dict[str, Any] = {"LastName": name, "Company": company}
        if email:
            data["Email"] = email
        if source:
            data["LeadSource"] = source
        if employees is not None:
            data["NumberOfEmployees"] = employees
        sf.Lead.create(data)

    def names(where: str) -> list[str]:
        q = f"SELECT LastName FROM Lead WHERE {where} ORDER BY LastName"
        return [r["LastName"] for r in sf.query(q)["records"]]

    assert names("Company = 'acme'") == ["Alpha", "Beta"]  # case-insensitive
    assert names("Email = 'g@blue.example'") == ["Gamma"]
    assert names("Email = null") == ["Beta"]
    assert names("Email != null") == ["Alpha", "Delta", "Gamma"]
    assert names("LeadSource != 'Web'") == ["Beta", "Delta"]  # != keeps nulls
    assert names("NumberOfEmployees >= 50") == ["Beta", "Delta"]
    assert names("NumberOfEmployees < 50") == ["Alpha"]
    assert names("LastName IN ('alpha', 'Delta')") == ["Alpha", "Delta"]
    assert names("LastName NOT IN ('Alpha')") == ["Beta", "Delta", "Gamma"]
    assert names("LastName LIKE '%a'") == ["Alpha", "Beta", "Delta", "Gamma"]
    assert names("Email LIKE '%@blue%'") == ["Delta", "Gamma"]
    assert names("(Company = 'Acme' OR LeadSource = 'Web') AND NOT LastName = 'Alpha'") == [
        "Beta",
        "Gamma",
    ]
    assert names("HasOptedOutOfEmail = false AND IsConverted = false") == [
        "Alpha",
        "Beta",
        "Delta",
        "Gamma",
    ]


def test_datetime_and_date_literals(sf: Any, control: Any) -> None:
    control("clock", {"freeze": "2024-03-01T12:00:00+00:00"})
    old = sf.Lead.create({"LastName": "Old", "Company": "C"})["id"]
    control("clock", {"advance": 86400})
    new = sf.Lead.create({"LastName": "New", "Company": "C"})["id"]

    def ids(where: str) -> list[str]:
        return [r["Id"] for r in sf.query(f"SELECT Id FROM Lead WHERE {where}")["records"]]

    assert ids("SystemModstamp > 2024-03-01T12:00:00Z") == [new]
    assert ids("SystemModstamp >= 2024-03-01T12:00:00Z") == [old, new]
    assert ids("SystemModstamp > 2024-03-01T13:00:00+02:00") == [old, new]
    assert ids("CreatedDate < 2024-03-02T00:00:00.000+0000") == [old]
    assert ids("CreatedDate = TODAY") == [new]
    assert ids("CreatedDate = YESTERDAY") == [old]
    assert ids("CreatedDate = LAST_N_DAYS:2") == [old, new]
    sf.Opportunity.create({"Name": "O", "StageName": "Prospecting", "CloseDate": "2024-04-01"})
    assert sf.query("SELECT Id FROM Opportunity WHERE CloseDate > 2024-03-31")["totalSize"] == 1
    assert sf.query("SELECT Id FROM Opportunity WHERE CloseDate > 2024-04-01")["totalSize"] == 0


def test_order_by_several_fields_nulls_and_limit_offset(sf: Any) -> None:
    for name, company in [("b", "X"), ("a", "Y"), ("c", "X"), ("d", "Y")]:
        sf.Lead.create({"LastName": name, "Company": company})
    sf.Lead.create({"LastName": "e", "Company": "Z", "Title": "T"})
    q = "SELECT LastName FROM Lead ORDER BY Company DESC, LastName ASC"
    assert [r["LastName"] for r in sf.query(q)["records"]] == ["e", "a", "d", "b", "c"]
    q = "SELECT LastName FROM Lead ORDER BY Title NULLS LAST, LastName LIMIT 2"
    assert [r["LastName"] for r in sf.query(q)["records"]] == ["e", "a"]
    q = "SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1"
    assert [r["LastName"] for r in sf.query(q)["records"]] == ["b", "c"]


def test_count(sf: Any) -> None:
    _leads(sf, 3)
    result = sf.query("SELECT COUNT() FROM Lead")
    assert result == {"totalSize": 3, "done": True, "records": []}


def test_fifteen_char_id_matches(sf: Any) -> None:
    lead_id = sf.Lead.create({"LastName": "Short", "Company": "C"})["id"]
    res = sf.query(f"SELECT Id FROM Lead WHERE Id = '{lead_id[:15]}'")
    assert res["records"][0]["Id"] == lead_id


@pytest.mark.parametrize(
    "soql,code,fragment",
    [
        ("SELECT Id FRM Lead", "MALFORMED_QUERY", "unexpected token: FRM"),
        ("SELECT Id, Bogus FROM Lead", "INVALID_FIELD", "No such column 'Bogus' on entity 'Lead'"),
        ("SELECT Id FROM Leed", "INVALID_TYPE", "sObject type 'Leed' is not supported"),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        ("SELECT Id FROM Lead WHERE Company = 5", "INVALID_FIELD", "must be of type string"),
        (
            "SELECT Id FROM Lead WHERE Company = 'a' AND LastName = 'b' OR Title = 'c'",
            "MALFORMED_QUERY",
            "unexpected token: OR",
        ),
        ("SELECT Id FROM Lead WHERE Owner.Bogus = 'x'", "INVALID_FIELD", "No such column 'Bogus'"),
        ("SELECT Id FROM Lead LIMIT", "MALFORMED_QUERY", "unexpected token"),
    ],
)
def test_query_errors(sf: Any, soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    assert exc.value.status == 400
    error = exc.value.content[0]
    assert error["errorCode"] == code
    assert fragment in error["message"]


def test_invalid_field_message_points_at_the_column(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, Bogus FROM Lead")
    assert "ERROR at Row:1:Column:12" in exc.value.content[0]["message"]


def test_unknown_locator_is_invalid_query_locator(
    http: httpx.Client, salesforce: RunningSalesforce
) -> None:
    token = salesforce.emulator.issue_token()
    resp = http.get(
        "/services/data/v59.0/query/01gNOPE00000000-200",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 400
    assert resp.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_trailing_slash_and_no_slash_are_the_same(
    http: httpx.Client, salesforce: RunningSalesforce
) -> None:
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    for path in ("/services/data/v59.0/query", "/services/data/v59.0/query/"):
        resp = http.get(path, params={"q": "SELECT Id FROM User"}, headers=headers)
        assert resp.status_code == 200
        assert resp.json()["totalSize"] == 1


def test_cursor_expires_after_idle_time(sf: Any, control: Any) -> None:
    _leads(sf, 201)
    first = sf.query("SELECT Id FROM Lead", headers=BATCH_200)
    control("clock", {"advance": 901})
    sf2 = sf  # token lives 7200 s, so only the cursor is stale
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf2.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert exc.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_pages_through_deleted_rows(sf: Any) -> None:
    ids = _leads(sf, 250)
    sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids[:150])})
    first = sf.query_all_iter("SELECT Id FROM Lead", include_deleted=True, headers=BATCH_200)
    assert len(list(first)) == 250
    page = sf.query("SELECT Id FROM Lead", include_deleted=True, headers=BATCH_200)
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/queryAll/")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 100


def test_null_and_polymorphic_relationships(sf: Any) -> None:
    lead = sf.Lead.create({"FirstName": "Poly", "LastName": "Who", "Company": "C"})["id"]
    acct = sf.Account.create({"Name": "What Inc"})["id"]
    sf.Task.create({"Subject": "Call", "WhoId": lead, "WhatId": acct})
    sf.Contact.create({"LastName": "Orphan"})
    task = sf.query("SELECT Who.Name, What.Name, Status FROM Task")["records"][0]
    assert task["Who"]["attributes"]["type"] == "Lead"
    assert task["Who"]["Name"] == "Poly Who"
    assert task["What"]["attributes"]["type"] == "Account"
    assert task["What"]["Name"] == "What Inc"
    assert task["Status"] == "Not Started"
    contact = sf.query("SELECT Account.Name FROM Contact")["records"][0]
    assert contact["Account"] is None


def test_incremental_queries_see_each_record_once_at_its_latest_stamp(
    sf: Any, control: Any
) -> None:
    control("clock", {"freeze": "2024-06-01T00:00:00+00:00"})
    a = sf.Lead.create({"LastName": "A", "Company": "C"})["id"]
    b = sf.Lead.create({"LastName": "B", "Company": "C"})["id"]
    control("clock", {"advance": 60})
    sf.Lead.update(a, {"Title": "1"})
    control("clock", {"advance": 60})
    sf.Lead.update(a, {"Title": "2"})
    rolled_back = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "id": b, "Title": "x"},
                {"attributes": {"type": "Lead"}, "id": b, "Status": "Nope"},
            ],
        },
    )
    assert not rolled_back[0]["success"]
    q = "SELECT Id, Title FROM Lead WHERE SystemModstamp > 2024-06-01T00:00:30Z"
    assert [(r["Id"], r["Title"]) for r in sf.query(q)["records"]] == [(a, "2")]
    control("clock", {"advance": -90})  # the clock moves back: the log must still be right
    c = sf.Lead.create({"LastName": "C", "Company": "C"})["id"]
    q = (
        "SELECT Id FROM Lead WHERE SystemModstamp >= 2024-06-01T00:00:30Z "
        "ORDER BY SystemModstamp, Id"
    )
    assert [r["Id"] for r in sf.query(q)["records"]] == [c, a]
