from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.connectors.salesforce.oauth import SalesforceTokenProvider
from crm_bridge.errors import AuthError, ConfigError, TransientError
from crm_bridge.http.clock import FakeClock

SENTINEL = "SENTINEL-s3cr3t-9f2c"
SF_TOKEN_URL = "https://127.0.0.1:8443/services/oauth2/token"


def sf_ok(token: str = "00DEMU!tok1", **extra: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": token,
            "instance_url": "https://127.0.0.1:8443",
            "id": "https://login.salesforce.com/id/00D000000000001/005000000000001",
            "token_type": "Bearer",
            "issued_at": "1709294400000",
            "signature": "c2lnbmF0dXJl",
            **extra,
        },
    )


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def assert_no_secret(*objects: object) -> None:
    for obj in objects:
        assert SENTINEL not in str(obj)
        assert SENTINEL not in repr(obj)


def assert_chain_has_no_secret(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert_no_secret(seen, seen.args)
        seen = seen.__cause__ or seen.__context__


# --- Salesforce -------------------------------------------------------------------------------


def test_client_credentials_with_basic_auth(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(return_value=sf_ok())
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="3MVG9id",
        client_secret=SecretStr(SENTINEL),
        grant_type="client_credentials",
        client_auth="basic",
        http=client,
        clock=clock,
    )
    assert provider.token().get_secret_value() == "00DEMU!tok1"
    request = route.calls.last.request
    expected = base64.b64encode(f"3MVG9id:{SENTINEL}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert form(request) == {"grant_type": "client_credentials"}
    assert provider.instance_url == "https://127.0.0.1:8443"
    current = provider.current
    assert current is not None and current.issued_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert_no_secret(provider, current)


def test_client_credentials_in_body(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(return_value=sf_ok())
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="3MVG9id",
        client_secret=SecretStr(SENTINEL),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )
    provider.token()
    request = route.calls.last.request
    assert "Authorization" not in request.headers
    assert form(request) == {
        "grant_type": "client_credentials",
        "client_id": "3MVG9id",
        "client_secret": SENTINEL,
    }


def test_refresh_token_and_password_grants(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(return_value=sf_ok())
    SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        grant_type="refresh_token",
        refresh_token=SecretStr("5Aep861rt"),
        http=client,
        clock=clock,
    ).token()
    assert form(route.calls.last.request) == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "refresh_token": "5Aep861rt",
    }
    SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="password",
        username="sync@example.com",
        password=SecretStr("pw+token"),
        http=client,
        clock=clock,
    ).token()
    assert form(route.calls.last.request) == {
        "grant_type": "password",
        "client_id": "cid",
        "client_secret": "cs",
        "username": "sync@example.com",
        "password": "pw+token",
    }


def test_token_is_cached_then_refreshed_before_expiry(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(side_effect=[sf_ok("tok1"), sf_ok("tok2")])
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        token_lifetime=1000.0,
        http=client,
        clock=clock,
    )
    assert provider.token().get_secret_value() == "tok1"
    clock.advance(899)
    assert provider.token().get_secret_value() == "tok1"
    assert route.call_count == 1
    clock.advance(2)  # past 90 % of the lifetime, still before it ends
    assert provider.token().get_secret_value() == "tok2"
    assert route.call_count == 2


def test_refresh_after_rejection_is_done_once_across_callers(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(side_effect=[sf_ok("tok1"), sf_ok("tok2")])
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )
    stale = provider.token()
    assert provider.refresh(rejected=stale).get_secret_value() == "tok2"
    # a second caller that also saw tok1 rejected gets tok2 without another fetch
    assert provider.refresh(rejected=stale).get_secret_value() == "tok2"
    assert route.call_count == 2


def test_rotated_refresh_token_is_kept_and_reported(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(
        side_effect=[sf_ok("tok1", refresh_token="rt-2"), sf_ok("tok2", refresh_token="rt-2")]
    )
    rotated: list[SecretStr] = []
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        grant_type="refresh_token",
        refresh_token=SecretStr("rt-1"),
        http=client,
        clock=clock,
        on_rotate=rotated.append,
    )
    provider.token()
    assert [s.get_secret_value() for s in rotated] == ["rt-2"]
    provider.refresh()
    assert form(route.calls.last.request)["refresh_token"] == "rt-2"
    assert len(rotated) == 1  # same token again is not a rotation


def test_invalid_grant_is_an_auth_error_without_secrets(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(SF_TOKEN_URL).mock(
        return_value=httpx.Response(
            400,
            json={
                "error": "invalid_grant",
                "error_description": f"expired access/refresh token {SENTINEL}",
            },
        )
    )
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr(SENTINEL),
        grant_type="refresh_token",
        refresh_token=SecretStr(SENTINEL),
        http=client,
        clock=clock,
    )
    with pytest.raises(AuthError) as info:
        provider.token()
    assert "invalid_grant" in str(info.value)
    assert "expired access/refresh token" in str(info.value)
    assert_chain_has_no_secret(info.value)
    assert_no_secret(provider)
    assert clock.sleeps == []  # not retried


def test_token_endpoint_outage_is_transient_and_not_blindly_retried(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(
        return_value=httpx.Response(503, text="Service Unavailable")
    )
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )
    with pytest.raises(TransientError):
        provider.token()
    assert route.call_count == 1  # a refresh with rotation must not be repeated blindly


def test_token_endpoint_refused_connection_is_retried(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(SF_TOKEN_URL).mock(side_effect=[httpx.ConnectError("refused"), sf_ok()])
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )
    assert provider.token().get_secret_value() == "00DEMU!tok1"
    assert route.call_count == 2
    assert len(clock.sleeps) == 1


def test_missing_access_token_is_an_auth_error(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(SF_TOKEN_URL).mock(return_value=httpx.Response(200, json={"instance_url": "x"}))
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )
    with pytest.raises(AuthError, match="without an access_token"):
        provider.token()


def test_incomplete_settings_list_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        SalesforceTokenProvider(
            token_url=SF_TOKEN_URL, client_id="cid", grant_type="password", client_auth="basic"
        )
    text = str(info.value)
    assert "username" in text and "password" in text and "client_secret" in text


def test_token_keeps_instance_url_and_drops_junk_issued_at(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(SF_TOKEN_URL).mock(return_value=sf_ok(issued_at="not-a-number"))
    provider = SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        token_lifetime=100.0,
        http=client,
        clock=clock,
    )
    started = clock.monotonic()
    provider.token()
    current = provider.current
    assert current is not None
    assert current.instance_url == "https://127.0.0.1:8443"
    assert current.issued_at is None  # junk issued_at is dropped, not fatal
    assert current.refresh_after == pytest.approx(
        started + 90.0
    )  # no expires_in: 90 % of the lifetime
