"""Authentication: private-app tokens, the OAuth code flow, expiry on the emulator clock, humans."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import UnauthorizedException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from crm_bridge.connectors.hubspot.emulator import RunningHubSpot

REDIRECT = "https://app.example/callback"


def _install(hs: RunningHubSpot) -> dict[str, str]:
    resp = httpx.get(
        f"{hs.base_url}/oauth/authorize",
        params={
            "client_id": hs.client_id,
            "redirect_uri": REDIRECT,
            "scope": "oauth crm.objects.contacts.read",
            "state": "xyz",
        },
    )
    assert resp.status_code == 302
    query = parse_qs(urlparse(resp.headers["location"]).query)
    assert query["state"] == ["xyz"]
    tokens = hs.client().oauth.tokens_api.create(
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri=REDIRECT,
        client_id=hs.client_id,
        client_secret=hs.client_secret,
    )
    return {
        "access": tokens.access_token,
        "refresh": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "type": tokens.token_type,
    }


def test_bad_token_is_401_invalid_authentication(hubspot: RunningHubSpot) -> None:
    with pytest.raises(UnauthorizedException) as exc:
        hubspot.client(access_token="pat-na1-wrong").crm.contacts.basic_api.get_page()
    assert exc.value.status == 401
    body = json.loads(exc.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION" and body["correlationId"]


def test_missing_header_is_401(hubspot: RunningHubSpot) -> None:
    resp = httpx.get(f"{hubspot.base_url}/crm/v3/objects/contacts")
    assert resp.status_code == 401
    assert resp.json()["category"] == "INVALID_AUTHENTICATION"


def test_oauth_code_flow_expiry_and_refresh(hubspot: RunningHubSpot) -> None:
    tokens = _install(hubspot)
    assert (tokens["expires_in"], tokens["type"]) == (1800, "bearer")
    api = hubspot.client(access_token=tokens["access"]).crm.contacts.basic_api
    assert api.get_page().results == []
    info = hubspot.client().oauth.access_tokens_api.get(tokens["access"])
    assert info.hub_id == hubspot.portal_id and info.user == "maria.manager@example.com"
    assert 0 < info.expires_in <= 1800
    hubspot.control("POST", "clock", {"advance": 1801 + 120})
    with pytest.raises(UnauthorizedException) as exc:
        api.get_page()
    body = json.loads(exc.value.body)
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"] == "The OAuth token used to make this call expired 2 minute(s) ago."
    fresh = hubspot.client().oauth.tokens_api.create(
        grant_type="refresh_token",
        refresh_token=tokens["refresh"],
        client_id=hubspot.client_id,
        client_secret=hubspot.client_secret,
    )
    assert fresh.access_token != tokens["access"]
    assert hubspot.client(access_token=fresh.access_token).crm.contacts.basic_api.get_page()


def test_oauth_errors(hubspot: RunningHubSpot) -> None:
    oauth = hubspot.client().oauth.tokens_api
    with pytest.raises(OAuthApiException) as exc:
        oauth.create(
            grant_type="refresh_token",
            refresh_token="nope",
            client_id=hubspot.client_id,
            client_secret=hubspot.client_secret,
        )
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["status"] == "BAD_REFRESH_TOKEN"
    with pytest.raises(OAuthApiException) as exc:
        oauth.create(
            grant_type="authorization_code",
            code="never-issued",
            redirect_uri=REDIRECT,
            client_id=hubspot.client_id,
            client_secret="wrong",
        )
    assert json.loads(exc.value.body)["status"] == "BAD_CLIENT_SECRET"


def test_expire_tokens_control_route(hubspot: RunningHubSpot) -> None:
    tokens = _install(hubspot)
    hubspot.control("POST", "expire-tokens")
    with pytest.raises(UnauthorizedException) as exc:
        hubspot.client(access_token=tokens["access"]).crm.contacts.basic_api.get_page()
    assert json.loads(exc.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    hubspot.client().crm.contacts.basic_api.get_page()  # the private-app token never expires


def test_human_edits_are_stamped_and_integration_edits_are_not(hubspot: RunningHubSpot) -> None:
    api = hubspot.client().crm.contacts.basic_api
    cid = api.create(SimplePublicObjectInputForCreate(properties={"email": "h@example.com"})).id
    issued = hubspot.control("POST", "token", {"user_email": "mark.marketer@example.com"})
    marketer = hubspot.client(access_token=issued["access_token"]).crm.contacts.basic_api
    marketer.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    seen = api.get_by_id(cid, properties=["hs_updated_by_user_id", "lifecyclestage"])
    assert seen.properties["hs_updated_by_user_id"] == str(issued["user_id"])
    api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "customer"}))
    seen = api.get_by_id(cid, properties=["hs_updated_by_user_id"])
    assert seen.properties["hs_updated_by_user_id"] is None


def test_token_for_unknown_user_is_404(hubspot: RunningHubSpot) -> None:
    resp = httpx.post(f"{hubspot.base_url}/__emulator__/token", json={"user_email": "x@y.z"})
    assert resp.status_code == 404
    assert "mark.marketer@example.com" in resp.json()["known"]
