"""Search through the real client: operators, sorts, offset paging and the 10,000-result cap."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hubspot.crm.contacts import (
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.properties import PropertyCreate

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot


def _people(hs: RunningHubSpot) -> dict[str, str]:
    api = hs.client().crm.contacts.basic_api
    rows = [
        ("ann@acme.example", "Ann", "lead", "10"),
        ("bob@acme.example", "Bob", "customer", "200"),
        ("cy@globex.example", "Cy", "lead", "30"),
        ("dee@globex.example", "Dee", "", ""),
    ]
    hs.client().crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="score",
            label="Score",
            type="number",
            field_type="number",
            group_name="contactinformation",
        ),
    )
    ids = {}
    for email, first, stage, score in rows:
        props = {"email": email, "firstname": first}
        if stage:
            props["lifecyclestage"] = stage
        if score:
            props["score"] = score
        ids[first] = api.create(SimplePublicObjectInputForCreate(properties=props)).id
    return ids


def _search(hs: RunningHubSpot, **body: Any) -> Any:
    return hs.client().crm.contacts.search_api.do_search(PublicObjectSearchRequest(**body))


def _names(result: Any) -> list[str]:
    return [r.properties["firstname"] for r in result.results]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter(property_name="lifecyclestage", operator="EQ", value="lead"), ["Ann", "Cy"]),
        (Filter(property_name="lifecyclestage", operator="NEQ", value="lead"), ["Bob", "Dee"]),
        (Filter(property_name="score", operator="GT", value="20"), ["Bob", "Cy"]),
        (Filter(property_name="score", operator="LTE", value="30"), ["Ann", "Cy"]),
        (
            Filter(property_name="score", operator="BETWEEN", value="10", high_value="30"),
            ["Ann", "Cy"],
        ),
        (Filter(property_name="firstname", operator="IN", values=["ann", "dee"]), ["Ann", "Dee"]),
        (
            Filter(property_name="firstname", operator="NOT_IN", values=["ann", "dee"]),
            ["Bob", "Cy"],
        ),
        (Filter(property_name="score", operator="HAS_PROPERTY"), ["Ann", "Bob", "Cy"]),
        (Filter(property_name="score", operator="NOT_HAS_PROPERTY"), ["Dee"]),
        (Filter(property_name="email", operator="CONTAINS_TOKEN", value="globex"), ["Cy", "Dee"]),
        (
            Filter(property_name="email", operator="CONTAINS_TOKEN", value="*@acme.example"),
            ["Ann", "Bob"],
        ),
    ],
)
def test_operators(hubspot: RunningHubSpot, flt: Filter, expected: list[str]) -> None:
    _people(hubspot)
    result = _search(
        hubspot,
        filter_groups=[FilterGroup(filters=[flt])],
        properties=["firstname"],
        sorts=["firstname"],
        limit=10,
        after="0",
    )
    assert _names(result) == expected
    assert result.total == len(expected)


def test_groups_are_or_and_filters_are_and(hubspot: RunningHubSpot) -> None:
    _people(hubspot)
    result = _search(
        hubspot,
        properties=["firstname"],
        sorts=["firstname"],
        limit=10,
        after="0",
        filter_groups=[
            FilterGroup(
                filters=[
                    Filter(property_name="lifecyclestage", operator="EQ", value="lead"),
                    Filter(property_name="score", operator="GT", value="15"),
                ]
            ),
            FilterGroup(filters=[Filter(property_name="firstname", operator="EQ", value="Dee")]),
        ],
    )
    assert _names(result) == ["Cy", "Dee"]


def test_sorts_as_objects_descending_and_free_text_query(hubspot: RunningHubSpot) -> None:
    _people(hubspot)
    result = _search(
        hubspot,
        properties=["firstname"],
        limit=10,
        after="0",
        sorts=[{"propertyName": "score", "direction": "DESCENDING"}],
        filter_groups=[],
    )
    assert _names(result)[:3] == ["Bob", "Cy", "Ann"]  # numeric, not lexicographic
    found = _search(
        hubspot,
        query="glob",
        properties=["firstname"],
        sorts=["firstname"],
        limit=10,
        after="0",
        filter_groups=[],
    )
    assert _names(found) == ["Cy", "Dee"]


def test_offset_paging_and_default_properties(hubspot: RunningHubSpot) -> None:
    _people(hubspot)
    first = _search(hubspot, limit=3, after="0", sorts=["firstname"], filter_groups=[])
    assert first.paging.next.after == "3"
    assert set(first.results[0].properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    second = _search(
        hubspot, limit=3, after=first.paging.next.after, sorts=["firstname"], filter_groups=[]
    )
    assert second.paging is None
    assert len(second.results) == 1 and second.total == 4


def test_modified_since_sorted_is_incremental_and_sees_new_writes(hubspot: RunningHubSpot) -> None:
    ids = _people(hubspot)
    clock = hubspot.emulator.clock
    hubspot.control("POST", "clock", {"advance": 60})
    since = str(int(clock.time() * 1000))
    hubspot.control("POST", "clock", {"advance": 1})
    api = hubspot.client().crm.contacts.basic_api
    api.update(ids["Cy"], SimplePublicObjectInput(properties={"jobtitle": "CTO"}))
    hubspot.control("POST", "clock", {"advance": 1})
    api.update(ids["Ann"], SimplePublicObjectInput(properties={"jobtitle": "CEO"}))
    request = {
        "filter_groups": [
            FilterGroup(
                filters=[Filter(property_name="lastmodifieddate", operator="GTE", value=since)]
            )
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["firstname", "lastmodifieddate"],
        "limit": 100,
        "after": "0",
    }
    assert _names(_search(hubspot, **request)) == ["Cy", "Ann"]
    hubspot.control("POST", "clock", {"advance": 1})
    api.update(ids["Cy"], SimplePublicObjectInput(properties={"jobtitle": "CFO"}))
    assert _names(_search(hubspot, **request)) == ["Ann", "Cy"]  # cached result invalidated


def test_search_limit_above_200_is_400(hubspot: RunningHubSpot) -> None:
    with pytest.raises(ApiException) as exc:
        _search(hubspot, limit=201, after="0", filter_groups=[])
    assert exc.value.status == 400


def test_too_many_filter_groups_is_400(hubspot: RunningHubSpot) -> None:
    groups = [FilterGroup(filters=[Filter(property_name="email", operator="HAS_PROPERTY")])] * 6
    with pytest.raises(ApiException) as exc:
        _search(hubspot, limit=10, after="0", filter_groups=groups)
    assert exc.value.status == 400


def test_ten_thousand_results_then_400(hubspot: RunningHubSpot) -> None:
    hubspot.emulator.seed(contacts=10_050, seed=1)
    search = hubspot.client().crm.contacts.search_api
    total_seen = 0
    after = "0"
    pages = 0
    while True:
        page = search.do_search(
            PublicObjectSearchRequest(
                filter_groups=[],
                sorts=["hs_object_id"],
                properties=["email"],
                limit=200,
                after=after,
            )
        )
        pages += 1
        total_seen += len(page.results)
        assert page.total == 10_050
        after = page.paging.next.after
        if total_seen >= 10_000:
            break
    assert total_seen == 10_000 and pages == 50
    assert after == "10000"  # HubSpot still offers the next page...
    with pytest.raises(ApiException) as exc:  # ...and refuses it.
        search.do_search(
            PublicObjectSearchRequest(
                filter_groups=[],
                sorts=["hs_object_id"],
                properties=["email"],
                limit=200,
                after=after,
            )
        )
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["category"] == "VALIDATION_ERROR"


def test_search_response_has_no_burst_headers(hubspot: RunningHubSpot) -> None:
    resp = httpx.post(
        f"{hubspot.base_url}/crm/v3/objects/contacts/search",
        headers={"Authorization": f"Bearer {hubspot.access_token}"},
        json={"filterGroups": []},
        timeout=10,
    )
    assert resp.status_code == 200
    assert "x-hubspot-ratelimit-max" not in resp.headers
    plain = httpx.get(
        f"{hubspot.base_url}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {hubspot.access_token}"},
        timeout=10,
    )
    assert plain.headers["x-hubspot-ratelimit-max"] == "190"


def test_a_lagging_index_leaves_fresh_writes_out_of_search_until_the_lag_has_passed(
    hubspot: RunningHubSpot,
) -> None:
    hubspot.emulator.settings.search_index_lag_seconds = 3
    api = hubspot.client().crm.contacts.basic_api
    made = api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "fresh@example.com", "firstname": "F"}
        )
    )
    assert api.get_by_id(made.id).id == made.id  # the record itself is there at once
    query = {
        "filter_groups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "fresh@example.com"}]}
        ]
    }
    assert _search(hubspot, **query).total == 0
    hubspot.emulator.clock.advance(3)
    assert _names(_search(hubspot, **query)) == ["F"]
    api.update(made.id, SimplePublicObjectInput(properties={"firstname": "G"}))
    assert _search(hubspot, **query).total == 0  # an update is re-indexed too
    hubspot.emulator.clock.advance(3)
    assert _names(_search(hubspot, **query)) == ["G"]
