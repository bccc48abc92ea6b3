"""Lead reads and writes over httpx: lookup semantics, record reasons, limits, merge, delete."""

from __future__ import annotations

import threading
import time

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads

LEADS = "/rest/v1/leads.json"


def test_create_or_update_by_email_default(api: Api) -> None:
    [lead_id] = make_leads(api, {"email": "Ada@Example.com", "firstName": "Ada"})
    result = api.ok("POST", LEADS, json={"input": [{"email": "ada@example.com", "lastName": "L"}]})
    assert result == [{"id": lead_id, "status": "updated"}]
    [lead] = api.ok("GET", f"/rest/v1/lead/{lead_id}.json")
    assert lead["firstName"] == "Ada" and lead["lastName"] == "L"
    assert set(lead) == {"id", "email", "updatedAt", "createdAt", "firstName", "lastName"}


def test_actions_and_record_reasons_in_input_order(api: Api) -> None:
    [existing] = make_leads(api, {"email": "a@example.com"})
    result = api.ok(
        "POST",
        LEADS,
        json={
            "action": "createOnly",
            "input": [
                {"email": "a@example.com"},
                {"email": "b@example.com", "leadScore": "not a number"},
                {"email": "c@example.com", "noSuchField": 1},
                {"email": "d@example.com"},
                {"email": "not-an-email"},
            ],
        },
    )
    codes = [r.get("reasons", [{}])[0].get("code") for r in result]
    assert codes == ["1005", "1001", "1006", None, "1003"]
    assert result[3]["status"] == "created" and result[3]["id"] != existing
    result = api.ok(
        "POST", LEADS, json={"action": "updateOnly", "input": [{"email": "zz@example.com"}]}
    )
    assert result[0]["status"] == "skipped" and result[0]["reasons"][0]["code"] == "1004"


def test_id_only_with_update_only(api: Api) -> None:
    [lead_id] = make_leads(api, {"email": "a@example.com"})
    result = api.ok("POST", LEADS, json={"input": [{"id": lead_id, "firstName": "X"}]})
    assert result[0]["reasons"][0]["code"] == "1003"
    result = api.ok(
        "POST", LEADS, json={"action": "updateOnly", "input": [{"id": lead_id, "firstName": "X"}]}
    )
    assert result == [{"id": lead_id, "status": "updated"}]
    assert (
        api.error(
            "POST", LEADS, json={"action": "createOnly", "lookupField": "id", "input": [{"id": 1}]}
        )
        == "1003"
    )


def test_create_duplicate_then_lookup_is_ambiguous(api: Api) -> None:
    make_leads(api, {"email": "dup@example.com"})
    result = api.ok(
        "POST", LEADS, json={"action": "createDuplicate", "input": [{"email": "dup@example.com"}]}
    )
    assert result[0]["status"] == "created"
    result = api.ok("POST", LEADS, json={"input": [{"email": "dup@example.com", "title": "x"}]})
    assert result[0]["reasons"][0]["code"] == "1007"
    found = api.ok("GET", LEADS, params={"filterType": "email", "filterValues": "dup@example.com"})
    assert len(found) == 2


def test_batch_caps_300(api: Api) -> None:
    rows = [{"email": f"u{i}@example.com"} for i in range(301)]
    assert api.error("POST", LEADS, json={"input": rows}) == "1003"
    assert (
        api.error(
            "GET",
            LEADS,
            params={"filterType": "id", "filterValues": ",".join(str(i) for i in range(1, 302))},
        )
        == "1003"
    )
    assert len(make_leads(api, *rows[:300])) == 300


def test_filter_paging_fields_and_errors(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "fields", {"name": "segment", "dataType": "string"})
    ids = make_leads(api, *({"email": f"p{i}@example.com", "segment": "Acme"} for i in range(5)))
    first = api.call(
        "GET",
        LEADS,
        params={
            "filterType": "segment",
            "filterValues": "Acme",
            "batchSize": 2,
            "fields": "email,segment",
        },
    )
    assert [r["id"] for r in first["result"]] == ids[:2]
    assert set(first["result"][0]) == {"id", "email", "segment"}
    seen = [r["id"] for r in first["result"]]
    token = first["nextPageToken"]
    while token:
        page = api.call(
            "GET",
            LEADS,
            params={
                "filterType": "segment",
                "filterValues": "Acme",
                "batchSize": 2,
                "nextPageToken": token,
            },
        )
        assert page["success"] is True, page
        seen += [r["id"] for r in page["result"]]
        token = page.get("nextPageToken")
    assert seen == ids
    assert (
        api.error(
            "GET", LEADS, params={"filterType": "email", "filterValues": "x@y.z", "fields": "nope"}
        )
        == "1006"
    )
    assert (
        api.error("GET", LEADS, params={"filterType": "firstName", "filterValues": "Ada"})
        == "1011"  # a standard field that is not a key
    )
    assert api.error("GET", LEADS, params={"filterType": "nope", "filterValues": "x"}) == "1006"
    assert api.error("GET", LEADS, params={"filterType": "email"}) == "1002"
    lookup = {"lookupField": "company", "input": [{"company": "Acme"}]}
    assert api.error("POST", LEADS, json=lookup) == "1011"
    assert api.ok("GET", LEADS, params={"filterType": "email", "filterValues": "x@y.z"}) == []


def test_post_with_method_get_form_body(api: Api) -> None:
    """The vendor's way around the 8 KB URI limit: POST ?_method=GET with the query as a form."""
    [lead_id] = make_leads(api, {"email": "form@example.com"})
    result = api.ok(
        "POST",
        LEADS,
        data={"_method": "GET", "filterType": "email", "filterValues": "form@example.com"},
    )
    assert [r["id"] for r in result] == [lead_id]


def test_describe_and_describe2(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "fields", {"name": "crmBridgeReason", "dataType": "string"})
    described = api.ok("GET", "/rest/v1/leads/describe.json")
    names = {f["rest"]["name"] for f in described}
    assert {"email", "firstName", "crmBridgeReason"} <= names
    [d2] = api.ok("GET", "/rest/v1/leads/describe2.json")
    assert d2["name"] == "API Lead"
    assert ["crmBridgeReason"] in d2["searchableFields"] and ["email"] in d2["searchableFields"]
    result = api.ok("POST", LEADS, json={"input": [{"email": "c@x.io", "crmBridgeReason": "r1"}]})
    assert result[0]["status"] == "created"


def test_delete_both_ways(api: Api) -> None:
    a, b = make_leads(api, {"email": "a@example.com"}, {"email": "b@example.com"})
    result = api.ok("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": a}, {"id": 999}]})
    assert result[0] == {"id": a, "status": "deleted"}
    assert result[1]["status"] == "skipped" and result[1]["reasons"][0]["code"] == "1004"
    assert api.ok("DELETE", LEADS, json={"input": [{"id": b}]}) == [{"id": b, "status": "deleted"}]
    assert api.ok("GET", f"/rest/v1/lead/{a}.json") == []


def test_merge_losers_disappear_winner_keeps_values(api: Api) -> None:
    win, lose1, lose2 = make_leads(
        api,
        {"email": "w@example.com", "firstName": "Winner"},
        {"email": "l1@example.com", "firstName": "Loser", "title": "CMO"},
        {"email": "l2@example.com", "phone": "555"},
    )
    body = api.call(
        "POST", f"/rest/v1/leads/{win}/merge.json", params={"leadIds": f"{lose1},{lose2}"}
    )
    assert body["success"] is True and "result" not in body
    [lead] = api.ok(
        "GET", f"/rest/v1/lead/{win}.json", params={"fields": "firstName,title,phone,email"}
    )
    assert (lead["firstName"], lead["title"], lead["phone"], lead["email"]) == (
        "Winner",
        "CMO",
        "555",
        "w@example.com",
    )
    assert api.ok("GET", f"/rest/v1/lead/{lose1}.json") == []
    assert api.error("POST", f"/rest/v1/leads/{win}/merge.json", params={"leadId": lose1}) == "1004"
    many = ",".join(str(i) for i in range(100, 126))
    assert api.error("POST", f"/rest/v1/leads/{win}/merge.json", params={"leadIds": many}) == "1080"


def test_more_than_1000_matches_is_1003(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "fields", {"name": "segment", "dataType": "string"})
    marketo.emulator.add_leads(
        [{"email": f"m{i}@example.com", "segment": "big"} for i in range(1001)]
    )
    assert (
        api.error("GET", LEADS, params={"filterType": "segment", "filterValues": "big"}) == "1003"
    )


def test_wrong_method_is_605_and_uncounted(api: Api, marketo: RunningMarketo) -> None:
    assert api.error("PUT", "/rest/v1/leads/describe.json") == "605"
    assert api.error("DELETE", "/rest/v1/leads/describe.json") == "605"
    assert marketo.control("GET", "limits")["daily_used"] == 0


def test_invalid_json_and_content_type(api: Api) -> None:
    assert (
        api.error("POST", LEADS, content=b"{nope", headers={"Content-Type": "application/json"})
        == "609"
    )
    assert api.error("POST", LEADS, content=b"x", headers={"Content-Type": "text/plain"}) == "612"


def _race(api: Api, marketo: RunningMarketo) -> list[dict[str, object]]:
    """Two createOrUpdate calls for one email overlap: the first is held before its handler."""
    marketo.control(
        "POST", "faults", {"path": "/rest/v1/leads.json", "method": "POST", "latency": 0.5}
    )
    held: list[list[dict[str, object]]] = []
    thread = threading.Thread(
        target=lambda: held.append(
            api.ok("POST", LEADS, json={"input": [{"email": "race@example.com", "title": "A"}]})
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not marketo.control("GET", "faults/hits"):  # the held call has arrived
        assert time.monotonic() < deadline
        time.sleep(0.01)  # ok-sleep: deadline poll until the held call reached the server
    second = api.ok("POST", LEADS, json={"input": [{"email": "race@example.com", "title": "B"}]})
    thread.join()
    return [held[0][0], second[0]]


def test_overlapping_upserts_create_duplicates_only_with_the_race_switch(
    api: Api, marketo: RunningMarketo
) -> None:
    first, second = _race(api, marketo)
    assert (second["status"], first["status"]) == ("created", "updated")  # serialized: one lead
    marketo.emulator.reset()
    api.token = marketo.token()
    marketo.control("POST", "settings", {"upsert_race": True})
    first, second = _race(api, marketo)
    assert (second["status"], first["status"]) == ("created", "created")
    found = api.ok("GET", LEADS, params={"filterType": "email", "filterValues": "race@example.com"})
    assert len(found) == 2  # the documented duplicate; the next upsert answers 1007
