"""Identity and token checks: same token until expiry, 600/601/602, HTTP 401 for bad clients."""

from __future__ import annotations

import httpx

from crm_bridge.connectors.marketo.emulator import RunningMarketo

from .conftest import Api


def _token(m: RunningMarketo, method: str = "GET", **overrides: str) -> httpx.Response:
    params = {
        "grant_type": "client_credentials",
        "client_id": m.client_id,
        "client_secret": m.client_secret,
        **overrides,
    }
    return httpx.request(method, f"{m.identity_url}/oauth/token", params=params, timeout=30)


def test_token_shape_and_same_token_until_expiry(marketo: RunningMarketo) -> None:
    marketo.emulator.clock.freeze()
    first = _token(marketo).json()
    assert first["token_type"] == "bearer"
    assert first["expires_in"] == 3600
    assert first["scope"] == marketo.emulator.settings.api_user
    assert first["access_token"].endswith(":emu")
    marketo.emulator.clock.advance(600)
    again = _token(marketo, "POST").json()
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 3000  # the remaining life, not a fresh hour
    marketo.emulator.clock.advance(3000)
    fresh = _token(marketo).json()
    assert fresh["access_token"] != first["access_token"]
    assert fresh["expires_in"] == 3600


def test_bad_client_is_http_401_with_oauth_error(marketo: RunningMarketo) -> None:
    resp = _token(marketo, client_secret="wrong")
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    resp = _token(marketo, client_id="nobody")
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert _token(marketo, grant_type="password").status_code == 400


def test_expired_token_answers_602_and_is_not_counted(api: Api, marketo: RunningMarketo) -> None:
    assert api.ok("GET", "/rest/v1/leads/describe.json")
    marketo.emulator.clock.advance(3601)
    assert api.error("GET", "/rest/v1/leads/describe.json") == "602"
    assert marketo.control("GET", "limits")["daily_used"] == 1  # 602 is asterisked: uncounted


def test_expire_tokens_control_route(api: Api, marketo: RunningMarketo) -> None:
    marketo.control("POST", "expire-tokens")
    assert api.error("GET", "/rest/v1/leads/describe.json") == "602"
    api.token = marketo.token()  # re-authenticating gives a new token that works
    assert api.ok("GET", "/rest/v1/leads/describe.json")


def test_missing_and_unknown_token(marketo: RunningMarketo) -> None:
    url = f"{marketo.base_url}/rest/v1/leads/describe.json"
    body = httpx.get(url, timeout=30).json()
    assert body["success"] is False and body["errors"][0]["code"] == "600"
    body = httpx.get(url, headers={"Authorization": "Bearer nope:emu"}, timeout=30).json()
    assert body["errors"][0]["code"] == "601"
    assert marketo.control("GET", "limits")["daily_used"] == 0


def test_query_parameter_token_accepted_unless_switched_off(marketo: RunningMarketo) -> None:
    token = marketo.token()
    url = f"{marketo.base_url}/rest/v1/leads/describe.json"
    assert httpx.get(url, params={"access_token": token}, timeout=30).json()["success"] is True
    marketo.control("POST", "settings", {"allow_query_token": False})
    body = httpx.get(url, params={"access_token": token}, timeout=30).json()
    assert body["errors"][0]["code"] == "601"
    assert repr(marketo.emulator.tokens._tokens[token]).count(token) == 0  # never in a repr
