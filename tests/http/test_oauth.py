from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.errors import AuthError, ConfigError, TransientError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.oauth import (
    BearerAuth,
    HubSpotTokenProvider,
    SalesforceTokenProvider,
    StaticTokenProvider,
)

SENTINEL = "SENTINEL-s3cr3t-9f2c"
SF_TOKEN_URL = "https://127.0.0.1:8443/services/oauth2/token"
HS_TOKEN_URL = "http://127.0.0.1:9090/oauth/v1/token"
API = "https://127.0.0.1:8443/services/data/v59.0/limits/"


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


# --- HubSpot ----------------------------------------------------------------------------------


def hs_ok(access: str, refresh: str = "rt-1", expires_in: int = 1800) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": expires_in,
            "token_type": "bearer",
        },
    )


def test_hubspot_refreshes_at_ninety_percent_of_ttl(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(HS_TOKEN_URL).mock(side_effect=[hs_ok("at-1"), hs_ok("at-2")])
    provider = HubSpotTokenProvider(
        client_id="app",
        client_secret=SecretStr(SENTINEL),
        refresh_token=SecretStr("rt-1"),
        token_url=HS_TOKEN_URL,
        http=client,
        clock=clock,
    )
    assert provider.token().get_secret_value() == "at-1"
    assert form(route.calls.last.request) == {
        "grant_type": "refresh_token",
        "client_id": "app",
        "client_secret": SENTINEL,
        "refresh_token": "rt-1",
    }
    clock.advance(1619)
    assert provider.token().get_secret_value() == "at-1"
    clock.advance(2)
    assert provider.token().get_secret_value() == "at-2"
    assert route.call_count == 2
    assert_no_secret(provider, provider.current)


def test_hubspot_rotation_callback(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(HS_TOKEN_URL).mock(return_value=hs_ok("at-1", refresh="rt-NEW"))
    rotated: list[SecretStr] = []
    provider = HubSpotTokenProvider(
        client_id="app",
        client_secret=SecretStr("cs"),
        refresh_token=SecretStr("rt-1"),
        token_url=HS_TOKEN_URL,
        http=client,
        clock=clock,
        on_rotate=rotated.append,
    )
    provider.token()
    assert [s.get_secret_value() for s in rotated] == ["rt-NEW"]


def test_hubspot_bad_refresh_token_is_auth_error(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(HS_TOKEN_URL).mock(
        return_value=httpx.Response(
            400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
        )
    )
    provider = HubSpotTokenProvider(
        client_id="app",
        client_secret=SecretStr(SENTINEL),
        refresh_token=SecretStr(SENTINEL),
        token_url=HS_TOKEN_URL,
        http=client,
        clock=clock,
    )
    with pytest.raises(AuthError) as info:
        provider.token()
    assert "BAD_REFRESH_TOKEN" in str(info.value)
    assert_chain_has_no_secret(info.value)


def test_private_app_token_is_static(router: respx.MockRouter) -> None:
    provider = HubSpotTokenProvider.private_app(SecretStr(SENTINEL))
    assert isinstance(provider, StaticTokenProvider)
    assert provider.token().get_secret_value() == SENTINEL
    assert provider.can_refresh is False
    assert provider.refresh().get_secret_value() == SENTINEL
    assert_no_secret(provider)
    assert router.calls.call_count == 0


# --- BearerAuth -------------------------------------------------------------------------------


def sf_provider(client: httpx.Client, clock: FakeClock) -> SalesforceTokenProvider:
    return SalesforceTokenProvider(
        token_url=SF_TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("cs"),
        grant_type="client_credentials",
        http=client,
        clock=clock,
    )


def test_bearer_auth_adds_the_token(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(SF_TOKEN_URL).mock(return_value=sf_ok("tok1"))
    api = router.get(API).mock(return_value=httpx.Response(200, json={}))
    response = client.get(API, auth=BearerAuth(sf_provider(client, clock)))
    assert response.status_code == 200
    assert api.calls.last.request.headers["Authorization"] == "Bearer tok1"


def test_bearer_auth_refreshes_once_on_401_and_resends(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    token_route = router.post(SF_TOKEN_URL).mock(side_effect=[sf_ok("tok1"), sf_ok("tok2")])
    api = router.post(API).mock(
        side_effect=[
            httpx.Response(
                401,
                json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            ),
            httpx.Response(201, json={"id": "00Q1", "success": True, "errors": []}),
        ]
    )
    response = client.post(
        API, json={"LastName": "Ng"}, auth=BearerAuth(sf_provider(client, clock))
    )
    assert response.status_code == 201
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer tok1", "Bearer tok2"]
    assert api.calls[0].request.content == api.calls[1].request.content  # body replayed
    assert token_route.call_count == 2


def test_bearer_auth_second_401_is_returned_not_looped(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    token_route = router.post(SF_TOKEN_URL).mock(side_effect=[sf_ok("tok1"), sf_ok("tok2")])
    api = router.get(API).mock(
        return_value=httpx.Response(
            401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )
    )
    response = client.get(API, auth=BearerAuth(sf_provider(client, clock)))
    assert response.status_code == 401
    assert api.call_count == 2
    assert token_route.call_count == 2


def test_bearer_auth_with_static_token_does_not_resend(
    router: respx.MockRouter, client: httpx.Client
) -> None:
    api = router.get(API).mock(
        return_value=httpx.Response(401, json={"category": "INVALID_AUTHENTICATION"})
    )
    auth = BearerAuth(HubSpotTokenProvider.private_app(SecretStr(SENTINEL)))
    response = client.get(API, auth=auth)
    assert response.status_code == 401
    assert api.call_count == 1
    assert_no_secret(auth)
