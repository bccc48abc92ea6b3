"""Static lists and program membership over httpx: per-id statuses, paging, errors."""

from __future__ import annotations

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads


def test_list_lookup_and_filters(api: Api, marketo: RunningMarketo) -> None:
    a = marketo.control("POST", "lists", {"name": "SLA breached", "programName": "Ops"})
    b = marketo.control("POST", "lists", {"name": "Rejected: no budget"})
    assert [sl["id"] for sl in api.ok("GET", "/rest/v1/lists.json")] == [a["id"], b["id"]]
    assert [
        sl["name"]
        for sl in api.ok("GET", "/rest/v1/lists.json", params={"name": "Rejected: no budget"})
    ] == [b["name"]]
    assert [
        sl["id"] for sl in api.ok("GET", "/rest/v1/lists.json", params={"programName": "Ops"})
    ] == [a["id"]]
    [one] = api.ok("GET", f"/rest/v1/lists/{a['id']}.json")
    assert one["name"] == "SLA breached" and one["workspaceName"] == "Default"
    assert api.error("GET", "/rest/v1/lists/999999.json") == "1013"
    dup = api.http.post("/__emulator__/lists", json={"name": "SLA breached"})
    assert dup.status_code == 400


def test_add_remove_ismember_statuses(api: Api, marketo: RunningMarketo) -> None:
    x, y = make_leads(api, {"email": "x@example.com"}, {"email": "y@example.com"})
    sl = marketo.control("POST", "lists", {"name": "L"})["id"]
    path = f"/rest/v1/lists/{sl}/leads.json"
    added = api.ok("POST", path, json={"input": [{"id": x}, {"id": 424242}]})
    assert added[0] == {"id": x, "status": "added"}
    assert added[1]["status"] == "skipped" and added[1]["reasons"][0]["code"] == "1004"
    assert api.ok("POST", path, params={"id": [y, x]}) == [  # query form, repeat add is "added"
        {"id": y, "status": "added"},
        {"id": x, "status": "added"},
    ]
    member = api.ok("GET", f"/rest/v1/lists/{sl}/leads/ismember.json", params={"id": f"{x},{y}"})
    assert [m["status"] for m in member] == ["memberof", "memberof"]
    removed = api.ok("DELETE", path, params={"id": x})
    assert removed == [{"id": x, "status": "removed"}]
    again = api.ok("DELETE", path, params={"id": x})
    assert again[0]["reasons"][0]["code"] == "1015"
    member = api.ok(
        "POST",
        f"/rest/v1/lists/{sl}/leads/ismember.json",
        params={"_method": "GET"},
        json={"input": [{"id": x}]},
    )
    assert member == [{"id": x, "status": "notmemberof"}]
    too_many = {"input": [{"id": i} for i in range(301)]}
    assert api.error("POST", path, json=too_many) == "1003"


def test_list_members_paged_with_fields(api: Api, marketo: RunningMarketo) -> None:
    ids = make_leads(api, *({"email": f"m{i}@example.com", "title": "T"} for i in range(3)))
    sl = marketo.control("POST", "lists", {"name": "L"})["id"]
    api.ok("POST", f"/rest/v1/lists/{sl}/leads.json", json={"input": [{"id": i} for i in ids]})
    first = api.get(f"/rest/v1/lists/{sl}/leads.json", batchSize=2, fields="title")
    assert [r["id"] for r in first["result"]] == ids[:2] and first["result"][0]["title"] == "T"
    second = api.get(
        f"/rest/v1/list/{sl}/leads.json", batchSize=2, nextPageToken=first["nextPageToken"]
    )
    assert [r["id"] for r in second["result"]] == ids[2:] and "nextPageToken" not in second


def test_program_membership(api: Api, marketo: RunningMarketo) -> None:
    a, b = make_leads(api, {"email": "a@example.com"}, {"email": "b@example.com"})
    program = marketo.control("POST", "programs", {"name": "Webinar Q1"})
    pid = program["id"]
    status = api.ok(
        "POST",
        f"/rest/v1/programs/{pid}/members/status.json",
        json={"statusName": "Member", "input": [{"leadId": a}, {"leadId": 99999}]},
    )
    assert status[0] == {"seq": 0, "leadId": a, "status": "updated"}
    assert status[1]["status"] == "skipped" and status[1]["reasons"][0]["code"] == "1004"
    status = api.ok(
        "POST",
        f"/rest/v1/programs/{pid}/members/status.json",
        json={"statusName": "Attended", "input": [{"leadId": a}, {"leadId": b}]},
    )
    assert [s["status"] for s in status] == ["updated", "updated"]
    back = api.ok(
        "POST",
        f"/rest/v1/programs/{pid}/members/status.json",
        json={"statusName": "Member", "input": [{"leadId": a}]},
    )
    assert back[0]["status"] == "skipped" and back[0]["reasons"][0]["code"] == "1037"
    members = api.ok(
        "GET",
        f"/rest/v1/programs/{pid}/members.json",
        params={"filterType": "leadId", "filterValues": f"{a},{b}"},
    )
    assert [(m["leadId"], m["progressionStatus"], m["reachedSuccess"]) for m in members] == [
        (a, "Attended", True),
        (b, "Attended", True),
    ]
    leads = api.ok("GET", f"/rest/v1/leads/programs/{pid}.json", params={"fields": "email"})
    assert leads[0]["membership"]["progressionStatus"] == "Attended"
    assert (
        api.error(
            "GET",
            "/rest/v1/programs/1/members.json",
            params={"filterType": "leadId", "filterValues": "1"},
        )
        == "1013"
    )
    assert (
        api.error(
            "POST",
            f"/rest/v1/programs/{pid}/members/status.json",
            json={"statusName": "Bogus", "input": [{"leadId": a}]},
        )
        == "1025"
    )
