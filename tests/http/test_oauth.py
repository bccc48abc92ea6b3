"""The vendor-neutral OAuth machinery, driven through a minimal provider defined here.

The vendors' own providers (grants, lifetimes, response fields) are tested next to their
connectors: tests/connectors/salesforce/test_oauth.py and tests/connectors/hubspot/test_oauth.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from crm_bridge.errors import AuthError, TransientError
from crm_bridge.http.clock import FakeClock
from crm_bridge.http.describe import describe_httpx
from crm_bridge.http.oauth import BearerAuth, OAuthTokenProvider, StaticTokenProvider, Token
from crm_bridge.http.retry import Failure

SENTINEL = "SENTINEL-s3cr3t-9f2c"
TOKEN_URL = "https://auth.example.test/oauth/token"
API = "https://api.example.test/v1/things"


class RefreshGrant(OAuthTokenProvider):
    """The smallest real provider: refresh_token grant, ``expires_in`` or 1000 s."""

    vendor = "Example"

    def __init__(
        self, *, http: httpx.Client, clock: FakeClock, refresh_token: str = "rt-1", **kw: Any
    ) -> None:
        super().__init__(
            token_url=TOKEN_URL,
            client_id="cid",
            client_secret=SecretStr(SENTINEL),
            refresh_token=SecretStr(refresh_token),
            http=http,
            clock=clock,
            refresh_at=kw.pop("refresh_at", 0.9),
            on_rotate=kw.pop("on_rotate", None),
            **kw,
        )

    def _form(self) -> dict[str, str]:
        assert self._client_secret is not None and self._refresh_token is not None
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "refresh_token": self._refresh_token.get_secret_value(),
        }

    def _lifetime(self, payload: dict[str, Any]) -> float:
        expires_in = payload.get("expires_in")
        return float(expires_in) if isinstance(expires_in, int) else 1000.0


def ok(token: str = "tok1", **extra: object) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "token_type": "Bearer", **extra})


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


# --- the shared provider machinery ------------------------------------------------------------


def test_token_is_cached_then_refreshed_before_expiry(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(TOKEN_URL).mock(side_effect=[ok("tok1"), ok("tok2")])
    provider = RefreshGrant(http=client, clock=clock)
    assert provider.token().get_secret_value() == "tok1"
    assert form(route.calls.last.request)["grant_type"] == "refresh_token"
    clock.advance(899)
    assert provider.token().get_secret_value() == "tok1"
    assert route.call_count == 1
    clock.advance(2)  # past 90 % of the lifetime, still before it ends
    assert provider.token().get_secret_value() == "tok2"
    assert route.call_count == 2
    assert provider.fetches == 2


def test_base_token_carries_no_vendor_fields(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=ok(instance_url="https://x.test", issued_at="1"))
    provider = RefreshGrant(http=client, clock=clock)
    provider.token()
    current = provider.current
    assert isinstance(current, Token)
    assert (current.instance_url, current.issued_at) == (None, None)  # a vendor's _token adds them


def test_refresh_after_rejection_is_done_once_across_callers(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(TOKEN_URL).mock(side_effect=[ok("tok1"), ok("tok2")])
    provider = RefreshGrant(http=client, clock=clock)
    stale = provider.token()
    assert provider.refresh(rejected=stale).get_secret_value() == "tok2"
    # a second caller that also saw tok1 rejected gets tok2 without another fetch
    assert provider.refresh(rejected=stale).get_secret_value() == "tok2"
    assert route.call_count == 2


def test_rotated_refresh_token_is_kept_and_reported(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(TOKEN_URL).mock(
        side_effect=[ok("tok1", refresh_token="rt-2"), ok("tok2", refresh_token="rt-2")]
    )
    rotated: list[SecretStr] = []
    provider = RefreshGrant(http=client, clock=clock, on_rotate=rotated.append)
    provider.token()
    assert [s.get_secret_value() for s in rotated] == ["rt-2"]
    provider.refresh()
    assert form(route.calls.last.request)["refresh_token"] == "rt-2"
    assert len(rotated) == 1  # same token again is not a rotation


def test_refused_credentials_are_an_auth_error_without_secrets(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400,
            json={"error": "invalid_grant", "error_description": f"expired token {SENTINEL}"},
        )
    )
    provider = RefreshGrant(http=client, clock=clock, refresh_token=SENTINEL)
    with pytest.raises(AuthError) as info:
        provider.token()
    assert "invalid_grant" in str(info.value) and "expired token" in str(info.value)
    assert_chain_has_no_secret(info.value)
    assert_no_secret(provider)
    assert clock.sleeps == []  # not retried


def test_token_endpoint_outage_is_transient_and_not_blindly_retried(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(TOKEN_URL).mock(return_value=httpx.Response(503, text="down"))
    with pytest.raises(TransientError):
        RefreshGrant(http=client, clock=clock).token()
    assert route.call_count == 1  # a refresh with rotation must not be repeated blindly


def test_token_endpoint_refused_connection_is_retried(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    route = router.post(TOKEN_URL).mock(side_effect=[httpx.ConnectError("refused"), ok()])
    assert RefreshGrant(http=client, clock=clock).token().get_secret_value() == "tok1"
    assert route.call_count == 2
    assert len(clock.sleeps) == 1


def test_missing_access_token_names_the_vendor(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"token_type": "x"}))
    with pytest.raises(AuthError, match="Example token endpoint answered without an access_token"):
        RefreshGrant(http=client, clock=clock).token()


def test_custom_describe_is_used_and_still_scrubbed(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    seen: list[Failure] = []

    def describe(exc: BaseException) -> Failure | None:
        failure = describe_httpx(exc)
        if failure is not None:
            seen.append(failure)
        return failure

    router.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            401, json={"error": "invalid_client", "error_description": SENTINEL}
        )
    )
    with pytest.raises(AuthError) as info:
        RefreshGrant(http=client, clock=clock, describe=describe).token()
    assert len(seen) == 1
    assert_chain_has_no_secret(info.value)


def test_refresh_at_is_validated(client: httpx.Client, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="refresh_at"):
        RefreshGrant(http=client, clock=clock, refresh_at=0.0)


def test_static_token_never_refreshes(router: respx.MockRouter) -> None:
    provider = StaticTokenProvider(SecretStr(SENTINEL))
    assert provider.token().get_secret_value() == SENTINEL
    assert provider.can_refresh is False
    assert provider.refresh().get_secret_value() == SENTINEL
    assert_no_secret(provider)
    assert router.calls.call_count == 0


# --- BearerAuth -------------------------------------------------------------------------------


def test_bearer_auth_adds_the_token(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    router.post(TOKEN_URL).mock(return_value=ok("tok1"))
    api = router.get(API).mock(return_value=httpx.Response(200, json={}))
    response = client.get(API, auth=BearerAuth(RefreshGrant(http=client, clock=clock)))
    assert response.status_code == 200
    assert api.calls.last.request.headers["Authorization"] == "Bearer tok1"


def test_bearer_auth_refreshes_once_on_401_and_resends(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    token_route = router.post(TOKEN_URL).mock(side_effect=[ok("tok1"), ok("tok2")])
    api = router.post(API).mock(
        side_effect=[
            httpx.Response(401, json={"message": "expired", "errorCode": "INVALID_SESSION"}),
            httpx.Response(201, json={"id": "1"}),
        ]
    )
    response = client.post(
        API, json={"name": "Ng"}, auth=BearerAuth(RefreshGrant(http=client, clock=clock))
    )
    assert response.status_code == 201
    assert [c.request.headers["Authorization"] for c in api.calls] == ["Bearer tok1", "Bearer tok2"]
    assert api.calls[0].request.content == api.calls[1].request.content  # body replayed
    assert token_route.call_count == 2


def test_bearer_auth_second_401_is_returned_not_looped(
    router: respx.MockRouter, client: httpx.Client, clock: FakeClock
) -> None:
    token_route = router.post(TOKEN_URL).mock(side_effect=[ok("tok1"), ok("tok2")])
    api = router.get(API).mock(return_value=httpx.Response(401, json={"message": "expired"}))
    response = client.get(API, auth=BearerAuth(RefreshGrant(http=client, clock=clock)))
    assert response.status_code == 401
    assert api.call_count == 2
    assert token_route.call_count == 2


def test_bearer_auth_with_static_token_does_not_resend(
    router: respx.MockRouter, client: httpx.Client
) -> None:
    api = router.get(API).mock(return_value=httpx.Response(401, json={"message": "bad token"}))
    auth = BearerAuth(StaticTokenProvider(SecretStr(SENTINEL)))
    response = client.get(API, auth=auth)
    assert response.status_code == 401
    assert api.call_count == 1
    assert_no_secret(auth)
