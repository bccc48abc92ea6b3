"""The webhooks journal on the emulator, over real sockets: subscriptions, entries, files, faults.

Writes go through hubspot-api-client (as an integration or as a person) and the journal is read
with plain httpx and an app client-credentials token, the way HubSpot's guide describes it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicMergeInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot

SCOPES = (
    "developer.webhooks_journal.read developer.webhooks_journal.subscriptions.read "
    "developer.webhooks_journal.subscriptions.write crm.objects.contacts.read "
    "crm.objects.deals.read"
)
JOURNAL = "/webhooks-journal/journal/2026-03"
SUBS = "/webhooks-journal/subscriptions/2026-03"


def app_token(hs: RunningHubSpot, scope: str = SCOPES) -> str:
    resp = httpx.post(
        f"{hs.base_url}/oauth/v1/token",
        data={
            "grant_type": "client_credentials",
            "client_id": hs.client_id,
            "client_secret": hs.client_secret,
            "scope": scope,
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "refresh_token" not in body and body["expires_in"] > 0
    return str(body["access_token"])


def api(hs: RunningHubSpot, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, f"{hs.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, **kw
    )


def subscribe(hs: RunningHubSpot, token: str, type_id: str = "0-1", **extra: Any) -> Any:
    body = {
        "subscriptionType": "OBJECT",
        "portalId": hs.portal_id,
        "objectTypeId": type_id,
        "actions": ["CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE"],
        **extra,
    }
    resp = api(hs, token, "POST", SUBS, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def entries(hs: RunningHubSpot, token: str, after: str | None = None) -> list[dict[str, Any]]:
    """Every entry after ``after`` (from the earliest when None): metadata plus its events."""
    out: list[dict[str, Any]] = []
    resp = api(
        hs,
        token,
        "GET",
        f"{JOURNAL}/earliest" if after is None else f"{JOURNAL}/offset/{after}/next",
    )
    while resp.status_code == 200:
        meta = resp.json()
        events = httpx.get(meta["url"]).json()
        out.append({**meta, "events": events})
        resp = api(hs, token, "GET", f"{JOURNAL}/offset/{meta['currentOffset']}/next")
    assert resp.status_code == 204 and not resp.content
    return out


def create_contact(hs: RunningHubSpot, email: str, token: str | None = None) -> str:
    made = hs.client(access_token=token).crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": email, "firstname": "A"})
    )
    return str(made.id)


def test_client_credentials_token_subscribes_and_lists(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    sub = subscribe(hubspot, token, properties=["firstname"])
    again = subscribe(hubspot, token, properties=["firstname", "lastname"])  # create or update

    listed = api(hubspot, token, "GET", SUBS).json()["results"]

    assert again["id"] == sub["id"] and again["properties"] == ["firstname", "lastname"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert listed[0]["appId"] == hubspot.app_id and listed[0]["objectTypeId"] == "0-1"
    assert api(hubspot, token, "DELETE", f"{SUBS}/{sub['id']}").status_code == 204
    assert api(hubspot, token, "GET", SUBS).json()["results"] == []
    assert api(hubspot, token, "DELETE", f"{SUBS}/{sub['id']}").status_code == 404


def test_journal_refuses_tokens_without_its_scopes(hubspot: RunningHubSpot) -> None:
    private = api(hubspot, hubspot.access_token, "GET", f"{JOURNAL}/latest")
    narrow = app_token(hubspot, "developer.webhooks_journal.read")
    no_object_scope = api(
        hubspot,
        app_token(hubspot, "developer.webhooks_journal.subscriptions.write"),
        "POST",
        SUBS,
        json={"portalId": hubspot.portal_id, "objectTypeId": "0-1", "actions": ["CREATE"]},
    )

    assert private.status_code == 403 and private.json()["category"] == "MISSING_SCOPES"
    assert private.json()["errors"][0]["context"]["requiredGranularScopes"] == [
        "developer.webhooks_journal.read"
    ]
    assert api(hubspot, narrow, "GET", SUBS).status_code == 403
    assert api(hubspot, narrow, "GET", f"{JOURNAL}/latest").status_code == 204
    assert no_object_scope.status_code == 403
    assert "crm.objects.contacts.read" in no_object_scope.text
    bad = httpx.post(
        f"{hubspot.base_url}/oauth/v1/token",
        data={
            "grant_type": "client_credentials",
            "client_id": hubspot.client_id,
            "client_secret": "wrong",
        },
    )
    assert bad.status_code == 400 and bad.json()["status"] == "BAD_CLIENT_SECRET"


def test_subscription_validation(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    base = {"portalId": hubspot.portal_id, "objectTypeId": "0-1", "actions": ["CREATE"]}
    for bad in (
        {**base, "portalId": 1},
        {**base, "objectTypeId": "contacts"},
        {**base, "actions": ["ASSOCIATION_ADDED"]},
        {**base, "subscriptionType": "LIST_MEMBERSHIP"},
    ):
        resp = api(hubspot, token, "POST", SUBS, json=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["category"] == "VALIDATION_ERROR"


def test_each_write_call_is_one_entry_naming_who_wrote(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    ours = create_contact(hubspot, "ours@x.io")
    person = hubspot.emulator.as_user("mark.marketer@example.com")
    hubspot.client(access_token=person).crm.contacts.basic_api.update(
        ours, SimplePublicObjectInput(properties={"firstname": "Zed"})
    )
    batch = hubspot.client().crm.contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"b{i}@x.io"})
                for i in range(3)
            ]
        )
    )
    hubspot.client().crm.contacts.basic_api.archive(ours)

    got = entries(hubspot, token)

    assert [[e["action"] for e in entry["events"]] for entry in got] == [
        ["CREATE"],
        ["UPDATE"],
        ["CREATE", "CREATE", "CREATE"],
        ["DELETE"],
    ]
    first, edit, many, gone = (entry["events"] for entry in got)
    assert first[0]["changeSource"] == "INTEGRATION"
    assert first[0]["sourceId"] == str(hubspot.private_app_id)
    assert first[0]["objectId"] == int(ours) and first[0]["objectTypeId"] == "0-1"
    assert edit[0]["changeSource"] == "CRM_UI" and edit[0]["sourceId"].startswith("userId:")
    assert {e["objectId"] for e in many} == {int(r.id) for r in batch.results}
    assert gone[0]["objectId"] == int(ours)
    ids = [e["eventId"] for entry in got for e in entry["events"]]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(e["occurredAt"], int) for entry in got for e in entry["events"])


def test_property_subscription_has_one_event_per_listed_property(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token, properties=["firstname", "lastname"], actions=["UPDATE"])
    rid = create_contact(hubspot, "p@x.io")
    contacts = hubspot.client().crm.contacts.basic_api
    contacts.update(
        rid, SimplePublicObjectInput(properties={"firstname": "B", "lastname": "C", "phone": "1"})
    )
    contacts.update(rid, SimplePublicObjectInput(properties={"phone": "2"}))  # not listed
    contacts.update(rid, SimplePublicObjectInput(properties={"firstname": "B"}))  # no change

    (entry,) = entries(hubspot, token)

    assert [(e["propertyName"], e["propertyValue"]) for e in entry["events"]] == [
        ("firstname", "B"),
        ("lastname", "C"),
    ]


def test_merge_and_restore_are_journaled(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token, actions=["MERGE", "RESTORE"])
    keep, lose, gone = (create_contact(hubspot, f"{n}@x.io") for n in ("keep", "lose", "gone"))
    hubspot.client().crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=keep, object_id_to_merge=lose)
    )
    hubspot.client().crm.contacts.basic_api.archive(gone)
    restored = hubspot.control(
        "POST",
        "restore",
        {"objectType": "contacts", "id": gone, "user_email": "mark.marketer@example.com"},
    )

    merged, back = (entry["events"] for entry in entries(hubspot, token))

    assert merged[0]["action"] == "MERGE"
    assert merged[0]["primaryObjectId"] == int(keep) and merged[0]["mergedObjectIds"] == [int(lose)]
    assert back[0]["action"] == "RESTORE" and back[0]["objectId"] == int(gone)
    assert back[0]["changeSource"] == "CRM_UI"
    assert restored["archived"] is False
    assert hubspot.client().crm.contacts.basic_api.get_by_id(gone).id == gone


def test_offsets_walk_forward_and_latest_is_the_newest(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    assert api(hubspot, token, "GET", f"{JOURNAL}/earliest").status_code == 204
    subscribe(hubspot, token)
    create_contact(hubspot, "a@x.io")
    create_contact(hubspot, "b@x.io")

    first, second = entries(hubspot, token)
    latest = api(hubspot, token, "GET", f"{JOURNAL}/latest").json()
    after_first = entries(hubspot, token, after=first["currentOffset"])

    assert latest["currentOffset"] == second["currentOffset"]
    assert [e["currentOffset"] for e in after_first] == [second["currentOffset"]]
    assert entries(hubspot, token, after=second["currentOffset"]) == []
    assert latest["expiresAt"].endswith("Z")


def test_file_url_is_presigned_expires_and_refuses_authorization(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    create_contact(hubspot, "f@x.io")
    url = api(hubspot, token, "GET", f"{JOURNAL}/latest").json()["url"]

    with_auth = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    tampered = httpx.get(url.replace("signature=", "signature=0"))
    fine = httpx.get(url)
    hubspot.emulator.clock.advance(301)
    late = httpx.get(url)

    assert url.startswith(hubspot.base_url)
    assert with_auth.status_code == 400 and "InvalidArgument" in with_auth.text
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    assert fine.status_code == 200 and fine.json()[0]["action"] == "CREATE"
    assert late.status_code == 403 and "Request has expired" in late.text


def test_offsets_older_than_three_days_are_404(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    create_contact(hubspot, "old@x.io")
    old = api(hubspot, token, "GET", f"{JOURNAL}/latest").json()["currentOffset"]
    hubspot.emulator.clock.advance(2 * 86400)
    create_contact(hubspot, "newer@x.io")
    token = app_token(hubspot)  # app tokens live 30 minutes, like the others
    assert api(hubspot, token, "GET", f"{JOURNAL}/offset/{old}/next").status_code == 200

    hubspot.emulator.clock.advance(86400 + 1)
    token = app_token(hubspot)

    gone = api(hubspot, token, "GET", f"{JOURNAL}/offset/{old}/next")
    assert gone.status_code == 404 and gone.json()["category"] == "OBJECT_NOT_FOUND"
    assert len(entries(hubspot, token)) == 1  # the newer one is still kept
    unknown = api(hubspot, token, "GET", f"{JOURNAL}/offset/not-an-offset/next")
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("fault", "shape"),
    [
        ({"duplicate_next": 1}, [["a"], ["a"], ["b"]]),
        ({"drop_next": 1}, [["b"]]),
    ],
)
def test_duplicate_and_drop_faults(
    hubspot: RunningHubSpot, fault: dict[str, int], shape: list[list[str]]
) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    hubspot.control("POST", "journal", fault)
    a, b = create_contact(hubspot, "a@x.io"), create_contact(hubspot, "b@x.io")
    names = {int(a): "a", int(b): "b"}

    got = entries(hubspot, token)

    assert [[names[e["objectId"]] for e in entry["events"]] for entry in got] == shape
    if "duplicate_next" in fault:
        assert got[0]["events"] == got[1]["events"]  # same event ids under a second offset
        assert got[0]["currentOffset"] != got[1]["currentOffset"]
    else:
        assert hubspot.control("GET", "journal")["dropped"] == 1


def test_reorder_and_early_expiry_faults(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    hubspot.control("POST", "journal", {"reorder_next": 1})
    hubspot.client().crm.contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"r{i}@x.io"})
                for i in range(3)
            ]
        )
    )
    (entry,) = entries(hubspot, token)
    ids = [e["eventId"] for e in entry["events"]]
    assert ids == sorted(ids, reverse=True)

    status = hubspot.control("POST", "journal", {"expire_all": True})

    assert status["entries"] == 0 and status["expired"] == 1
    gone = api(hubspot, token, "GET", f"{JOURNAL}/offset/{entry['currentOffset']}/next")
    assert gone.status_code == 404
    assert api(hubspot, token, "GET", f"{JOURNAL}/latest").status_code == 204


def test_journal_calls_are_counted_and_rate_limited(hubspot: RunningHubSpot) -> None:
    token = app_token(hubspot)
    subscribe(hubspot, token)
    create_contact(hubspot, "c@x.io")
    entries(hubspot, token)
    counts = hubspot.emulator.calls.snapshot()
    # subscribe + earliest + next(204) = 3 API calls; the file is storage, counted apart
    assert counts["journal"] == 3 and counts["journal_files"] == 1

    hubspot.emulator.configure_rate_limits(enabled=True, burst_limit=2, reset=True)
    statuses = [api(hubspot, token, "GET", f"{JOURNAL}/latest").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    url = api(hubspot, app_token(hubspot), "GET", f"{JOURNAL}/latest").json()["url"]
    assert httpx.get(url).status_code == 200  # storage is not behind the API limits
