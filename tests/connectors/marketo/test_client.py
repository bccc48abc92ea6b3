"""MarketoClient and the writer against respx: tokens, envelope errors, budget, result order.

Every answer is the vendor's HTTP-200 envelope; time is a FakeClock, so a back-off is a recorded
sleep, never a real one.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.connector import Delete, Upsert
from crm_bridge.connectors.marketo import MarketoConnector, MarketoSettings
from crm_bridge.connectors.marketo.client import MAX_URI, InstanceBudget, MarketoClient
from crm_bridge.connectors.marketo.errors import seconds_to_central_midnight
from crm_bridge.errors import AuthError, CrmBridgeError, RateLimitedError
from crm_bridge.http import FakeClock

BASE = "https://123-abc-456.mktorest.com"
TOKEN_URL = f"{BASE}/identity/oauth/token"
SECRET = "s3cr3t-sentinel-value"
DESCRIBE = f"{BASE}/rest/v1/leads/describe.json"


def settings(**overrides: Any) -> MarketoSettings:
    values: dict[str, Any] = {
        "base_url": f"{BASE}/rest",
        "client_id": "cid",
        "client_secret": SecretStr(SECRET),
        "fields": ["email", "firstName"],
    }
    values.update(overrides)
    return MarketoSettings(**values)


def ok(result: list[Any] | None = None, **extra: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"requestId": "a#1", "success": True, "result": result or [], **extra}
    )


def err(code: str, message: str = "nope") -> httpx.Response:
    body = {"requestId": "a#2", "success": False, "errors": [{"code": code, "message": message}]}
    return httpx.Response(200, json=body)


def token(value: str = "tok-1", expires_in: int = 3599) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": value,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": "api@example.com",
        },
    )


def make(clock: FakeClock, **overrides: Any) -> MarketoClient:
    s = settings(**overrides)
    return MarketoClient(s, calls=Counter(), clock=clock, budget=InstanceBudget(s, clock))


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 3, 5, 15, 0, tzinfo=UTC))


def test_the_token_is_cached_until_it_is_due_and_then_fetched_again(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    grant = router.post(TOKEN_URL).mock(side_effect=[token("tok-1", 100), token("tok-2")])
    api = router.get(DESCRIBE).mock(return_value=ok())
    client = make(clock)
    client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert grant.call_count == 1
    clock.advance(95)  # past 90 % of the 100 s the identity service said were left
    client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert grant.call_count == 2
    assert [c.request.headers["Authorization"] for c in api.calls] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    form = dict(httpx.QueryParams(grant.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": SECRET}
    assert client.calls == Counter({"leads": 3, "identity": 2})


@pytest.mark.parametrize("code", ["601", "602"])
def test_an_expired_or_invalid_token_is_refreshed_and_the_call_resent_once(
    router: respx.MockRouter, code: str, clock: FakeClock
) -> None:
    grant = router.post(TOKEN_URL).mock(side_effect=[token("old"), token("new")])
    api = router.get(DESCRIBE).mock(side_effect=[err(code), ok([{"rest": {"name": "email"}}])])
    client = make(clock)
    body = client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert body["result"] == [{"rest": {"name": "email"}}]
    assert grant.call_count == 2 and api.call_count == 2
    assert api.calls[1].request.headers["Authorization"] == "Bearer new"
    assert clock.sleeps == []  # a token refresh is resent at once


def test_a_token_refused_again_after_the_refresh_is_an_auth_error(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(return_value=err("601", "Access token invalid"))
    with pytest.raises(AuthError) as caught:
        make(clock).send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert api.call_count == 2
    assert "601" in str(caught.value) and SECRET not in str(caught.value)


def test_bad_client_credentials_are_an_auth_error_without_the_secret(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            401, json={"error": "invalid_client", "error_description": f"Bad {SECRET}"}
        )
    )
    with pytest.raises(AuthError) as caught:
        make(clock).send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    chain: list[BaseException] = []
    exc: BaseException | None = caught.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert all(SECRET not in f"{e!s} {e!r}" for e in chain)


def test_606_backs_off_for_the_window_on_the_injected_clock(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(side_effect=[err("606"), err("606"), ok()])
    make(clock, rate_limit_wait_seconds=20).send(
        "GET", "/rest/v1/leads/describe.json", idempotent=True
    )
    assert api.call_count == 3
    assert clock.sleeps == [20.0, 20.0]


def test_615_backs_off_briefly_and_a_non_idempotent_create_is_still_resent(
    router: respx.MockRouter,
    clock: FakeClock,
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.post(f"{BASE}/rest/v1/leads.json").mock(
        side_effect=[err("615"), ok([{"id": 7, "status": "created"}])]
    )
    make(clock).send("POST", "/rest/v1/leads.json", json={"input": []}, idempotent=False)
    assert api.call_count == 2 and clock.sleeps == [1.0]


def test_607_stops_at_once_with_the_wait_until_central_midnight(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(return_value=err("607", "Daily quota reached"))
    with pytest.raises(RateLimitedError) as caught:
        make(clock).send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert api.call_count == 1 and clock.sleeps == []
    # 15:00 UTC on 5 March is 09:00 in Chicago (CST): 15 hours to the reset.
    assert caught.value.retry_after == pytest.approx(15 * 3600)
    assert "daily API quota" in str(caught.value)
    assert seconds_to_central_midnight(clock.now()) == pytest.approx(15 * 3600)


@pytest.mark.parametrize(
    ("code", "error"), [("603", AuthError), ("610", CrmBridgeError), ("1006", CrmBridgeError)]
)
def test_other_envelope_errors_are_typed_and_not_retried(
    router: respx.MockRouter, code: str, error: type[Exception], clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(return_value=err(code))
    with pytest.raises(error) as caught:
        make(clock).send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert not isinstance(caught.value, RateLimitedError)
    assert api.call_count == 1 and code in str(caught.value)


def test_the_daily_allowance_stops_before_the_reserve_without_sending(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(return_value=ok())
    client = make(clock, daily_call_limit=10, daily_reserve_fraction=0.2)
    for _ in range(8):
        client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    with pytest.raises(RateLimitedError, match="daily API budget"):
        client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert api.call_count == 8
    clock.advance(24 * 3600)  # the next US Central day
    client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert api.call_count == 9


def test_the_window_paces_calls_before_marketo_refuses_them(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.get(DESCRIBE).mock(return_value=ok())
    client = make(clock, rate_limit_calls=3, rate_limit_window_seconds=20)
    for _ in range(4):
        client.send("GET", "/rest/v1/leads/describe.json", idempotent=True)
    assert api.call_count == 4
    assert clock.sleeps == [pytest.approx(20.0)]


def test_the_concurrency_slots_cap_calls_in_flight(clock: FakeClock) -> None:
    budget = InstanceBudget(settings(max_concurrent=2), clock)
    inside = threading.Barrier(3)
    release = threading.Event()

    def hold() -> None:
        with budget.call():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert budget.slots.acquire(blocking=False) is False  # a third call would wait
    release.set()
    for t in threads:
        t.join()
    assert budget.peak_in_flight == 2
    assert budget.slots.acquire(blocking=False) is True


def test_a_get_above_the_uri_limit_goes_as_post_with_method_get(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    api = router.post(f"{BASE}/rest/v1/leads.json").mock(return_value=ok())
    values = [str(10_000_000 + i) for i in range(MAX_URI // 8 + 10)]
    make(clock).send(
        "GET",
        "/rest/v1/leads.json",
        params={"filterType": "id", "filterValues": values},
        idempotent=True,
    )
    sent = dict(httpx.QueryParams(api.calls[0].request.content.decode()))
    assert sent["_method"] == "GET" and sent["filterValues"] == ",".join(values)
    assert api.calls[0].request.url.query == b""


def test_no_repr_shows_the_secret(clock: FakeClock) -> None:
    client = make(clock)
    assert SECRET not in repr(client) + repr(client.tokens) + repr(client.settings)
    assert SECRET not in str(client.settings.model_dump())


def test_write_maps_per_record_reasons_and_keeps_input_order(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())

    def leads(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        rows: list[dict[str, Any]] = []
        for item in body["input"]:
            if body["action"] == "updateOnly":
                rows.append(
                    {
                        "status": "skipped",
                        "reasons": [{"code": "1004", "message": "Lead not found"}],
                    }
                    if item["id"] == 404
                    else {"id": item["id"], "status": "updated"}
                )
            elif item.get("leadScore") == "x":
                rows.append(
                    {"status": "skipped", "reasons": [{"code": "1001", "message": "Invalid value"}]}
                )
            else:
                rows.append({"id": 50 + len(rows), "status": "created"})
        return ok(rows)

    sync = router.post(f"{BASE}/rest/v1/leads.json").mock(side_effect=leads)
    delete = router.post(f"{BASE}/rest/v1/leads/delete.json").mock(
        return_value=ok(
            [
                {"id": 9, "status": "deleted"},
                {"id": 10, "status": "skipped", "reasons": [{"code": "1004", "message": "gone"}]},
            ]
        )
    )
    s = settings()
    conn = MarketoConnector(s, name="m", clock=clock, budget=InstanceBudget(s, clock))
    ops = [
        Upsert("u-missing", {"firstName": "A"}, id="404"),
        Upsert("bad", {"email": "b@example.com", "leadScore": "x"}, match_on="email"),
        Delete("d-ok", "9", mode="hard"),
        Upsert("new", {"email": "c@example.com"}, match_on="email"),
        Delete("d-archive", "9", mode="archive"),
        Upsert("u-ok", {"firstName": "B", "updatedAt": "ignored"}, id="3"),
        Delete("d-gone", "10", mode="hard"),
        Upsert("wrong-match", {"firstName": "C"}, match_on="firstName"),
    ]
    results = conn.write("leads", ops)
    assert [r.key for r in results] == [op.key for op in ops]
    by = {r.key: r for r in results}
    assert (by["u-missing"].ok, by["u-missing"].error_code) == (False, "1004")
    assert (by["bad"].ok, by["bad"].error_code, by["bad"].error) == (
        False,
        "1001",
        "1001 Invalid value",
    )
    assert by["new"].ok and by["new"].created and by["new"].id == "51"
    assert by["u-ok"].ok and by["u-ok"].id == "3" and not by["u-ok"].created
    assert by["d-ok"].ok and by["d-ok"].id == "9"
    assert by["d-gone"].error_code == "NOT_FOUND" and "1004" in (by["d-gone"].error or "")
    assert by["d-archive"].error_code == "UNSUPPORTED_DELETE_MODE"
    assert by["wrong-match"].error_code == "INVALID_MATCH_FIELD"
    bodies = [json.loads(c.request.content) for c in sync.calls]
    assert [(b["action"], b.get("lookupField")) for b in bodies] == [
        ("updateOnly", "id"),
        ("createOrUpdate", "email"),
    ]
    assert bodies[0]["input"] == [{"firstName": "A", "id": 404}, {"firstName": "B", "id": 3}]
    assert json.loads(delete.calls[0].request.content) == {"input": [{"id": 9}, {"id": 10}]}


def test_write_sends_300_per_call(router: respx.MockRouter, clock: FakeClock) -> None:
    router.post(TOKEN_URL).mock(return_value=token())

    def leads(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return ok([{"id": i, "status": "created"} for i, _ in enumerate(body["input"])])

    sync = router.post(f"{BASE}/rest/v1/leads.json").mock(side_effect=leads)
    s = settings()
    conn = MarketoConnector(s, name="m", clock=clock, budget=InstanceBudget(s, clock))
    ops = [Upsert(f"k{i}", {"email": f"p{i}@example.com"}, match_on="email") for i in range(301)]
    results = conn.write("leads", ops)
    assert len(results) == 301 and all(r.ok for r in results)
    assert [len(json.loads(c.request.content)["input"]) for c in sync.calls] == [300, 1]


def test_a_result_count_mismatch_is_an_error_not_a_silent_shift(
    router: respx.MockRouter, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=token())
    router.post(f"{BASE}/rest/v1/leads.json").mock(
        return_value=ok([{"id": 1, "status": "created"}])
    )
    s = settings()
    conn = MarketoConnector(s, name="m", clock=clock, budget=InstanceBudget(s, clock))
    with pytest.raises(CrmBridgeError, match="1 results for 2 inputs"):
        conn.write("leads", [Upsert("a", {"email": "a@x.io"}), Upsert("b", {"email": "b@x.io"})])
