from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.connectors.hubspot.oauth import HubSpotTokenProvider
from crm_bridge.errors import AuthError, RateLimitedError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.oauth import StaticTokenProvider

SENTINEL = "SENTINEL-s3cr3t-9f2c"
HS_TOKEN_URL = "http://127.0.0.1:9090/oauth/v1/token"


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


def test_hubspot_daily_limit_on_the_token_endpoint_gives_up_at_once(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(HS_TOKEN_URL).mock(
        return_value=httpx.Response(
            429,
            json={
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
            },
        )
    )
    provider = HubSpotTokenProvider(
        client_id="app",
        client_secret=SecretStr("cs"),
        refresh_token=SecretStr("rt-1"),
        token_url=HS_TOKEN_URL,
        http=client,
        clock=clock,
    )
    with pytest.raises(RateLimitedError):
        provider.token()
    assert route.call_count == 1 and clock.sleeps == []


def test_hubspot_token_endpoint_429_waits_the_rolling_window(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(HS_TOKEN_URL).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
                json={"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "message": "m"},
            ),
            hs_ok("at-1"),
        ]
    )
    provider = HubSpotTokenProvider(
        client_id="app",
        client_secret=SecretStr("cs"),
        refresh_token=SecretStr("rt-1"),
        token_url=HS_TOKEN_URL,
        http=client,
        clock=clock,
    )
    assert provider.token().get_secret_value() == "at-1"
    assert route.call_count == 2
    assert clock.sleeps == [10.0]  # the window hint, no Retry-After sent
