"""Tooling API: custom picklist/text fields and validation rules that the org then enforces."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

REASONS = ["No budget", "No authority", "Bad timing"]


def _picklist(sf: Any, full_name: str = "Lead.Rejection_Reason__c", restricted: bool = True) -> str:
    result = sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": full_name,
            "Metadata": {
                "label": "Rejection Reason",
                "type": "Picklist",
                "valueSet": {
                    "restricted": restricted,
                    "valueSetDefinition": {
                        "sorted": False,
                        "value": [{"fullName": r, "label": r, "default": False} for r in REASONS],
                    },
                },
            },
        },
    )
    assert result["success"] is True and result["id"].startswith("00N")
    return str(result["id"])


def test_created_picklist_is_described_queryable_writable_and_enforced(sf: Any) -> None:
    _picklist(sf)
    field = {f["name"]: f for f in sf.Lead.describe()["fields"]}["Rejection_Reason__c"]
    assert field["custom"] is True and field["restrictedPicklist"] is True
    assert [p["value"] for p in field["picklistValues"]] == REASONS
    lead = sf.Lead.create({"LastName": "R", "Company": "C", "Rejection_Reason__c": "No budget"})
    rows = sf.query("SELECT Rejection_Reason__c FROM Lead WHERE Rejection_Reason__c = 'No budget'")[
        "records"
    ]
    assert [r["Rejection_Reason__c"] for r in rows] == ["No budget"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lead["id"], {"Rejection_Reason__c": "Because"})
    assert exc.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_unrestricted_picklist_accepts_other_values(sf: Any) -> None:
    _picklist(sf, restricted=False)
    assert sf.Lead.create({"LastName": "R", "Company": "C", "Rejection_Reason__c": "Other"})[
        "success"
    ]


def test_duplicate_field_is_rejected(sf: Any) -> None:
    _picklist(sf)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        _picklist(sf)
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"


def test_tooling_query_supports_idempotent_install(sf: Any) -> None:
    q = (
        "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField "
        "WHERE DeveloperName = 'Rejection_Reason' AND TableEnumOrId = 'Lead'"
    )
    assert sf.toolingexecute(f"query/?q={q}")["totalSize"] == 0
    field_id = _picklist(sf)
    found = sf.toolingexecute(f"query/?q={q}")
    assert found["totalSize"] == 1
    assert found["records"][0]["Id"] == field_id
    one = sf.toolingexecute(
        f"query/?q=SELECT Id, FullName, Metadata FROM CustomField WHERE Id = '{field_id}'"
    )
    assert one["records"][0]["FullName"] == "Lead.Rejection_Reason__c"
    _picklist(sf, "Opportunity.Win_Loss_Reason__c")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.toolingexecute("query/?q=SELECT Id, Metadata FROM CustomField")
    assert "no more than one row" in exc.value.content[0]["message"]


def test_patch_adds_and_deactivates_values(sf: Any) -> None:
    field_id = _picklist(sf)
    old = sf.Lead.create({"LastName": "Old", "Company": "C", "Rejection_Reason__c": "Bad timing"})[
        "id"
    ]
    current = sf.toolingexecute(f"sobjects/CustomField/{field_id}")
    metadata = current["Metadata"]
    values = metadata["valueSet"]["valueSetDefinition"]["value"]
    for v in values:
        if v["fullName"] == "Bad timing":
            v["isActive"] = False
    values.append({"fullName": "Competitor", "label": "Competitor", "default": False})
    result = sf.toolingexecute(
        f"sobjects/CustomField/{field_id}", method="PATCH", data={"Metadata": metadata}
    )
    assert result == ""  # 204, simple-salesforce returns the empty text
    described = {
        p["value"]: p["active"]
        for p in {f["name"]: f for f in sf.Lead.describe()["fields"]}["Rejection_Reason__c"][
            "picklistValues"
        ]
    }
    assert described == {
        "No budget": True,
        "No authority": True,
        "Bad timing": False,
        "Competitor": True,
    }
    assert sf.Lead.get(old)["Rejection_Reason__c"] == "Bad timing"  # kept on the record
    assert sf.Lead.update(old, {"Title": "still editable"}) == 204
    with pytest.raises(SalesforceMalformedRequest):
        sf.Lead.create({"LastName": "N", "Company": "C", "Rejection_Reason__c": "Bad timing"})
    assert sf.Lead.create({"LastName": "N", "Company": "C", "Rejection_Reason__c": "Competitor"})[
        "success"
    ]


def test_text_field_for_notes(sf: Any) -> None:
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.SLA_Notes__c",
            "Metadata": {
                "label": "SLA Notes",
                "type": "LongTextArea",
                "length": 32768,
                "visibleLines": 3,
            },
        },
    )
    lead = sf.Lead.create({"LastName": "T", "Company": "C", "SLA_Notes__c": "called twice"})
    assert sf.Lead.get(lead["id"])["SLA_Notes__c"] == "called twice"


RULE = "AND(ISPICKVAL(StageName, 'Closed Lost'), ISBLANK(TEXT(Win_Loss_Reason__c)))"


def _rule(sf: Any, formula: str = RULE, active: bool = True) -> str:
    result = sf.toolingexecute(
        "sobjects/ValidationRule",
        method="POST",
        data={
            "FullName": "Opportunity.Require_Loss_Reason",
            "Metadata": {
                "active": active,
                "errorConditionFormula": formula,
                "errorMessage": "Pick a loss reason",
                "errorDisplayField": "Win_Loss_Reason__c",
            },
        },
    )
    return str(result["id"])


def test_validation_rule_is_enforced_on_every_write_path(sf: Any) -> None:
    _picklist(sf, "Opportunity.Win_Loss_Reason__c")
    rule_id = _rule(sf)
    assert rule_id.startswith("03d")
    opp = sf.Opportunity.create(
        {"Name": "O", "StageName": "Prospecting", "CloseDate": "2030-01-01"}
    )["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.update(opp, {"StageName": "Closed Lost"})
    assert exc.value.content[0] == {
        "message": "Pick a loss reason",
        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "fields": ["Win_Loss_Reason__c"],
    }
    batch = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Opportunity"}, "id": opp, "StageName": "Closed Lost"}
            ]
        },
    )
    assert batch[0]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert (
        sf.Opportunity.update(opp, {"StageName": "Closed Lost", "Win_Loss_Reason__c": "No budget"})
        == 204
    )
    sf.toolingexecute(
        f"sobjects/ValidationRule/{rule_id}", method="PATCH", data={"Metadata": {"active": False}}
    )
    other = sf.Opportunity.create(
        {"Name": "P", "StageName": "Closed Lost", "CloseDate": "2030-01-01"}
    )
    assert other["success"]
    rules = sf.toolingexecute("query/?q=SELECT Id, ValidationName, Active FROM ValidationRule")
    assert rules["records"][0]["ValidationName"] == "Require_Loss_Reason"
    assert rules["records"][0]["Active"] is False


@pytest.mark.parametrize(
    "formula,fragment",
    [
        ("ISBLANK(Bogus__c)", "Bogus__c does not exist"),
        ("StageName = 'Closed Lost'", "picklist field"),
        ("AND(ISPICKVAL(StageName, 'Closed Lost')", "Missing ')'"),
    ],
)
def test_invalid_formula_is_rejected(sf: Any, formula: str, fragment: str) -> None:
    _picklist(sf, "Opportunity.Win_Loss_Reason__c")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        _rule(sf, formula)
    assert fragment in exc.value.content[0]["message"]


def test_formula_functions(sf: Any) -> None:
    sf.toolingexecute(
        "sobjects/ValidationRule",
        method="POST",
        data={
            "FullName": "Lead.Title_Needs_Email",
            "Metadata": {
                "active": True,
                "errorMessage": "Email needed for executives",
                "errorConditionFormula": "OR(AND(NOT(ISNEW()), ISCHANGED(Title), BEGINS(Title, 'C')), "
                "AND(CONTAINS(LOWER(Company), 'gov'), LEN(Email) = 0))",
            },
        },
    )
    assert sf.Lead.create({"LastName": "A", "Company": "Acme", "Title": "CEO"})["success"]
    with pytest.raises(SalesforceMalformedRequest):
        sf.Lead.create({"LastName": "B", "Company": "City GOV"})
    lead = sf.Lead.create({"LastName": "C", "Company": "Acme"})["id"]
    with pytest.raises(SalesforceMalformedRequest):
        sf.Lead.update(lead, {"Title": "CFO"})
    assert sf.Lead.update(lead, {"Title": "Engineer"}) == 204
