"""Lead conversion (convertLead): new or merged records, a read-only lead, one change-stream stamp."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.connectors.salesforce.emulator.dml import Writer
from crm_bridge.connectors.salesforce.emulator.errors import RecordError

V = "/services/data/v59.0"
CODE = "CANNOT_UPDATE_CONVERTED_LEAD"
MESSAGE = "cannot reference converted lead"
CONVERTER = "converter@crm-bridge.example"
LEAD_FIELDS = (
    "Id, IsConverted, ConvertedContactId, ConvertedAccountId, ConvertedOpportunityId, "
    "ConvertedDate, Status, LastModifiedById, SystemModstamp"
)


def _lead(sf: Any, **extra: Any) -> str:
    body = {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Engines Ltd", **extra}
    return str(sf.Lead.create(body)["id"])


def _one(sf: Any, soql: str) -> dict[str, Any]:
    [record] = sf.query_all(soql)["records"]
    return dict(record)


def _converter(salesforce: RunningSalesforce) -> str:
    org = salesforce.emulator.org
    with org.lock:
        return org.add_user(CONVERTER, "Con", "Verter")


def test_convert_creates_account_contact_opportunity_and_role(
    salesforce: RunningSalesforce, sf: Any, control: Any
) -> None:
    control("clock", {"freeze": "2024-05-10T12:00:00+00:00"})
    converter = _converter(salesforce)
    lead_id = _lead(
        sf,
        Email="ada@engines.example",
        Title="CTO",
        Phone="+1 555 0100",
        LeadSource="Web",
        Website="https://engines.example",
        Industry="Technology",
        NumberOfEmployees=42,
        Description="met at a fair",
        HasOptedOutOfEmail=True,
    )
    owner = sf.Lead.get(lead_id)["OwnerId"]
    result = control("convert-lead", {"leadId": lead_id, "asUser": CONVERTER})
    assert set(result) == {
        "accountId",
        "contactId",
        "opportunityId",
        "leadId",
        "success",
        "errors",
    }
    assert result["leadId"] == lead_id and result["success"] is True and result["errors"] == []
    lead = _one(sf, f"SELECT {LEAD_FIELDS} FROM Lead WHERE Id = '{lead_id}'")
    assert lead["IsConverted"] is True
    assert lead["ConvertedContactId"] == result["contactId"]
    assert lead["ConvertedAccountId"] == result["accountId"]
    assert lead["ConvertedOpportunityId"] == result["opportunityId"]
    assert lead["ConvertedDate"] == "2024-05-10"
    assert lead["Status"] == "Closed - Converted"
    assert lead["LastModifiedById"] == converter
    contact = sf.Contact.get(result["contactId"])
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == (
        "Ada",
        "Lovelace",
        "ada@engines.example",
    )
    assert (contact["Title"], contact["Phone"], contact["LeadSource"]) == (
        "CTO",
        "+1 555 0100",
        "Web",
    )
    assert contact["Description"] == "met at a fair" and contact["HasOptedOutOfEmail"] is True
    assert contact["AccountId"] == result["accountId"] and contact["OwnerId"] == owner
    account = sf.Account.get(result["accountId"])
    assert (account["Name"], account["Website"], account["Industry"]) == (
        "Engines Ltd",
        "https://engines.example",
        "Technology",
    )
    assert account["NumberOfEmployees"] == 42 and account["OwnerId"] == owner
    opp = sf.Opportunity.get(result["opportunityId"])
    assert (opp["Name"], opp["AccountId"], opp["ContactId"]) == (
        "Engines Ltd",
        result["accountId"],
        result["contactId"],
    )
    assert (opp["StageName"], opp["CloseDate"], opp["IsClosed"]) == (
        "Prospecting",
        "2024-06-30",
        False,
    )
    assert opp["LeadSource"] == "Web" and opp["OwnerId"] == owner
    roles = sf.query_all("SELECT ContactId, OpportunityId, IsPrimary FROM OpportunityContactRole")[
        "records"
    ]
    assert [(r["ContactId"], r["OpportunityId"], r["IsPrimary"]) for r in roles] == [
        (result["contactId"], result["opportunityId"], True)
    ]


def test_opportunity_name_and_do_not_create_opportunity(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    named = salesforce.emulator.convert_lead(_lead(sf), opportunity_name="Engines - Q2 deal")
    assert sf.Opportunity.get(named["opportunityId"])["Name"] == "Engines - Q2 deal"
    lead_id = _lead(sf, LastName="NoOpp")
    result = salesforce.emulator.convert_lead(lead_id, do_not_create_opportunity=True)
    assert result["opportunityId"] is None
    lead = _one(sf, f"SELECT {LEAD_FIELDS} FROM Lead WHERE Id = '{lead_id}'")
    assert lead["IsConverted"] is True and lead["ConvertedOpportunityId"] is None
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 1
    assert sf.query("SELECT COUNT() FROM OpportunityContactRole")["totalSize"] == 1


def test_rest_update_and_delete_of_a_converted_lead_fail(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    lead_id = _lead(sf)
    salesforce.emulator.convert_lead(lead_id)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lead_id, {"Title": "CEO"})
    assert exc.value.status == 400
    assert exc.value.content == [{"message": MESSAGE, "errorCode": CODE, "fields": []}]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.delete(lead_id)
    assert exc.value.content[0]["errorCode"] == CODE
    lead = sf.Lead.get(lead_id)
    assert lead["Title"] is None and lead["IsDeleted"] is False
    with pytest.raises(RecordError) as merge_err:
        salesforce.emulator.merge("Lead", _lead(sf, LastName="Master"), [lead_id])
    assert merge_err.value.status_code == CODE


def test_collections_patch_answers_a_per_record_error(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    converted, open_lead = _lead(sf), _lead(sf, LastName="Open")
    salesforce.emulator.convert_lead(converted)
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "id": converted, "Title": "CEO"},
                {"attributes": {"type": "Lead"}, "id": open_lead, "Title": "CEO"},
            ],
        },
    )
    assert results == [
        {
            "id": converted,
            "success": False,
            "errors": [{"statusCode": CODE, "message": MESSAGE, "fields": []}],
        },
        {"id": open_lead, "success": True, "errors": []},
    ]
    assert sf.Lead.get(converted)["Title"] is None
    assert sf.Lead.get(open_lead)["Title"] == "CEO"


def test_composite_subrequest_fails_for_the_converted_lead(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    lead_id = _lead(sf)
    salesforce.emulator.convert_lead(lead_id)
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": False,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"{V}/sobjects/Lead/{lead_id}",
                    "referenceId": "upd",
                    "body": {"Title": "CEO"},
                }
            ],
        },
    )
    [sub] = answer["compositeResponse"]
    assert sub["httpStatusCode"] == 400
    assert sub["body"][0]["errorCode"] == CODE and sub["body"][0]["message"] == MESSAGE


def test_bulk2_update_and_upsert_rows_fail(salesforce: RunningSalesforce, sf: Any) -> None:
    converted, open_lead = _lead(sf), _lead(sf, LastName="Open")
    salesforce.emulator.convert_lead(converted)
    rows = [{"Id": converted, "Title": "CEO"}, {"Id": open_lead, "Title": "CEO"}]
    [upd] = sf.bulk2.Lead.update(records=rows, wait=0)
    [ups] = sf.bulk2.Lead.upsert(records=rows, external_id_field="Id", wait=0)
    for job in (upd, ups):
        assert job["numberRecordsFailed"] == 1
        failed = list(csv.DictReader(io.StringIO(sf.bulk2.Lead.get_failed_records(job["job_id"]))))
        assert [r["Id"] for r in failed] == [converted]
        assert failed[0]["sf__Error"] == f"{CODE}:{MESSAGE}: --"
    assert sf.Lead.get(converted)["Title"] is None
    assert sf.Lead.get(open_lead)["Title"] == "CEO"


def test_merge_into_existing_contact_fills_only_empty_fields(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    account_id = sf.Account.create({"Name": "Acme", "Website": "https://acme.example"})["id"]
    contact_id = sf.Contact.create(
        {"AccountId": account_id, "LastName": "Existing", "Email": "keep@acme.example"}
    )["id"]
    contact_id_2 = sf.Contact.create(
        {"AccountId": account_id, "LastName": "Sourced", "LeadSource": "Web"}
    )["id"]
    lead_id = _lead(
        sf,
        Email="lead@acme.example",
        Title="CTO",
        LeadSource="Phone Inquiry",
        Industry="Banking",
        Website="https://other.example",
        HasOptedOutOfEmail=True,
    )
    result = salesforce.emulator.convert_lead(lead_id, account_id=account_id, contact_id=contact_id)
    assert (result["accountId"], result["contactId"]) == (account_id, contact_id)
    contact = sf.Contact.get(contact_id)
    assert (contact["LastName"], contact["Email"]) == ("Existing", "keep@acme.example")
    assert (contact["FirstName"], contact["Title"], contact["LeadSource"]) == (
        "Ada",
        "CTO",
        "Phone Inquiry",
    )
    assert contact["HasOptedOutOfEmail"] is False  # Email Opt Out only goes to new contacts
    account = sf.Account.get(account_id)
    assert (account["Name"], account["Website"], account["Industry"]) == (
        "Acme",
        "https://acme.example",
        "Banking",
    )
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1
    kept = salesforce.emulator.convert_lead(
        _lead(sf, LeadSource="Partner Referral"), account_id=account_id, contact_id=contact_id_2
    )
    assert sf.Contact.get(kept["contactId"])["LeadSource"] == "Web"
    overwritten = salesforce.emulator.convert_lead(
        _lead(sf, LeadSource="Partner Referral"),
        account_id=account_id,
        contact_id=contact_id_2,
        overwrite_lead_source=True,
    )
    assert sf.Contact.get(overwritten["contactId"])["LeadSource"] == "Partner Referral"


def test_change_stream_shows_every_touched_record_at_one_stamp(
    salesforce: RunningSalesforce, sf: Any, control: Any
) -> None:
    converter = _converter(salesforce)
    lead_id = _lead(sf, Email="ada@engines.example")
    noted = sf.Lead.get(lead_id)["SystemModstamp"]
    control("clock", {"advance": 5})
    result = salesforce.emulator.convert_lead(lead_id, as_user=CONVERTER)
    soql = "SELECT Id, SystemModstamp, LastModifiedById FROM {} WHERE SystemModstamp > {} " + (
        "ORDER BY SystemModstamp, Id"
    )
    changed = {
        name: sf.query_all(soql.format(name, noted), include_deleted=True)["records"]
        for name in ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole")
    }
    assert [r["Id"] for r in changed["Lead"]] == [lead_id]
    assert [r["Id"] for r in changed["Contact"]] == [result["contactId"]]
    assert [r["Id"] for r in changed["Opportunity"]] == [result["opportunityId"]]
    touched = [r for records in changed.values() for r in records]
    assert len(touched) == 5
    assert {r["SystemModstamp"] for r in touched} == {changed["Lead"][0]["SystemModstamp"]}
    assert {r["LastModifiedById"] for r in touched} == {converter}
    lead = _one(sf, f"SELECT {LEAD_FIELDS} FROM Lead WHERE Id = '{lead_id}'")
    assert lead["SystemModstamp"] > noted and lead["ConvertedContactId"] == result["contactId"]


def test_describe_lists_conversion_fields_as_read_only(sf: Any) -> None:
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    for name in (
        "IsConverted",
        "ConvertedDate",
        "ConvertedContactId",
        "ConvertedAccountId",
        "ConvertedOpportunityId",
    ):
        assert fields[name]["createable"] is False and fields[name]["updateable"] is False
    assert fields["ConvertedContactId"]["referenceTo"] == ["Contact"]
    assert fields["ConvertedDate"]["type"] == "date"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(_lead(sf), {"IsConverted": True})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_bad_requests_answer_400_and_change_nothing(
    salesforce: RunningSalesforce, sf: Any, http: httpx.Client, control: Any
) -> None:
    account_id = sf.Account.create({"Name": "Acme"})["id"]
    other_account = sf.Account.create({"Name": "Other"})["id"]
    contact_id = sf.Contact.create({"AccountId": other_account, "LastName": "Elsewhere"})["id"]
    lead_id = _lead(sf, Industry="Banking")
    stamp = sf.Account.get(account_id)["SystemModstamp"]
    control("clock", {"advance": 5})

    def convert(body: dict[str, Any]) -> tuple[int, Any]:
        resp = http.post("/__emulator__/convert-lead", json=body)
        return resp.status_code, resp.json()

    status, body = convert({"leadId": lead_id, "accountId": account_id, "contactId": contact_id})
    assert (status, body[0]["errorCode"], body[0]["fields"]) == (
        400,
        "INVALID_CROSS_REFERENCE_KEY",
        ["contactId"],
    )
    account = sf.Account.get(account_id)
    assert account["SystemModstamp"] == stamp and account["Industry"] is None  # rolled back
    status, body = convert({"leadId": lead_id, "contactId": contact_id})
    assert (status, body[0]["errorCode"]) == (400, "REQUIRED_FIELD_MISSING")
    status, body = convert({"leadId": lead_id, "convertedStatus": "Working - Contacted"})
    assert (status, body[0]) == (
        400,
        {
            "message": "invalid convertedStatus: Working - Contacted",
            "errorCode": "INVALID_STATUS",
            "fields": [],
        },
    )
    assert convert({"leadId": "00Qnot-an-id"}) == (
        400,
        [{"message": "malformed id 00Qnot-an-id", "errorCode": "MALFORMED_ID", "fields": []}],
    )
    status, body = convert({"leadId": account_id})
    assert (status, body[0]["errorCode"]) == (400, "INVALID_CROSS_REFERENCE_KEY")
    status, body = convert({"accountId": account_id})
    assert status == 400 and "leadId" in body["error"]
    status, body = convert({"leadId": lead_id, "asUser": "nobody@x.example"})
    assert status == 400 and "nobody@x.example" in body["error"]
    assert sf.Lead.get(lead_id)["IsConverted"] is False
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 0
    assert convert({"leadId": lead_id, "doNotCreateOpportunity": True})[0] == 200
    status, body = convert({"leadId": lead_id})
    assert (status, body) == (400, [{"message": MESSAGE, "errorCode": CODE, "fields": []}])
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2


def test_snapshot_and_load_keep_the_conversion(
    salesforce: RunningSalesforce, sf: Any, http: httpx.Client
) -> None:
    lead_id = _lead(sf)
    result = salesforce.emulator.convert_lead(lead_id)
    snap = http.get("/__emulator__/snapshot").json()
    assert http.post("/__emulator__/reset").status_code == 204
    assert http.post("/__emulator__/load", json=snap).status_code == 204
    client = salesforce.simple_salesforce()
    lead = _one(client, f"SELECT {LEAD_FIELDS} FROM Lead WHERE Id = '{lead_id}'")
    assert lead["IsConverted"] is True and lead["ConvertedContactId"] == result["contactId"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        client.Lead.update(lead_id, {"Title": "CEO"})
    assert exc.value.content[0]["errorCode"] == CODE
    client.session.close()


def test_one_transaction_pins_the_stamp_while_the_clock_moves(
    salesforce: RunningSalesforce, sf: Any
) -> None:
    emu = salesforce.emulator
    writer = Writer(emu.org, emu.org.integration_user_id)
    with emu.org.lock, writer.one_transaction() as stamp:
        first = writer.create("Account", {"Name": "First"})
        emu.clock.advance(3)
        second = writer.create("Account", {"Name": "Second"})
    assert {sf.Account.get(i)["SystemModstamp"] for i in (first, second)} == {stamp}
    later = sf.Account.create({"Name": "Later"})["id"]
    assert sf.Account.get(later)["SystemModstamp"] > stamp
