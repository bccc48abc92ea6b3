"""Token refresh, injected faults through the HTTP seam, the daily reserve, and secrets."""

from __future__ import annotations

import ssl

import httpx
import pytest
from pydantic import SecretStr

from crm_bridge.connector import Upsert
from crm_bridge.connectors.salesforce import SalesforceConnector
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.emulators.runtime import Fault
from crm_bridge.errors import AuthError, CrmBridgeError, RateLimitedError, TransientError
from crm_bridge.http import FakeClock

from .conftest import MakeConnector, emulator_calls, reset_calls, settings_for

QUERY = r"/services/data/v[\d.]+/query"
COMPOSITE = r"/services/data/v[\d.]+/composite$"


def _chain(exc: BaseException) -> str:
    text = []
    seen: BaseException | None = exc
    while seen is not None:
        text.append(f"{seen!s} {seen!r} {getattr(seen, 'args', '')}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(text)


def test_expired_token_is_refreshed_once_and_the_call_resent(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.check()
    salesforce.emulator.clock.advance(3 * 3600)  # the org's 2 h session is over
    assert connector.check().startswith(salesforce.integration_username)
    assert connector.calls["auth"] == 2
    assert connector.calls["query"] == 3  # the 401, then the resend
    assert emulator_calls(salesforce) == dict(connector.calls)
    assert clock.sleeps == []  # a refresh never waits


def test_expired_token_mid_stream(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    salesforce.emulator.seed(leads=300)
    connector = make_connector(query_batch_size=200)
    stream = connector.changes("Lead", None)
    next(stream)
    salesforce.emulator.expire_tokens()
    assert 1 + sum(1 for _ in stream) == 300
    assert connector.calls["auth"] == 2


def test_second_401_after_refresh_is_an_auth_error(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector()
    connector.check()
    salesforce.emulator.faults.add(Fault(path=QUERY, status=401, times=2))
    with pytest.raises(AuthError) as info:
        connector.check()
    assert info.value.connector == "sf"
    assert connector.calls["auth"] == 2


def test_503_on_a_read_is_retried_with_the_injected_clock(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.check()
    salesforce.emulator.faults.add(Fault(path=QUERY, status=503, times=2))
    connector.check()
    assert len(clock.sleeps) == 2 and all(0 < s <= 30 for s in clock.sleeps)
    assert connector.calls["query"] == 4


def test_429_waits_as_long_as_retry_after_says(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.check()
    salesforce.emulator.faults.add(
        Fault(
            path=QUERY,
            status=429,
            headers={"Retry-After": "7"},
            body=[{"errorCode": "X", "message": "slow"}],
        )
    )
    connector.check()
    assert clock.sleeps == [7.0]


def test_request_limit_exceeded_gives_up_at_once(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.check()
    salesforce.emulator.faults.add(Fault(path=QUERY, status=403, times=None))
    with pytest.raises(RateLimitedError) as info:
        connector.check()
    assert "REQUEST_LIMIT_EXCEEDED" in str(info.value)
    assert clock.sleeps == [] and connector.calls["query"] == 2


def test_a_create_that_may_have_applied_is_not_resent(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.describe_object("Lead")
    reset_calls(salesforce, connector)
    salesforce.emulator.faults.add(Fault(path=COMPOSITE, status=503))
    with pytest.raises(TransientError, match="may already have been applied"):
        connector.write("Lead", [Upsert("k", {"LastName": "L", "Company": "C"})])
    assert emulator_calls(salesforce) == {"composite": 1}


def test_a_locked_row_batch_is_retried(
    salesforce: RunningSalesforce, make_connector: MakeConnector, clock: FakeClock
) -> None:
    connector = make_connector()
    connector.describe_object("Lead")
    salesforce.emulator.faults.add(Fault(path=COMPOSITE, status=400))  # UNABLE_TO_LOCK_ROW
    (result,) = connector.write("Lead", [Upsert("k", {"LastName": "L", "Company": "C"})])
    assert result.ok and result.created
    assert connector.calls["composite"] == 2 and len(clock.sleeps) == 1


def test_daily_reserve_stops_before_the_org_runs_dry(
    salesforce: RunningSalesforce, make_connector: MakeConnector
) -> None:
    connector = make_connector(daily_reserve_fraction=0.10)
    connector.check()  # first data call of the emulated day (see the emulator note below)
    # Emulator quirk: `used` set through /__emulator__/limits before the day's first counted
    # call is wiped by the day rollover, so the limits are set after one call.
    context = ssl.create_default_context(cafile=salesforce.ca_path)
    with httpx.Client(verify=context, trust_env=False) as control:
        control.post(
            f"{salesforce.base_url}/__emulator__/limits", json={"daily_api_limit": 100, "used": 88}
        ).raise_for_status()
    connector.check()  # 89/100 reported: one more call still fits under 90
    connector.check()
    with pytest.raises(RateLimitedError, match="kept for people"):
        connector.check()
    assert salesforce.emulator.org.api_used == 90  # the refused call was never sent


def test_secrets_never_appear_in_reprs_or_errors(salesforce: RunningSalesforce) -> None:
    sentinel = "SENTINEL-s3cr3t-value-42"
    settings = settings_for(salesforce, client_secret=SecretStr(sentinel))
    connector = SalesforceConnector(settings, name="sf", clock=FakeClock())
    try:
        with pytest.raises(AuthError) as info:
            connector.check()
        for text in (
            repr(connector),
            str(connector),
            repr(settings),
            str(settings),
            repr(connector.auth),
            _chain(info.value),
        ):
            assert sentinel not in text
    finally:
        connector.close()
    good = SalesforceConnector(settings_for(salesforce), name="sf", clock=FakeClock())
    try:
        good.check()
        current = good.auth.tokens.current
        assert current is not None
        token = current.access_token.get_secret_value()
        with pytest.raises(CrmBridgeError) as bad_query:
            good._query("SELECT Nope FROM Lead", all_rows=False)
        for text in (repr(good), repr(good.auth), _chain(bad_query.value)):
            assert token not in text and salesforce.client_secret not in text
    finally:
        good.close()
