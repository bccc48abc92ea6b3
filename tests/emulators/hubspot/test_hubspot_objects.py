"""Objects API through the real hubspot-api-client: list paging, read, create, update, archive."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _create(hs: RunningHubSpot, n: int) -> list[str]:
    api = hs.client().crm.contacts.basic_api
    return [
        api.create(
            SimplePublicObjectInputForCreate(
                properties={"email": f"p{i}@example.com", "firstname": f"P{i}"}
            )
        ).id
        for i in range(n)
    ]


def _raw(hs: RunningHubSpot, method: str, path: str, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {hs.access_token}"}
    return httpx.request(method, hs.base_url + path, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (1, 1), (10, 1), (11, 2)])
def test_list_paging_boundaries(hubspot: RunningHubSpot, count: int, pages: int) -> None:
    ids = _create(hubspot, count)
    api = hubspot.client().crm.contacts.basic_api
    seen: list[str] = []
    after = None
    calls = 0
    while True:
        page = api.get_page(limit=10, after=after)
        calls += 1
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
        assert page.paging.next.link.startswith(hubspot.base_url)
    assert seen == ids
    assert calls == pages


def test_list_limit_above_100_is_rejected(hubspot: RunningHubSpot) -> None:
    resp = _raw(hubspot, "GET", "/crm/v3/objects/contacts?limit=101")
    assert resp.status_code == 400
    assert resp.json()["category"] == "VALIDATION_ERROR"


def test_created_record_has_documented_shape(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "ada@example.com", "lifecyclestage": "lead"}
        )
    )
    resp = _raw(
        hubspot,
        "GET",
        f"/crm/v3/objects/contacts/{created.id}",
        params={"properties": "email,lifecyclestage,lastmodifieddate,phone"},
    )
    body = resp.json()
    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["updatedAt"])
    props = body["properties"]
    assert props["email"] == "ada@example.com"
    assert props["phone"] is None  # requested but unset -> null
    assert ISO_MS.match(props["lastmodifieddate"])
    assert all(isinstance(v, str) for v in props.values() if v is not None)
    assert body["archived"] is False


def test_properties_repeated_and_comma_separated(hubspot: RunningHubSpot) -> None:
    (cid,) = _create(hubspot, 1)
    repeated = _raw(
        hubspot, "GET", f"/crm/v3/objects/contacts/{cid}?properties=email&properties=firstname"
    )
    commas = _raw(hubspot, "GET", f"/crm/v3/objects/contacts/{cid}?properties=email,firstname")
    assert set(repeated.json()["properties"]) == {"email", "firstname"}
    assert repeated.json()["properties"] == commas.json()["properties"]


@pytest.mark.parametrize("flag", ["False", "false", "FALSE"])
def test_boolean_params_in_any_case(hubspot: RunningHubSpot, flag: str) -> None:
    _create(hubspot, 1)
    resp = _raw(hubspot, "GET", f"/crm/v3/objects/contacts?archived={flag}")
    assert resp.status_code == 200
    assert len(resp.json()["results"]) == 1


def test_get_by_email_and_update(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    (cid,) = _create(hubspot, 1)
    found = api.get_by_id("p0@example.com", id_property="email", properties=["firstname"])
    assert found.id == cid
    before = api.get_by_id(cid, properties=["lastmodifieddate"]).properties["lastmodifieddate"]
    hubspot.control("POST", "clock", {"advance": 1.5})
    updated = api.update(cid, SimplePublicObjectInput(properties={"firstname": "Grace"}))
    assert updated.properties["firstname"] == "Grace"
    after = api.get_by_id(cid, properties=["lastmodifieddate"]).properties["lastmodifieddate"]
    assert after > before


def test_update_that_changes_nothing_keeps_lastmodifieddate(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    (cid,) = _create(hubspot, 1)
    before = api.get_by_id(cid).updated_at
    hubspot.control("POST", "clock", {"advance": 5})
    api.update(cid, SimplePublicObjectInput(properties={"firstname": "P0"}))
    assert api.get_by_id(cid).updated_at == before


def test_duplicate_email_is_a_409_conflict(hubspot: RunningHubSpot) -> None:
    (cid,) = _create(hubspot, 1)
    api = hubspot.client().crm.contacts.basic_api
    with pytest.raises(ApiException) as exc:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "P0@example.com"}))
    assert exc.value.status == 409
    body = json.loads(exc.value.body)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {cid}"


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"no_such_thing": "x"}, "PROPERTY_DOESNT_EXIST"),
        ({"lifecyclestage": "hot"}, "INVALID_OPTION"),
        ({"hs_lead_status": "new"}, "INVALID_OPTION"),  # options are case-sensitive internal values
        ({"email": "not-an-email"}, "INVALID_EMAIL"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
    ],
)
def test_invalid_values_are_400_validation_errors(
    hubspot: RunningHubSpot, props: dict[str, str], code: str
) -> None:
    api = hubspot.client().crm.contacts.basic_api
    with pytest.raises(ApiException) as exc:
        api.create(SimplePublicObjectInputForCreate(properties=props))
    assert exc.value.status == 400
    body = json.loads(exc.value.body)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"]
    assert body["errors"][0]["code"] == code
    assert body["message"].startswith("Property values were not valid")


def test_archive_then_get_is_404_and_archived_listing_shows_it(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    keep, gone = _create(hubspot, 2)
    api.archive(gone)
    with pytest.raises(NotFoundException) as exc:
        api.get_by_id(gone)
    assert json.loads(exc.value.body)["category"] == "OBJECT_NOT_FOUND"
    assert [r.id for r in api.get_page().results] == [keep]
    archived = api.get_page(archived=True)
    assert [r.id for r in archived.results] == [gone]
    assert archived.results[0].archived is True and archived.results[0].archived_at is not None
    # The email is free again once the holder is archived.
    api.create(SimplePublicObjectInputForCreate(properties={"email": "p1@example.com"}))


def test_companies_and_deals_use_hs_lastmodifieddate(hubspot: RunningHubSpot) -> None:
    client = hubspot.client()
    from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyIn
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealIn

    company = client.crm.companies.basic_api.create(CompanyIn(properties={"name": "Acme"}))
    deal = client.crm.deals.basic_api.create(
        DealIn(properties={"dealname": "Big", "dealstage": "closedwon", "amount": "10"})
    )
    assert ISO_MS.match(company.properties["hs_lastmodifieddate"])
    assert "lastmodifieddate" not in company.properties
    assert deal.properties["pipeline"] == "default"
    fetched = client.crm.deals.basic_api.get_by_id(
        deal.id, properties=["hs_is_closed_won", "hs_is_closed"]
    )
    assert fetched.properties["hs_is_closed_won"] == "true"


def test_deal_stage_must_belong_to_pipeline(hubspot: RunningHubSpot) -> None:
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealIn
    from hubspot.crm.deals.exceptions import ApiException as DealError

    with pytest.raises(DealError) as exc:
        hubspot.client().crm.deals.basic_api.create(
            DealIn(properties={"dealname": "X", "dealstage": "nonsense"})
        )
    assert json.loads(exc.value.body)["errors"][0]["code"] == "INVALID_OPTION"


def test_unknown_object_type_and_unknown_route(hubspot: RunningHubSpot) -> None:
    resp = _raw(hubspot, "GET", "/crm/v3/objects/widgets")
    assert resp.status_code == 400
    assert "widgets" in resp.json()["message"]
    resp = _raw(hubspot, "GET", "/crm/v3/nothing-here")
    assert resp.status_code == 404 and resp.json()["status"] == "error"
