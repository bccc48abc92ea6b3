from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from crm_bridge.connector import Upsert
from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.errors import AuthError, CrmBridgeError, TransientError
from crm_bridge.http import SystemClock
from tests.connectors.hubspot.conftest import (
    LinkedClock,
    MakeConnector,
    add_contacts,
    assert_counts_match,
    oauth_refresh_token,
    server_calls,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_check_is_one_owners_call(hubspot: RunningHubSpot, connector: HubSpotConnector) -> None:
    hubspot.emulator.configure_rate_limits(enabled=True)

    text = connector.check()

    assert "burst remaining 189" in text
    assert hubspot.base_url in text
    assert server_calls(hubspot) == {"owners": 1, "total": 1}
    assert_counts_match(connector, hubspot)


def test_owners_are_listed_with_names(hubspot: RunningHubSpot, connector: HubSpotConnector) -> None:
    owners = list(connector.owners())

    emails = {o.email for o in owners}
    assert "maria.manager@example.com" in emails and len(owners) == 6
    assert all(o.active for o in owners)
    maria = next(o for o in owners if o.email == "maria.manager@example.com")
    assert maria.name == "Maria Okafor"
    assert server_calls(hubspot)["owners"] == 2  # active, then archived


@pytest.mark.parametrize("retry_after", [True, False])
def test_a_429_storm_ends_in_success(
    hubspot: RunningHubSpot, make_connector: MakeConnector, retry_after: bool
) -> None:
    ids = add_contacts(hubspot.emulator, 3, start=T0)
    hubspot.emulator.calls.reset()
    headers = {"Retry-After": "2"} if retry_after else {}
    hubspot.control(
        "POST",
        "faults",
        {"path": "/batch/read", "status": 429, "headers": headers, "times": 3},
    )
    clock = LinkedClock(hubspot.emulator.clock)
    conn = make_connector(clock=clock, properties={"contacts": ["email"]})

    records = list(conn.fetch("contacts", ids))

    assert sorted(r.id for r in records) == sorted(ids)
    # Retry-After wins; without it, the length of HubSpot's ten-second window.
    assert clock.sleeps == ([2.0] * 3 if retry_after else [10.0] * 3)
    assert server_calls(hubspot) == {"batch": 4, "total": 4}
    assert_counts_match(conn, hubspot)


def test_pacing_keeps_a_small_tier_free_of_429s(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    ids = add_contacts(hubspot.emulator, 2, start=T0)
    hubspot.emulator.configure_rate_limits(enabled=True, burst_limit=5, send_retry_after=False)
    hubspot.emulator.calls.reset()
    clock = LinkedClock(hubspot.emulator.clock)
    conn = make_connector(clock=clock, properties={"contacts": ["email"]})  # thinks 190/10 s

    for _ in range(12):
        assert len(list(conn.fetch("contacts", ids))) == 2

    # The first answer's X-HubSpot-RateLimit-Max: 5 lowered our ceiling: paced, never refused.
    assert server_calls(hubspot) == {"batch": 12, "total": 12}
    assert conn.client.burst.max_calls == 5
    assert clock.slept >= 10.0


def test_search_is_paced_at_five_per_second(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    add_contacts(hubspot.emulator, 240, start=T0)
    hubspot.emulator.configure_rate_limits(enabled=True, send_retry_after=False)
    hubspot.emulator.calls.reset()
    clock = LinkedClock(hubspot.emulator.clock)
    conn = make_connector(clock=clock, search_page_size=20, properties={"contacts": ["email"]})

    records = list(conn.changes("contacts", T0))

    assert len(records) == 240
    assert server_calls(hubspot) == {"search": 12, "objects": 1, "total": 13}  # no 429 resend
    assert clock.slept >= 2.0


def test_searches_on_the_real_clock_get_no_429_even_after_a_slow_first_one(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    # Real time on both sides: the emulator counts each search when it arrives, and the first
    # one is held 0.3 s before it is counted.  Booked at send time, the sixth search would go
    # out 1 s after the first was sent and be refused; booked at completion, it waits for 1 s
    # after the first answer came back.
    add_contacts(hubspot.emulator, 240, start=T0)
    hubspot.emulator.configure_rate_limits(enabled=True)  # search: 5 per second
    hubspot.control("POST", "faults", {"path": "/search$", "latency": 0.3, "times": 1})
    hubspot.emulator.calls.reset()
    conn = make_connector(
        clock=SystemClock(), search_page_size=20, properties={"contacts": ["email"]}
    )

    records = list(conn.changes("contacts", T0))

    assert len(records) == 240
    received = server_calls(hubspot)
    assert received == {"search": 12, "objects": 1, "total": 13}
    admitted = hubspot.control("GET", "rate-limits")["daily_used"]
    assert received["total"] - admitted == 0  # no 429: every call that arrived was counted
    assert [hit["path"] for hit in hubspot.control("GET", "faults/hits")][:1] == [
        "/crm/v3/objects/contacts/search"
    ]
    assert_counts_match(conn, hubspot)


def test_a_create_that_may_have_applied_is_not_resent(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    hubspot.control("POST", "faults", {"path": "/batch/create", "status": 503, "times": 1})

    with pytest.raises(TransientError, match="may already have been applied"):
        connector.write("contacts", [Upsert(key="a", fields={"email": "a@example.com"})])

    assert server_calls(hubspot)["batch"] == 1


def test_an_upsert_is_resent_after_a_503(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    hubspot.control(
        "POST",
        "faults",
        {"path": "/batch/upsert", "status": 503, "times": 1, "headers": {"Retry-After": "0"}},
    )

    (result,) = connector.write(
        "contacts", [Upsert(key="a", match_on="email", fields={"email": "a@example.com"})]
    )

    assert result.ok and result.created
    assert server_calls(hubspot)["batch"] == 2
    assert connector.calls["batch"] == 2


def test_oauth_token_expiry_mid_run_refreshes_once(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    refresh = oauth_refresh_token(hubspot)
    hubspot.emulator.calls.reset()
    conn = make_connector(
        access_token=None,
        client_id=hubspot.client_id,
        client_secret=SecretStr(hubspot.client_secret),
        refresh_token=SecretStr(refresh),
        properties={"contacts": ["email"]},
    )
    ids = add_contacts(hubspot.emulator, 2, start=T0)
    assert "OAuth" in conn.check()
    assert conn.calls["auth"] == 1

    hubspot.emulator.clock.advance(1801)  # the server's token expires; ours has not noticed

    assert len(list(conn.fetch("contacts", ids))) == 2
    assert conn.calls["auth"] == 2  # refreshed once after the 401, then resent
    assert conn.calls["batch"] == 2  # the refused request and the resend
    assert_counts_match(conn, hubspot)

    conn.client.clock.advance(1700)  # type: ignore[attr-defined]  # past 90 % of the TTL
    conn.check()
    assert conn.calls["auth"] == 3  # refreshed by TTL, before any 401
    assert conn.calls["owners"] == 2


def test_a_wrong_private_app_token_is_an_auth_error_without_the_secret(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    secret = "pat-na1-SENTINEL-secret-value"
    conn = make_connector(access_token=SecretStr(secret))

    with pytest.raises(AuthError) as caught:
        conn.check()

    texts = [repr(conn), str(conn), repr(conn.settings), repr(conn.client), str(conn.settings)]
    exc: BaseException | None = caught.value
    while exc is not None:
        texts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    assert not [t for t in texts if secret in t]
    assert server_calls(hubspot)["owners"] == 1  # a static token is not "refreshed"


def test_a_refused_refresh_token_is_an_auth_error_without_secrets(
    hubspot: RunningHubSpot, make_connector: MakeConnector
) -> None:
    secret = "refresh-SENTINEL-secret"
    conn = make_connector(
        access_token=None,
        client_id=hubspot.client_id,
        client_secret=SecretStr("client-SENTINEL-secret"),
        refresh_token=SecretStr(secret),
    )

    with pytest.raises(AuthError) as caught:
        list(conn.changes("contacts", None))

    texts = [repr(conn), repr(conn.settings), repr(conn.client)]
    exc: BaseException | None = caught.value
    while exc is not None:
        texts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    assert not [t for t in texts if "SENTINEL" in t]
    assert server_calls(hubspot) == {"oauth": 1, "total": 1}
    assert conn.calls["auth"] == 1


def test_settings_demand_exactly_one_auth_mode(hubspot: RunningHubSpot) -> None:
    with pytest.raises(ValidationError, match="access_token"):
        HubSpotSettings(host=hubspot.base_url)
    with pytest.raises(ValidationError, match="not both"):
        HubSpotSettings(
            access_token=SecretStr("x"),
            client_id="id",
            client_secret=SecretStr("s"),
            refresh_token=SecretStr("r"),
        )
    with pytest.raises(ValidationError):
        HubSpotSettings(access_token=SecretStr("x"), objects=["tickets"])


def test_unknown_object_is_refused_before_any_call(
    hubspot: RunningHubSpot, connector: HubSpotConnector
) -> None:
    with pytest.raises(KeyError, match="contacts, companies, deals"):
        connector.changes("tickets", None)
    assert server_calls(hubspot)["total"] == 0


def test_connection_refused_is_retried_then_transient(make_connector: MakeConnector) -> None:
    conn = make_connector(host="http://127.0.0.1:9", max_attempts=2)

    with pytest.raises(CrmBridgeError, match="could not connect"):
        conn.check()

    assert conn.calls["owners"] == 2


def test_objects_declare_cursor_identity_and_batch(connector: HubSpotConnector) -> None:
    specs = {s.name: s for s in connector.objects()}
    assert specs["contacts"].cursor_field == "lastmodifieddate"
    assert specs["deals"].cursor_field == "hs_lastmodifieddate"
    assert specs["contacts"].identity_fields == ("email",)
    assert specs["companies"].max_batch == 100


@pytest.mark.parametrize("retry_after", [True, False])
def test_real_429s_from_a_budget_spent_by_someone_else(
    hubspot: RunningHubSpot, make_connector: MakeConnector, retry_after: bool
) -> None:
    ids = add_contacts(hubspot.emulator, 2, start=T0)
    hubspot.emulator.configure_rate_limits(
        enabled=True, burst_limit=5, send_retry_after=retry_after
    )
    other = hubspot.client()  # another integration with the same private-app token
    for _ in range(5):
        other.crm.owners.owners_api.get_page(limit=1)
    hubspot.emulator.calls.reset()
    clock = LinkedClock(hubspot.emulator.clock)
    conn = make_connector(clock=clock, properties={"contacts": ["email"]})

    assert len(list(conn.fetch("contacts", ids))) == 2
    assert len(list(conn.fetch("contacts", ids))) == 2

    assert server_calls(hubspot) == {"batch": 3, "total": 3}  # one 429, then two successes
    assert len(clock.sleeps) == 1 and 9.0 <= clock.sleeps[0] <= 10.0
    assert_counts_match(conn, hubspot)
