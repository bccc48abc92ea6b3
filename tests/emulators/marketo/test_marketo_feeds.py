"""Change feeds over httpx: date tokens, lead changes, short pages, deleted leads, engagement."""

from __future__ import annotations

import base64
from typing import Any

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads

TOKEN = "/rest/v1/activities/pagingtoken.json"
CHANGES = "/rest/v1/activities/leadchanges.json"
ACTIVITIES = "/rest/v1/activities.json"
DELETED = "/rest/v1/activities/deletedleads.json"


def _since(api: Api, when: str = "2000-01-01T00:00:00Z") -> str:
    body = api.get(TOKEN, sinceDatetime=when)
    assert body["success"] is True and "result" not in body
    return str(body["nextPageToken"])


def _drain(api: Api, path: str, token: str, **params: Any) -> tuple[list[dict[str, Any]], int, str]:
    """Follow a feed until ``moreResult`` is false: (items, calls, last token)."""
    items: list[dict[str, Any]] = []
    calls = 0
    while True:
        body = api.get(path, nextPageToken=token, **params)
        calls += 1
        assert body["success"] is True, body
        assert isinstance(body["moreResult"], bool) and body["nextPageToken"]
        items += body["result"]
        token = body["nextPageToken"]
        if not body["moreResult"]:
            return items, calls, token


def test_paging_token_decodes_to_the_documented_shape(api: Api) -> None:
    token = _since(api, "2024-03-01T10:00:00Z")
    raw = base64.b32decode(token + "=" * (-len(token) % 8)).decode()
    assert raw == "2024-03-01T10:00:00.000+0000,0"
    assert api.error("GET", TOKEN) == "1002"
    assert api.error("GET", TOKEN, params={"sinceDatetime": "yesterday"}) == "704"


def test_lead_changes_new_lead_then_change_data_value(api: Api, marketo: RunningMarketo) -> None:
    token = _since(api)
    [lead_id] = make_leads(api, {"email": "a@example.com", "firstName": "Ada"})
    api.ok(
        "POST",
        "/rest/v1/leads.json",
        json={"input": [{"email": "a@example.com", "firstName": "Grace", "title": "CMO"}]},
    )
    items, _, token = _drain(api, CHANGES, token, fields="firstName")
    assert [i["activityTypeId"] for i in items] == [12, 13]  # the title change is not asked for
    change = items[1]
    assert change["leadId"] == lead_id
    assert change["fields"] == [
        {"id": 3, "name": "firstName", "newValue": "Grace", "oldValue": "Ada"}
    ]
    assert {"name": "Source", "value": "Web service API"} in change["attributes"]
    # The cursor moved past everything: nothing new, and the UI edit shows with another source.
    assert _drain(api, CHANGES, token, fields="firstName")[0] == []
    marketo.control("POST", f"leads/{lead_id}/edit", {"changes": {"firstName": "Edsger"}})
    [edit], _, _ = _drain(api, CHANGES, token, fields="firstName,title")
    assert edit["fields"][0]["oldValue"] == "Grace"
    assert {"name": "Source", "value": "Changed by user"} in edit["attributes"]
    assert api.error("GET", CHANGES, params={"nextPageToken": token}) == "1002"  # fields required
    assert api.error("GET", CHANGES, params={"nextPageToken": token, "fields": "nope"}) == "1006"
    assert api.error("GET", CHANGES, params={"nextPageToken": "!!", "fields": "email"}) == "1003"


def test_since_datetime_excludes_older_activities(api: Api, marketo: RunningMarketo) -> None:
    marketo.emulator.clock.freeze()
    make_leads(api, {"email": "old@example.com"})
    marketo.emulator.clock.advance(1800)  # (the token lives 3600 s)
    token = _since(api, marketo.emulator.clock.now().isoformat())
    [new_id] = make_leads(api, {"email": "new@example.com"})
    items, _, _ = _drain(api, CHANGES, token, fields="email")
    assert [i["leadId"] for i in items] == [new_id]


def test_filtered_pages_can_be_short_with_more_result(api: Api, marketo: RunningMarketo) -> None:
    """A window of the log is read per call: a type filter yields short pages, even empty ones."""
    token = _since(api)
    ids = make_leads(api, *({"email": f"e{i}@example.com"} for i in range(5)))
    marketo.control(
        "POST",
        "activities",
        {
            "leadId": ids[0],
            "type": "fill_out_form",
            "primaryAttributeValue": "Contact Us",
            "primaryAttributeValueId": 77,
        },
    )
    body = api.get(ACTIVITIES, nextPageToken=token, activityTypeIds="2", batchSize=2)
    assert body["result"] == [] and body["moreResult"] is True  # 2 New Lead rows scanned
    items, calls, _ = _drain(api, ACTIVITIES, token, activityTypeIds="2", batchSize=2)
    assert calls == 3
    [form] = items
    assert form["primaryAttributeValue"] == "Contact Us" and form["leadId"] == ids[0]


def test_engagement_activities_and_filters(api: Api, marketo: RunningMarketo) -> None:
    token = _since(api)
    a, b = make_leads(api, {"email": "a@example.com"}, {"email": "b@example.com"})
    for lead, kind in ((a, "visit_webpage"), (b, "open_email"), (a, "click_link"), (b, 2)):
        marketo.control(
            "POST",
            "activities",
            {"leadId": lead, "type": kind, "attributes": {"Client IP Address": "10.0.0.1"}},
        )
    items, _, _ = _drain(api, ACTIVITIES, token, activityTypeIds="1,2,3,10")
    assert [(i["leadId"], i["activityTypeId"]) for i in items] == [(a, 1), (b, 10), (a, 3), (b, 2)]
    only_a, _, _ = _drain(api, ACTIVITIES, token, activityTypeIds="1,2,3,10", leadIds=str(a))
    assert {i["leadId"] for i in only_a} == {a}
    assert api.error("GET", ACTIVITIES, params={"nextPageToken": token}) == "1002"
    eleven = ",".join(str(i) for i in (1, 2, 3, 6, 7, 9, 10, 11, 12, 13, 22))
    assert (
        api.error("GET", ACTIVITIES, params={"nextPageToken": token, "activityTypeIds": eleven})
        == "1003"
    )
    refused = api.http.post("/__emulator__/activities", json={"leadId": 999, "type": 1})
    assert refused.status_code == 400


def test_activity_types_list_the_ids_the_feeds_use(api: Api) -> None:
    types = {t["id"]: t for t in api.ok("GET", "/rest/v1/activities/types.json")}
    assert types[12]["name"] == "New Lead"
    assert types[13]["name"] == "Change Data Value"
    assert types[37]["name"] == "Delete Lead"
    assert types[32]["name"] == "Merge Leads"
    assert {1, 2, 3, 10} <= set(types)


def test_deleted_leads_feed(api: Api) -> None:
    token = _since(api)
    a, _b = make_leads(
        api,
        {"email": "a@example.com", "firstName": "Ada", "lastName": "L"},
        {"email": "b@example.com"},
    )
    api.ok("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": a}]})
    items, _, token = _drain(api, DELETED, token)
    assert [(i["leadId"], i["activityTypeId"], i["primaryAttributeValue"]) for i in items] == [
        (a, 37, "Ada L")
    ]
    assert _drain(api, DELETED, token)[0] == []


def test_merge_is_logged_on_the_winner(api: Api) -> None:
    token = _since(api)
    win, lose = make_leads(
        api, {"email": "w@example.com"}, {"email": "l@example.com", "title": "X"}
    )
    api.ok("POST", f"/rest/v1/leads/{win}/merge.json", params={"leadId": lose})
    items, _, _ = _drain(api, ACTIVITIES, token, activityTypeIds="32,37")
    [merge] = items  # the loser vanishes without a Delete Lead
    assert merge["leadId"] == win
    merged = next(a["value"] for a in merge["attributes"] if a["name"] == "Merge IDs")
    assert merged == [win, lose]
    changes, _, _ = _drain(api, CHANGES, token, fields="title")
    assert changes[-1]["leadId"] == win and changes[-1]["fields"][0]["newValue"] == "X"


def test_lead_changes_by_list(api: Api, marketo: RunningMarketo) -> None:
    _a, b = make_leads(api, {"email": "a@example.com"}, {"email": "b@example.com"})
    static_list = marketo.control("POST", "lists", {"name": "Members"})
    api.ok("POST", f"/rest/v1/lists/{static_list['id']}/leads.json", json={"input": [{"id": b}]})
    token = _since(api)
    items, _, _ = _drain(api, CHANGES, token, fields="email", listId=static_list["id"])
    assert {i["leadId"] for i in items} == {b}
