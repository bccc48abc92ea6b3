"""Bulk extract and import: job states on the emulator clock, files, ranges, reports."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api, make_leads

EXPORT = "/bulk/v1/leads/export"


def _export(api: Api, **body: Any) -> dict[str, Any]:
    spec = {
        "fields": ["id", "email", "firstName"],
        "filter": {
            "createdAt": {"startAt": "2000-01-01T00:00:00Z", "endAt": "2000-01-31T00:00:00Z"}
        },
        **body,
    }
    [job] = api.ok("POST", f"{EXPORT}/create.json", json=spec)
    return job


def _status(api: Api, export_id: str) -> dict[str, Any]:
    [job] = api.ok("GET", f"{EXPORT}/{export_id}/status.json")
    return job


def test_extract_follows_the_clock_and_cuts_the_file_at_start(
    api: Api, marketo: RunningMarketo
) -> None:
    clock = marketo.emulator.clock
    clock.freeze()
    a, b = make_leads(
        api,
        {"email": "a@example.com", "firstName": "Ada"},
        {"email": "b@example.com", "firstName": "Bo"},
    )
    sl = marketo.control("POST", "lists", {"name": "Export me"})["id"]
    api.ok("POST", f"/rest/v1/lists/{sl}/leads.json", json={"input": [{"id": a}, {"id": b}]})
    job = _export(api, filter={"staticListId": sl}, columnHeaderNames={"email": "Email Address"})
    assert job["status"] == "Created" and job["format"] == "CSV"
    export_id = job["exportId"]
    assert api.ok("POST", f"{EXPORT}/{export_id}/enqueue.json")[0]["status"] == "Queued"
    clock.advance(4)
    assert _status(api, export_id)["status"] == "Queued"
    not_ready = api.raw("GET", f"{EXPORT}/{export_id}/file.json")
    assert not_ready.status_code == 404 and not_ready.headers["content-type"].startswith(
        "text/plain"
    )
    clock.advance(1)
    assert _status(api, export_id)["status"] == "Processing"
    api.ok(
        "POST",
        "/rest/v1/leads.json",
        json={"input": [{"email": "a@example.com", "firstName": "Late"}]},
    )
    clock.advance(59)
    assert _status(api, export_id)["status"] == "Processing"
    clock.advance(1)
    done = _status(api, export_id)
    assert done["status"] == "Completed" and done["numberOfRecords"] == 2
    resp = api.raw("GET", f"{EXPORT}/{export_id}/file.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows == [
        ["id", "Email Address", "firstName"],
        [str(a), "a@example.com", "Ada"],
        [str(b), "b@example.com", "Bo"],
    ]  # cut at start: "Late" is not in it
    assert done["fileSize"] == len(resp.content)
    assert done["fileChecksum"] == "sha256:" + hashlib.sha256(resp.content).hexdigest()
    part = api.raw("GET", f"{EXPORT}/{export_id}/file.json", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == resp.content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(resp.content)}"


def test_step_through_the_control_plane_and_cancel(api: Api, marketo: RunningMarketo) -> None:
    job = _export(api)
    export_id = job["exportId"]
    api.ok("POST", f"{EXPORT}/{export_id}/enqueue.json")
    assert marketo.control("POST", "bulk/step", {"id": export_id})["status"] == "Processing"
    assert marketo.control("POST", "bulk/step", {"id": export_id})["status"] == "Completed"
    assert api.raw("GET", f"{EXPORT}/{export_id}/file.json").text == "id,email,firstName\n"
    other = _export(api)["exportId"]
    assert api.ok("POST", f"{EXPORT}/{other}/cancel.json")[0]["status"] == "Canceled"
    assert api.error("POST", f"{EXPORT}/{other}/enqueue.json") == "1029"


def test_extract_errors(api: Api, marketo: RunningMarketo) -> None:
    long_range = {"createdAt": {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-03-01T00:00:00Z"}}
    assert (
        api.error("POST", f"{EXPORT}/create.json", json={"fields": ["email"], "filter": long_range})
        == "1003"
    )
    assert (
        api.error(
            "POST",
            f"{EXPORT}/create.json",
            json={"fields": ["nope"], "filter": {"staticListId": 1}},
        )
        == "1006"
    )
    assert api.error("GET", f"{EXPORT}/no-such-job/status.json") == "1003"
    marketo.control("POST", "settings", {"bulk_max_queued": 1})
    first, second = _export(api)["exportId"], _export(api)["exportId"]
    api.ok("POST", f"{EXPORT}/{first}/enqueue.json")
    assert api.error("POST", f"{EXPORT}/{second}/enqueue.json") == "1029"


def _upload(api: Api, text: str, **params: Any) -> dict[str, Any]:
    body = api.call(
        "POST",
        "/bulk/v1/leads.json",
        params={"format": "csv", **params},
        files={"file": ("leads.csv", text.encode(), "text/csv")},
    )
    assert body["success"] is True, body
    [job] = body["result"]
    return job


def test_import_applies_rows_with_failures_and_warnings(api: Api, marketo: RunningMarketo) -> None:
    clock = marketo.emulator.clock
    clock.freeze()
    [existing] = make_leads(api, {"email": "old@example.com", "firstName": "Old"})
    sl = marketo.control("POST", "lists", {"name": "Imported"})["id"]
    text = (
        "email,firstName,leadScore\n"
        "old@example.com,Renamed,5\n"
        "new@example.com,New,7\n"
        "bad@example.com,Bad,seven\n"
        ",Nobody,1\n"
        f"long@example.com,{'x' * 300},1\n"
    )
    job = _upload(api, text, listId=sl)
    assert job["status"] == "Queued" and job["numOfLeadsProcessed"] == 0
    batch = job["batchId"]
    clock.advance(5)
    [job] = api.ok("GET", f"/bulk/v1/leads/batch/{batch}.json")
    assert job["status"] == "Importing"
    clock.advance(60)
    [job] = api.ok("GET", f"/bulk/v1/leads/batch/{batch}.json")
    assert (
        job["status"],
        job["numOfLeadsProcessed"],
        job["numOfRowsFailed"],
        job["numOfRowsWithWarning"],
    ) == ("Complete", 3, 2, 1)
    failures = list(
        csv.reader(io.StringIO(api.raw("GET", f"/bulk/v1/leads/batch/{batch}/failures.json").text))
    )
    assert failures[0] == ["email", "firstName", "leadScore", "Import Failure Reason"]
    assert [row[0] for row in failures[1:]] == ["bad@example.com", ""]
    warnings = list(
        csv.reader(io.StringIO(api.raw("GET", f"/bulk/v1/leads/batch/{batch}/warnings.json").text))
    )
    assert [row[0] for row in warnings[1:]] == ["long@example.com"]
    [old] = api.ok("GET", f"/rest/v1/lead/{existing}.json")
    assert old["firstName"] == "Renamed"
    members = api.ok("GET", f"/rest/v1/lists/{sl}/leads.json", params={"fields": "email"})
    assert {m["email"] for m in members} == {
        "old@example.com",
        "new@example.com",
        "long@example.com",
    }


def test_import_errors(api: Api, marketo: RunningMarketo) -> None:
    assert (
        api.error(
            "POST",
            "/bulk/v1/leads.json",
            params={"format": "csv"},
            files={"file": ("x.csv", b"email,nope\na@b.co,1\n", "text/csv")},
        )
        == "1006"
    )
    assert (
        api.error(
            "POST",
            "/bulk/v1/leads.json",
            params={"format": "xml"},
            files={"file": ("x.csv", b"email\na@b.co\n", "text/csv")},
        )
        == "1003"
    )
    marketo.control("POST", "settings", {"bulk_max_queued": 1})
    _upload(api, "email\na@example.com\n")
    assert (
        api.error(
            "POST",
            "/bulk/v1/leads.json",
            params={"format": "csv"},
            files={"file": ("x.csv", b"email\nb@b.co\n", "text/csv")},
        )
        == "1016"
    )


def test_export_job_list_by_status(api: Api, marketo: RunningMarketo) -> None:
    created, queued = _export(api)["exportId"], _export(api)["exportId"]
    api.ok("POST", f"{EXPORT}/{queued}/enqueue.json")
    everything = api.ok("GET", f"{EXPORT}.json")
    assert [j["exportId"] for j in everything] == [created, queued]
    only = api.ok("GET", f"{EXPORT}.json", params={"status": "Queued"})
    assert [j["exportId"] for j in only] == [queued]
