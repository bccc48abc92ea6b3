"""Engagements (through ``hs.crm.objects``) and contact merges."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.contacts import (
    PublicMergeInput,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects import SimplePublicObjectInputForCreate as EngagementIn

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def test_calls_can_be_logged_associated_and_searched(hubspot: RunningHubSpot) -> None:
    crm = hubspot.client().crm
    contact = crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "lead@x.example"})
    ).id
    rick = crm.owners.owners_api.get_page(email="rick.rep@example.com").results[0]
    call = crm.objects.calls.basic_api.create(
        EngagementIn(
            properties={
                "hs_timestamp": "2026-01-05T10:00:00.000Z",
                "hs_call_title": "Intro",
                "hs_call_direction": "OUTBOUND",
                "hubspot_owner_id": rick.id,
            },
            associations=[
                {
                    "to": {"id": contact},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
                }
            ],
        )
    )
    assert "hs_lastmodifieddate" in call.properties
    touches = crm.associations.v4.basic_api.get_page("contacts", contact, "calls")
    assert [r.to_object_id for r in touches.results] == [call.id]
    found = crm.objects.calls.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[
                        Filter(property_name="hubspot_owner_id", operator="EQ", value=rick.id),
                        Filter(property_name="hs_timestamp", operator="GTE", value="1767225600000"),
                    ]
                )
            ],
            properties=["hs_call_title"],
            limit=10,
            after="0",
        )
    )
    assert [r.properties["hs_call_title"] for r in found.results] == ["Intro"]


@pytest.mark.parametrize("kind", ["emails", "meetings", "notes", "tasks"])
def test_other_engagement_types(hubspot: RunningHubSpot, kind: str) -> None:
    api = hubspot.client().crm.objects.basic_api
    created = api.create(kind, EngagementIn(properties={"hs_timestamp": "1767225600000"}))
    assert api.get_by_id(kind, created.id).properties["hs_object_id"] == created.id


def test_engagement_enum_validation(hubspot: RunningHubSpot) -> None:
    from hubspot.crm.objects.exceptions import ApiException as ObjectError

    with pytest.raises(ObjectError) as exc:
        hubspot.client().crm.objects.basic_api.create(
            "calls", EngagementIn(properties={"hs_call_direction": "SIDEWAYS"})
        )
    assert exc.value.status == 400


def test_merge_keeps_primary_and_redirects_the_merged_id(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    primary = api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "keep@x.example", "firstname": "Keep"}
        )
    ).id
    other = api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "dupe@x.example", "firstname": "Dupe", "jobtitle": "CTO"}
        )
    ).id
    before = api.get_by_id(primary).updated_at
    hubspot.control("POST", "clock", {"advance": 2})
    merged = api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other))
    assert merged.id == primary
    full = api.get_by_id(
        primary,
        properties=["hs_merged_object_ids", "firstname", "jobtitle", "hs_additional_emails"],
    )
    assert full.properties["hs_merged_object_ids"] == other
    assert full.properties["firstname"] == "Keep"  # the primary's values win
    assert full.properties["jobtitle"] == "CTO"  # blanks are filled from the merged record
    assert full.properties["hs_additional_emails"] == "dupe@x.example"
    assert full.updated_at > before
    assert api.get_by_id(other).id == primary  # the old id reads the survivor
    assert api.get_by_id("dupe@x.example", id_property="email").id == primary
    assert [r.id for r in api.get_page().results] == [primary]


def test_merge_with_itself_is_400(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    cid = api.create(SimplePublicObjectInputForCreate(properties={"email": "s@x.example"})).id
    with pytest.raises(ApiException) as exc:
        api.merge(PublicMergeInput(primary_object_id=cid, object_id_to_merge=cid))
    assert json.loads(exc.value.body)["category"] == "VALIDATION_ERROR"
    api.update(cid, SimplePublicObjectInput(properties={"firstname": "still here"}))
