"""Describe, single-record CRUD, upsert by external id, getUpdated/getDeleted, duplicate rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

PREFIXES = {
    "Lead": "00Q",
    "Contact": "003",
    "Account": "001",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
}


def _ext_field(sf: Any, name: str = "Ext_Id__c") -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": f"Lead.{name}",
            "Metadata": {"label": "Ext", "type": "Text", "length": 64, "externalId": True},
        },
    )


def test_global_describe_lists_every_object_with_key_prefixes(sf: Any) -> None:
    result = sf.describe()
    assert result["maxBatchSize"] == 200
    prefixes = {o["name"]: o["keyPrefix"] for o in result["sobjects"]}
    assert prefixes == PREFIXES


def test_object_describe_has_fields_and_picklists(sf: Any) -> None:
    d = sf.Lead.describe()
    fields = {f["name"]: f for f in d["fields"]}
    status = [p["value"] for p in fields["Status"]["picklistValues"]]
    assert {
        "Open - Not Contacted",
        "Working - Contacted",
        "Closed - Converted",
        "Closed - Not Converted",
        "Accepted",
        "Rejected",
        "Recycled",
    } <= set(status)
    assert fields["Status"]["restrictedPicklist"] is True
    assert fields["LastName"]["nillable"] is False
    assert fields["Email"]["type"] == "email"
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["Id"]["createable"] is False
    stages = [
        p["value"]
        for p in sf.Opportunity.describe()["fields"][
            [f["name"] for f in sf.Opportunity.describe()["fields"]].index("StageName")
        ]["picklistValues"]
    ]
    assert "Closed Won" in stages and "Closed Lost" in stages
    basic = sf.Contact.metadata()
    assert basic["objectDescribe"]["keyPrefix"] == "003"


@pytest.mark.parametrize(
    "obj,data",
    [
        ("Lead", {"LastName": "L", "Company": "C"}),
        ("Contact", {"LastName": "C"}),
        ("Account", {"Name": "A"}),
        ("Opportunity", {"Name": "O", "StageName": "Prospecting", "CloseDate": "2030-01-01"}),
        ("Task", {"Subject": "Call"}),
        ("Event", {"Subject": "Meet", "DurationInMinutes": 30}),
    ],
)
def test_create_returns_201_shape_and_prefixed_18_char_id(
    sf: Any, obj: str, data: dict[str, Any]
) -> None:
    result = getattr(sf, obj).create(data)
    assert set(result) == {"id", "success", "errors"}
    assert result["success"] is True and result["errors"] == []
    assert len(result["id"]) == 18 and result["id"].startswith(PREFIXES[obj])


def test_ocr_links_opportunity_and_contact(sf: Any) -> None:
    opp = sf.Opportunity.create(
        {"Name": "O", "StageName": "Closed Won", "CloseDate": "2030-01-01"}
    )["id"]
    contact = sf.Contact.create({"LastName": "C"})["id"]
    role = sf.OpportunityContactRole.create(
        {"OpportunityId": opp, "ContactId": contact, "Role": "Decision Maker", "IsPrimary": True}
    )
    assert role["id"].startswith("00K")
    rec = sf.query("SELECT Contact.LastName, Opportunity.IsWon FROM OpportunityContactRole")
    row = rec["records"][0]
    assert row["Contact"]["LastName"] == "C" and row["Opportunity"]["IsWon"] is True


def test_get_update_delete_roundtrip(sf: Any) -> None:
    lead_id = sf.Lead.create(
        {"LastName": "Doe", "FirstName": "Jane", "Company": "Acme", "Email": "jane@acme.example"}
    )["id"]
    rec = sf.Lead.get(lead_id)
    assert rec["Name"] == "Jane Doe"
    assert rec["Status"] == "Open - Not Contacted"  # the picklist default
    assert rec["IsDeleted"] is False
    assert sf.Lead.update(lead_id, {"Status": "Working - Contacted", "Title": None}) == 204
    assert sf.Lead.get(lead_id)["Status"] == "Working - Contacted"
    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Lead.get(lead_id)
    assert exc.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.update(lead_id, {"Title": "x"})


def test_get_with_fields_param(salesforce: RunningSalesforce, sf: Any, http: httpx.Client) -> None:
    lead_id = sf.Lead.create({"LastName": "F", "Company": "C"})["id"]
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    resp = http.get(
        f"/services/data/v59.0/sobjects/Lead/{lead_id}",
        params={"fields": "Id,Company"},
        headers=headers,
    )
    assert list(resp.json()) == ["attributes", "Id", "Company"]
    bad = http.get(
        f"/services/data/v59.0/sobjects/Lead/{lead_id}", params={"fields": "Nope"}, headers=headers
    )
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_missing_and_wrong_type_ids_are_404(sf: Any) -> None:
    contact = sf.Contact.create({"LastName": "C"})["id"]
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Lead.get(contact)
    assert exc.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get("00Q5g0000000ZZZZZZ")


@pytest.mark.parametrize(
    "data,code,fields",
    [
        ({"Company": "C"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ({"LastName": "L"}, "REQUIRED_FIELD_MISSING", ["Company"]),
        (
            {"LastName": "L", "Company": "C", "Status": "Bogus"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Status"],
        ),
        (
            {"LastName": "L", "Company": "C", "Email": "not-an-email"},
            "INVALID_EMAIL_ADDRESS",
            ["Email"],
        ),
        ({"LastName": "L", "Company": "C", "Bogus__c": 1}, "INVALID_FIELD", ["Bogus__c"]),
        (
            {"LastName": "L", "Company": "C", "Name": "x"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["Name"],
        ),
        (
            {"LastName": "L", "Company": "C", "OwnerId": "00Q5g0000000ZZZZZZ"},
            "INVALID_CROSS_REFERENCE_KEY",
            ["OwnerId"],
        ),
        ({"LastName": "x" * 81, "Company": "C"}, "STRING_TOO_LONG", ["LastName"]),
    ],
)
def test_create_errors(sf: Any, data: dict[str, Any], code: str, fields: list[str]) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.create(data)
    error = exc.value.content[0]
    assert error["errorCode"] == code
    assert error["fields"] == fields


def test_opportunity_required_fields(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.create({"Name": "O"})
    assert exc.value.content[0]["fields"] == ["StageName", "CloseDate"]
    assert exc.value.content[0]["message"] == (
        "Required fields are missing: [StageName, CloseDate]"
    )


def test_non_restricted_picklist_accepts_any_value(sf: Any) -> None:
    lead = sf.Lead.create({"LastName": "L", "Company": "C", "LeadSource": "Podcast"})["id"]
    assert sf.Lead.get(lead)["LeadSource"] == "Podcast"


def test_stage_derives_probability_and_closed_flags(sf: Any) -> None:
    opp = sf.Opportunity.create(
        {"Name": "O", "StageName": "Prospecting", "CloseDate": "2030-01-01"}
    )["id"]
    assert sf.Opportunity.get(opp)["IsClosed"] is False
    sf.Opportunity.update(opp, {"StageName": "Closed Lost"})
    rec = sf.Opportunity.get(opp)
    assert (rec["IsClosed"], rec["IsWon"], rec["Probability"]) == (True, False, 0.0)


def test_upsert_by_external_id(sf: Any) -> None:
    _ext_field(sf)
    assert sf.Lead.upsert("Ext_Id__c/abc-1", {"LastName": "U", "Company": "C"}) == 201
    assert sf.Lead.upsert("Ext_Id__c/ABC-1", {"Title": "CEO"}) == 200  # case-insensitive
    rec = sf.query("SELECT Title, Ext_Id__c FROM Lead")["records"]
    assert [(r["Title"], r["Ext_Id__c"]) for r in rec] == [("CEO", "abc-1")]
    resp = sf.Lead.upsert("Ext_Id__c/abc-1", {"Title": "CTO"}, raw_response=True)
    assert resp.json()["created"] is False


def test_upsert_multiple_matches_is_300(sf: Any) -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.Ext_Id__c",
            "Metadata": {"label": "Ext", "type": "Text", "length": 64, "externalId": True},
        },
    )
    sf.Lead.create({"LastName": "A", "Company": "C", "Ext_Id__c": "dup"})
    sf.Lead.create({"LastName": "B", "Company": "C", "Ext_Id__c": "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        sf.Lead.upsert("Ext_Id__c/dup", {"Title": "x"})
    assert exc.value.status == 300
    assert all(u.startswith("/services/data/v59.0/sobjects/Lead/00Q") for u in exc.value.content)


def test_upsert_unknown_field_is_404(sf: Any) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.upsert("Nope__c/1", {"LastName": "x"})


def test_get_by_custom_id_decodes_plus_and_slash(sf: Any) -> None:
    _ext_field(sf)
    sf.Lead.create({"LastName": "P", "Company": "C", "Ext_Id__c": "a b/c"})
    assert sf.Lead.get_by_custom_id("Ext_Id__c", "a b/c")["LastName"] == "P"


def test_updated_and_deleted_resources(sf: Any, control: Any) -> None:
    control("clock", {"freeze": "2024-05-01T10:00:30+00:00"})
    a = sf.Lead.create({"LastName": "A", "Company": "C"})["id"]
    b = sf.Lead.create({"LastName": "B", "Company": "C"})["id"]
    control("clock", {"advance": 120})
    sf.Lead.delete(b)
    control("clock", {"advance": 600})
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    updated = sf.Lead.updated(start, end)
    assert updated["ids"] == [a]
    assert updated["latestDateCovered"] == "2024-05-01T10:12:00.000+0000"
    deleted = sf.Lead.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [b]
    assert deleted["deletedRecords"][0]["deletedDate"] == "2024-05-01T10:02:30.000+0000"
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}


def test_updated_rejects_a_window_under_a_minute(sf: Any) -> None:
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.updated(now, now + timedelta(seconds=30))
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_duplicate_rules_block_and_allow_save_header(sf: Any, control: Any) -> None:
    sf.Lead.create({"LastName": "A", "Company": "C", "Email": "dup@x.example"})
    sf.Lead.create({"LastName": "B", "Company": "C", "Email": "DUP@x.example"})  # rules off
    control("duplicate-rules", {"enabled": True})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.create({"LastName": "C", "Company": "C", "Email": "dup@x.example"})
    error = exc.value.content[0]
    assert error["errorCode"] == "DUPLICATES_DETECTED"
    result = error["duplicateResult"]
    assert result["allowSave"] is False
    assert result["matchResults"][0]["size"] == 2
    assert result["matchResults"][0]["matchRecords"][0]["record"]["Id"].startswith("00Q")
    ok = sf.Lead.create(
        {"LastName": "C", "Company": "C", "Email": "dup@x.example"},
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert ok["success"] is True


def test_unknown_object_and_resource_are_404(
    salesforce: RunningSalesforce, http: httpx.Client
) -> None:
    headers = {"Authorization": f"Bearer {salesforce.emulator.issue_token()}"}
    for path in ("sobjects/Nope", "nothing/here"):
        resp = http.get(f"/services/data/v59.0/{path}", headers=headers)
        assert resp.status_code == 404
        assert resp.json() == [
            {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
        ]
    assert http.get("/services/data/v99.0/limits", headers=headers).status_code == 404


def test_malformed_json_body(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    resp = http.post(
        "/services/data/v59.0/sobjects/Lead",
        content=b"{nope",
        headers={
            "Authorization": f"Bearer {salesforce.emulator.issue_token()}",
            "Content-Type": "application/json",
        },
    )
    assert resp.status_code == 400
    assert resp.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_versions_list_needs_no_auth(http: httpx.Client) -> None:
    versions = http.get("/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
