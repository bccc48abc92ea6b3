"""The independent client ``marketorestpython`` against the emulator on a real socket.

The client builds ``https://<munchkin>.mktorest.com`` itself; :meth:`RunningMarketo.client` sets
its ``host`` attribute (where every call of the client goes) to the emulator's base URL.  No code
of the client is replaced.  Its fixed 5-calls-a-second pacing (real ``time.sleep``) is the
client's own; the emulator's limits run on the emulator clock.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from marketorestpython.client import MarketoClient
from marketorestpython.helper.exceptions import MarketoException

from crm_bridge.connectors.marketo.emulator import RunningMarketo


@pytest.fixture
def mc(marketo: RunningMarketo) -> MarketoClient:
    return marketo.client()


def _upsert(mc: MarketoClient, leads: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    return mc.execute(method="create_update_leads", leads=leads, **kw)  # type: ignore[no-any-return]


def test_create_update_and_get_by_filter_type(mc: MarketoClient) -> None:
    created = _upsert(
        mc,
        [
            {"email": "ada@example.com", "firstName": "Ada"},
            {"email": "grace@example.com", "firstName": "Grace"},
        ],
    )
    assert [c["status"] for c in created] == ["created", "created"]
    updated = _upsert(
        mc,
        [{"email": "ada@example.com", "lastName": "Lovelace"}],
        action="updateOnly",
        lookupField="email",
    )
    assert updated == [{"id": created[0]["id"], "status": "updated"}]
    skipped = _upsert(mc, [{"email": "ada@example.com"}], action="createOnly")
    assert skipped[0]["reasons"][0]["code"] == "1005"
    found = mc.execute(
        method="get_multiple_leads_by_filter_type",
        filterType="email",
        filterValues=["ada@example.com", "grace@example.com"],
        fields=["email", "firstName", "lastName"],
    )
    assert [(f["firstName"], f["lastName"]) for f in found] == [
        ("Ada", "Lovelace"),
        ("Grace", None),
    ]
    [one] = mc.execute(method="get_lead_by_id", id=created[1]["id"], fields=["email"])
    assert one == {"id": created[1]["id"], "email": "grace@example.com"}


def test_filter_type_paging_through_the_client(mc: MarketoClient, marketo: RunningMarketo) -> None:
    marketo.control("POST", "fields", {"name": "segment", "dataType": "string"})
    ids = [
        c["id"]
        for c in _upsert(mc, [{"email": f"p{i}@example.com", "segment": "Acme"} for i in range(5)])
    ]
    found = mc.execute(
        method="get_multiple_leads_by_filter_type",
        filterType="segment",
        filterValues="Acme",
        batchSize=2,
    )
    assert [f["id"] for f in found] == ids


def test_lead_changes_with_a_paging_token(mc: MarketoClient) -> None:
    token = mc.execute(method="get_paging_token", sinceDatetime="2000-01-01T00:00:00Z")
    created = _upsert(mc, [{"email": f"c{i}@example.com", "firstName": "A"} for i in range(3)])
    _upsert(mc, [{"email": "c0@example.com", "firstName": "B"}])
    changes = mc.execute(
        method="get_lead_changes", fields=["firstName"], nextPageToken=token, batchSize=2
    )
    assert [c["activityTypeId"] for c in changes] == [12, 12, 12, 13]
    assert changes[-1]["leadId"] == created[0]["id"]
    assert changes[-1]["fields"][0]["oldValue"] == "A"
    again = mc.execute(
        method="get_lead_changes", fields=["firstName"], sinceDatetime="2000-01-01T00:00:00Z"
    )
    assert len(again) == 4


def test_deleted_leads(mc: MarketoClient) -> None:
    ids = [c["id"] for c in _upsert(mc, [{"email": "d1@example.com"}, {"email": "d2@example.com"}])]
    deleted = mc.execute(method="delete_lead", id=[ids[0]])
    assert deleted == [{"id": ids[0], "status": "deleted"}]
    gone = mc.execute(method="get_deleted_leads", sinceDatetime="2000-01-01T00:00:00Z")
    assert [(g["leadId"], g["activityTypeId"]) for g in gone] == [(ids[0], 37)]


def test_list_add_remove_and_membership(mc: MarketoClient, marketo: RunningMarketo) -> None:
    ids = [c["id"] for c in _upsert(mc, [{"email": "l1@example.com"}, {"email": "l2@example.com"}])]
    list_id = marketo.control("POST", "lists", {"name": "Reason: no budget"})["id"]
    # (get_list_by_id/by_name use the Asset API, which this emulator does not serve)
    [info] = mc.execute(method="get_multiple_lists", name="Reason: no budget")
    assert info["id"] == list_id
    added = mc.execute(method="add_leads_to_list", listId=list_id, id=ids)
    assert [a["status"] for a in added] == ["added", "added"]
    members = mc.execute(method="get_multiple_leads_by_list_id", listId=list_id, fields=["email"])
    assert [m["email"] for m in members] == ["l1@example.com", "l2@example.com"]
    removed = mc.execute(method="remove_leads_from_list", listId=list_id, id=[ids[0]])
    assert removed == [{"id": ids[0], "status": "removed"}]
    member = mc.execute(method="member_of_list", listId=list_id, id=ids)
    assert [m["status"] for m in member] == ["notmemberof", "memberof"]


def test_merge(mc: MarketoClient) -> None:
    win, lose = (
        c["id"]
        for c in _upsert(
            mc, [{"email": "w@example.com"}, {"email": "l@example.com", "title": "CMO"}]
        )
    )
    mc.execute(method="merge_lead", id=win, leadIds=[lose])
    [winner] = mc.execute(method="get_lead_by_id", id=win, fields=["email", "title"])
    assert (winner["email"], winner["title"]) == ("w@example.com", "CMO")
    assert mc.execute(method="get_lead_by_id", id=lose) == []


def test_describe_types_and_activities(mc: MarketoClient, marketo: RunningMarketo) -> None:
    described = mc.execute(method="describe")
    assert any(f["rest"]["name"] == "email" for f in described)
    assert mc.execute(method="describe2")[0]["name"] == "API Lead"
    types = {t["id"] for t in mc.execute(method="get_activity_types")}
    assert {1, 2, 12, 13, 37} <= types
    [lead] = _upsert(mc, [{"email": "e@example.com"}])
    marketo.control(
        "POST",
        "activities",
        {"leadId": lead["id"], "type": "visit_webpage", "primaryAttributeValue": "/pricing"},
    )
    visits = mc.execute(
        method="get_lead_activities", activityTypeIds=["1"], sinceDatetime="2000-01-01T00:00:00Z"
    )
    assert [(v["leadId"], v["primaryAttributeValue"]) for v in visits] == [(lead["id"], "/pricing")]


def test_rate_limit_606(marketo: RunningMarketo) -> None:
    marketo.emulator.clock.freeze()
    marketo.control("POST", "settings", {"rate_limit_calls": 2})
    mc = marketo.client(max_retry_time=0)  # the client's backoff gives up at once
    mc.execute(method="describe")
    mc.execute(method="describe2")
    with pytest.raises(Exception) as exc:  # the client re-raises MarketoException as Exception
        mc.execute(method="describe")
    assert exc.value.args[0]["code"] == "606"
    marketo.emulator.clock.advance(20)  # the window slides on the emulator clock
    assert mc.execute(method="describe")


def test_client_retry_after_606_loses_its_token(marketo: RunningMarketo) -> None:
    """A finding about the client, kept as a test: its backoff retry re-sends the call without
    the token (it pops ``access_token`` from the argument dict it then reuses), so a retried
    606 comes back 600 -- the emulator checks auth on every retry, as the vendor does."""
    marketo.control(
        "POST",
        "faults",
        {"path": "describe2", "status": 200, "body": {"marketo_error": "606"}, "times": 1},
    )
    mc = marketo.client(max_retry_time=30)
    with pytest.raises(Exception) as exc:
        mc.execute(method="describe2")
    assert exc.value.args[0]["code"] == "600"
    assert marketo.control("GET", "calls")["leads"] == 2  # the 606, then the token-less retry


def test_opportunities_and_companies(mc: MarketoClient, marketo: RunningMarketo) -> None:
    synced = mc.execute(
        method="create_update_opportunities",
        input=[{"externalOpportunityId": "o-1", "name": "Deal"}],
    )
    assert synced[0]["status"] == "created"
    [opp] = mc.execute(
        method="get_opportunities",
        filterType="externalOpportunityId",
        filterValues=["o-1"],
        fields=["name"],
    )
    assert opp["name"] == "Deal"
    companies = mc.execute(
        method="create_update_companies", input=[{"externalCompanyId": "acme", "company": "Acme"}]
    )
    assert companies[0]["status"] == "created"
    marketo.control("POST", "settings", {"native_crm_sync": True})
    with pytest.raises(Exception) as exc:
        mc.execute(
            method="create_update_opportunities",
            input=[{"externalOpportunityId": "o-2", "name": "x"}],
        )
    assert exc.value.args[0]["code"] == "1018"


# import_lead opens the upload and never closes it: the client's leak, not the emulator's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_bulk_export_and_import(mc: MarketoClient, marketo: RunningMarketo, tmp_path: Path) -> None:
    marketo.emulator.clock.freeze()
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("email,firstName\nimp1@example.com,Imp\nimp2@example.com,Ort\n")
    [job] = mc.execute(method="import_lead", format="csv", file=str(csv_file))
    assert job["status"] == "Queued"
    marketo.emulator.clock.advance(65)
    [status] = mc.execute(method="get_import_lead_status", id=job["batchId"])
    assert status["status"] == "Complete" and status["numOfLeadsProcessed"] == 2
    failures = mc.execute(method="get_import_failure_file", id=job["batchId"])
    assert failures == "email,firstName,Import Failure Reason\n"
    stamp = marketo.emulator.clock.now()
    start = stamp.replace(hour=0, minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = stamp.replace(hour=23, minute=59, second=59).strftime("%Y-%m-%dT%H:%M:%SZ")
    [export] = mc.execute(
        method="create_leads_export_job",
        fields=["email", "firstName"],
        filters={"createdAt": {"startAt": start, "endAt": end}},
    )
    mc.execute(method="enqueue_leads_export_job", job_id=export["exportId"])
    marketo.emulator.clock.advance(65)
    [done] = mc.execute(method="get_leads_export_job_status", job_id=export["exportId"])
    assert done["status"] == "Completed" and done["numberOfRecords"] == 2
    data = mc.execute(method="get_leads_export_job_file", job_id=export["exportId"])
    assert data == b"email,firstName\nimp1@example.com,Imp\nimp2@example.com,Ort\n"
    gc.collect()  # the leaked upload handle is reported here, not in a later test


def test_client_errors_carry_the_vendor_code(mc: MarketoClient) -> None:
    with pytest.raises(Exception) as exc:
        mc.execute(
            method="get_multiple_leads_by_filter_type", filterType="nope", filterValues=["x"]
        )
    assert exc.value.args[0]["code"] == "1006"
    with pytest.raises(Exception) as exc:
        mc.execute(
            method="get_multiple_leads_by_filter_type", filterType="lastName", filterValues=["x"]
        )
    assert exc.value.args[0]["code"] == "1011"
    assert issubclass(MarketoException, Exception)
