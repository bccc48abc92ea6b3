"""Swagger conformance: every served operation answers, in success and failure, as specified.

Every test of this package is checked against the vendor swagger already (the ``marketo``
fixture validates each recorded answer).  This module adds what a per-test check cannot say:
that *each* operation the emulator serves was exercised -- success and failure envelope -- and
validated, that the checker itself rejects wrong shapes, and that each erratum is still needed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from crm_bridge.connectors.marketo.emulator import RunningMarketo
from crm_bridge.connectors.marketo.emulator.emulator import _api_routes
from crm_bridge.connectors.marketo.emulator.web import MarketoRoute

from .conftest import Api, Recorder, make_leads
from .swagger import ERRATA, Answer, all_operations, operation, problems

NOT_IN_SWAGGER = {("DELETE", "/rest/v1/leads.json")}
"""Served because ``marketorestpython.delete_lead`` sends it; the swagger only has
``POST /rest/v1/leads/delete.json``."""


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def served_operations(marketo: RunningMarketo) -> set[tuple[str, str]]:
    """The swagger operations the emulator has a handler for."""
    routes = [r for r in _api_routes(marketo.emulator.ctx) if isinstance(r, MarketoRoute)]
    served = set()
    for method, path in all_operations():
        for r in routes:
            if _norm(r.path) == _norm(path) and method in r.handled:
                served.add((method, path))
    served |= {("GET", "/identity/oauth/token"), ("POST", "/identity/oauth/token")}
    return served


def _exercise(api: Api, marketo: RunningMarketo) -> list[tuple[str, str, dict[str, Any]]]:
    """Set up data and return one successful call per served operation."""
    marketo.emulator.clock.freeze()
    a, b, c = make_leads(
        api,
        {"email": "a@example.com", "firstName": "A"},
        {"email": "b@example.com"},
        {"email": "c@example.com"},
    )
    sl = marketo.control("POST", "lists", {"name": "L"})["id"]
    pid = marketo.control("POST", "programs", {"name": "P"})["id"]
    token = api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2000-01-01")[
        "nextPageToken"
    ]
    [export] = api.ok(
        "POST",
        "/bulk/v1/leads/export/create.json",
        json={"fields": ["email"], "filter": {"staticListId": sl}},
    )
    canceled = api.ok(
        "POST",
        "/bulk/v1/leads/export/create.json",
        json={"fields": ["email"], "filter": {"staticListId": sl}},
    )[0]["exportId"]
    [batch] = api.ok(
        "POST",
        "/bulk/v1/leads.json",
        params={"format": "csv"},
        files={"file": ("x.csv", b"email,leadScore\nn@example.com,1\nm@example.com,x\n")},
    )
    marketo.emulator.clock.advance(65)
    api.ok("POST", f"/bulk/v1/leads/export/{export['exportId']}/enqueue.json")
    marketo.emulator.clock.advance(65)
    e, bid = export["exportId"], batch["batchId"]
    opp = {"externalOpportunityId": "o-1", "name": "Deal"}
    role = {"externalOpportunityId": "o-1", "leadId": a, "role": "Champion"}
    ident = {
        "grant_type": "client_credentials",
        "client_id": marketo.client_id,
        "client_secret": marketo.client_secret,
    }
    return [
        ("GET", "/identity/oauth/token", {"params": ident}),
        ("POST", "/identity/oauth/token", {"params": ident}),
        ("POST", "/rest/v1/leads.json", {"json": {"input": [{"email": "a@example.com"}, {}]}}),
        (
            "GET",
            "/rest/v1/leads.json",
            {"params": {"filterType": "id", "filterValues": f"{a},{b}"}},
        ),
        (
            "POST",
            "/rest/v1/leads.json",
            {
                "params": {"_method": "GET"},
                "data": {"filterType": "email", "filterValues": "a@example.com"},
            },
        ),
        ("GET", f"/rest/v1/lead/{a}.json", {}),
        ("GET", "/rest/v1/leads/describe.json", {}),
        ("GET", "/rest/v1/leads/describe2.json", {}),
        ("POST", f"/rest/v1/lists/{sl}/leads.json", {"json": {"input": [{"id": a}, {"id": 999}]}}),
        ("GET", f"/rest/v1/lists/{sl}/leads/ismember.json", {"params": {"id": f"{a},{b}"}}),
        ("GET", f"/rest/v1/lists/{sl}/leads.json", {}),
        ("GET", f"/rest/v1/list/{sl}/leads.json", {}),
        ("DELETE", f"/rest/v1/lists/{sl}/leads.json", {"params": {"id": f"{a},{b}"}}),
        ("GET", "/rest/v1/lists.json", {}),
        ("GET", f"/rest/v1/lists/{sl}.json", {}),
        (
            "POST",
            f"/rest/v1/programs/{pid}/members/status.json",
            {"json": {"statusName": "Member", "input": [{"leadId": a}, {"leadId": 999}]}},
        ),
        (
            "GET",
            f"/rest/v1/programs/{pid}/members.json",
            {"params": {"filterType": "leadId", "filterValues": str(a)}},
        ),
        ("GET", f"/rest/v1/leads/programs/{pid}.json", {}),
        ("POST", f"/rest/v1/leads/{a}/merge.json", {"params": {"leadId": b}}),
        ("POST", "/rest/v1/leads/delete.json", {"json": {"input": [{"id": c}, {"id": 999}]}}),
        (
            "GET",
            "/rest/v1/activities/pagingtoken.json",
            {"params": {"sinceDatetime": "2024-01-01"}},
        ),
        ("GET", "/rest/v1/activities/types.json", {}),
        (
            "GET",
            "/rest/v1/activities.json",
            {"params": {"nextPageToken": token, "activityTypeIds": "12,13,24,32"}},
        ),
        (
            "GET",
            "/rest/v1/activities/leadchanges.json",
            {"params": {"nextPageToken": token, "fields": "firstName,email"}},
        ),
        ("GET", "/rest/v1/activities/deletedleads.json", {"params": {"nextPageToken": token}}),
        ("GET", "/rest/v1/opportunities/describe.json", {}),
        ("POST", "/rest/v1/opportunities.json", {"json": {"input": [opp, {"name": "no key"}]}}),
        (
            "GET",
            "/rest/v1/opportunities.json",
            {"params": {"filterType": "externalOpportunityId", "filterValues": "o-1"}},
        ),
        ("GET", "/rest/v1/opportunities/roles/describe.json", {}),
        ("POST", "/rest/v1/opportunities/roles.json", {"json": {"input": [role]}}),
        (
            "GET",
            "/rest/v1/opportunities/roles.json",
            {"params": {"filterType": "leadId", "filterValues": str(a)}},
        ),
        ("POST", "/rest/v1/opportunities/roles/delete.json", {"json": {"input": [role]}}),
        ("POST", "/rest/v1/opportunities/delete.json", {"json": {"input": [opp]}}),
        ("GET", "/rest/v1/companies/describe.json", {}),
        (
            "POST",
            "/rest/v1/companies.json",
            {
                "json": {
                    "input": [{"externalCompanyId": "x", "company": "X"}, {"company": "no key"}]
                }
            },
        ),
        (
            "GET",
            "/rest/v1/companies.json",
            {"params": {"filterType": "externalCompanyId", "filterValues": "x"}},
        ),
        (
            "POST",
            "/rest/v1/companies/delete.json",
            {"json": {"input": [{"externalCompanyId": "x"}]}},
        ),
        ("GET", f"/bulk/v1/leads/export/{e}/status.json", {}),
        ("GET", "/bulk/v1/leads/export.json", {"params": {"status": "Completed,Canceled"}}),
        ("GET", f"/bulk/v1/leads/export/{e}/file.json", {}),
        ("POST", f"/bulk/v1/leads/export/{canceled}/cancel.json", {}),
        (
            "POST",
            "/bulk/v1/leads/export/create.json",
            {"json": {"fields": ["email"], "filter": {"staticListId": sl}}},
        ),
        ("POST", f"/bulk/v1/leads/export/{canceled}/enqueue.json", {}),  # 1029: canceled
        ("GET", f"/bulk/v1/leads/batch/{bid}.json", {}),
        ("GET", f"/bulk/v1/leads/batch/{bid}/failures.json", {}),
        ("GET", f"/bulk/v1/leads/batch/{bid}/warnings.json", {}),
        (
            "POST",
            "/bulk/v1/leads.json",
            {"params": {"format": "csv"}, "files": {"file": ("y.csv", b"email\nq@example.com\n")}},
        ),
        ("POST", f"/bulk/v1/leads/export/{e}/enqueue.json", {}),  # 1029: already completed
    ]


def test_every_served_operation_conforms_in_success_and_failure(
    api: Api, marketo: RunningMarketo, marketo_recorder: Recorder
) -> None:
    calls = _exercise(api, marketo)
    for method, path, kwargs in calls:
        resp = api.raw(method, path, **kwargs)
        assert resp.status_code == 200, (method, path, resp.text)
        if path.startswith("/identity"):
            continue
        # The failure envelope of the same operation: a token the instance never issued.
        bad = httpx.request(
            method, api.base + path, headers={"Authorization": "Bearer x:emu"}, timeout=30, **kwargs
        )
        assert bad.status_code == 200 and bad.json()["errors"][0]["code"] == "601", path
    answers = marketo_recorder.peek()
    checked: dict[tuple[str, str], set[bool]] = {}
    for answer in answers:
        op = operation(answer)
        if op is None:
            assert (answer.method, answer.path) in NOT_IN_SWAGGER, answer.path
            continue
        if "json" in answer.content_type:
            checked.setdefault((op[0], op[1]), set()).add(
                bool(json.loads(answer.body).get("success", True))
            )
        assert not problems(answer), problems(answer)
    served = served_operations(marketo)
    missing = sorted(served - set(checked))
    assert not missing, f"served but never exercised: {missing}"
    no_failure = sorted(
        op for op in served if False not in checked[op] and not op[1].startswith("/identity")
    )
    assert not no_failure, f"no failure envelope checked: {no_failure}"
    file_ops = {
        op for op in served if op[1].endswith(("file.json", "failures.json", "warnings.json"))
    }
    assert all(True in checked.get(op, {False}) or op in file_ops for op in served)
    assert len(served) >= 45


def test_the_checker_rejects_wrong_shapes() -> None:
    def answer(body: dict[str, Any], path: str = "/rest/v1/leads.json") -> Answer:
        return Answer("GET", path, "", b"", "", 200, "application/json", json.dumps(body).encode())

    good = {
        "requestId": "a#1",
        "success": False,
        "errors": [{"code": "601", "message": "m"}],
        "warnings": [],
        "result": [],
    }
    assert problems(answer(good)) == []
    assert problems(answer({**good, "errors": [{"code": 601, "message": "m"}]}))  # int code
    assert problems(answer({k: v for k, v in good.items() if k != "requestId"}))
    assert problems(answer({**good, "result": [{"id": "seven"}]}))
    members = {
        "requestId": "a#1",
        "success": True,
        "errors": [],
        "warnings": [],
        "result": [{"leadId": 1}],
    }
    assert problems(answer(members, "/rest/v1/programs/1/members.json"))  # seq etc. missing


def test_each_erratum_is_needed(
    api: Api, marketo: RunningMarketo, marketo_recorder: Recorder
) -> None:
    token = api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2000-01-01")[
        "nextPageToken"
    ]
    [lead] = make_leads(api, {"email": "e@example.com"})
    api.ok(
        "POST",
        "/rest/v1/leads.json",
        json={"input": [{"email": "e@example.com", "firstName": "First"}]},
    )
    api.get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds="12")
    api.get("/rest/v1/activities/leadchanges.json", nextPageToken=token, fields="firstName")
    api.ok("POST", "/rest/v1/opportunities.json", json={"input": [{"name": "no key"}]})
    assert lead
    answers = marketo_recorder.peek()
    assert all(not problems(a) for a in answers)
    for name in ERRATA:
        assert any(problems(a, without=name) for a in answers), f"erratum not needed: {name}"
