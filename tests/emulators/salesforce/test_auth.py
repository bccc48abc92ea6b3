"""OAuth token endpoint, session expiry on the emulator clock, and acting as different users."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import jwt
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce

TOKEN_PATH = "/services/oauth2/token"


def _client(salesforce: RunningSalesforce, token: str) -> Any:
    return Salesforce(
        session_id=token,
        instance_url=salesforce.instance_url,
        session=salesforce.session(),
        version="59.0",
    )


def test_client_credentials_with_basic_auth(
    salesforce: RunningSalesforce, http: httpx.Client
) -> None:
    basic = base64.b64encode(f"{salesforce.client_id}:{salesforce.client_secret}".encode())
    resp = http.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic.decode()}"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["instance_url"] == salesforce.instance_url
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("00D")
    assert "refresh_token" not in body
    assert body["issued_at"].isdigit()
    sf = _client(salesforce, body["access_token"])
    assert sf.query("SELECT Id FROM User")["totalSize"] == 1
    sf.session.close()


def test_client_credentials_in_body(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    resp = http.post(
        TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
        },
    )
    assert resp.status_code == 200
    assert resp.json()["id"].endswith(salesforce.emulator.user_id(salesforce.integration_username))


@pytest.mark.parametrize(
    "form",
    [
        {
            "grant_type": "client_credentials",
            "client_id": "crm-bridge-emulator",
            "client_secret": "wrong",
        },
        {
            "grant_type": "password",
            "client_id": "crm-bridge-emulator",
            "client_secret": "crm-bridge-emulator-secret",
            "username": "integration@crm-bridge.example",
            "password": "nope",
        },
        {
            "grant_type": "refresh_token",
            "client_id": "crm-bridge-emulator",
            "refresh_token": "not-a-token",
        },
    ],
)
def test_bad_credentials_are_400_with_oauth_error(http: httpx.Client, form: dict[str, str]) -> None:
    resp = http.post(TOKEN_PATH, data=form)
    assert resp.status_code == 400
    assert set(resp.json()) == {"error", "error_description"}
    assert resp.json()["error"] in ("invalid_grant", "invalid_client")


def test_wrong_password_is_the_documented_body(
    http: httpx.Client, salesforce: RunningSalesforce
) -> None:
    resp = http.post(
        TOKEN_PATH,
        data={
            "grant_type": "password",
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
            "username": salesforce.integration_username,
            "password": "wrong",
        },
    )
    assert resp.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


def test_unsupported_grant_type(http: httpx.Client) -> None:
    resp = http.post(TOKEN_PATH, data={"grant_type": "authorization_code"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"


def test_password_grant_as_a_rep(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    salesforce.emulator.seed(leads=5)
    resp = http.post(
        TOKEN_PATH,
        data={
            "grant_type": "password",
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
            "username": "rep1.0@crm-bridge.example",
            "password": "emulator-password",
        },
    )
    assert resp.status_code == 200
    assert resp.json()["id"].endswith(salesforce.emulator.user_id("rep1.0@crm-bridge.example"))


def test_refresh_token_grant(
    salesforce: RunningSalesforce, http: httpx.Client, control: Any
) -> None:
    issued = control("token", {"refresh": True})
    resp = http.post(
        TOKEN_PATH,
        data={
            "grant_type": "refresh_token",
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
            "refresh_token": issued["refresh_token"],
        },
    )
    assert resp.status_code == 200
    assert resp.json()["access_token"] != issued["access_token"]


def test_jwt_bearer_grant(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    claims = {
        "iss": salesforce.client_id,
        "sub": salesforce.integration_username,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    assertion = jwt.encode(
        claims, "any-key-is-accepted-when-no-public-key-is-set-32b", algorithm="HS256"
    )
    ok = http.post(
        TOKEN_PATH,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert ok.status_code == 200
    claims["exp"] = int(time.time()) - 10
    expired = jwt.encode(
        claims, "any-key-is-accepted-when-no-public-key-is-set-32b", algorithm="HS256"
    )
    bad = http.post(
        TOKEN_PATH,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": expired},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"


def test_token_expires_on_the_emulator_clock(
    salesforce: RunningSalesforce, sf: Any, control: Any
) -> None:
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    control("clock", {"advance": 7199})
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    control("clock", {"advance": 2})
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM Lead")
    assert exc.value.status == 401
    assert exc.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_expire_tokens_control_route(sf: Any, control: Any) -> None:
    control("expire-tokens")
    with pytest.raises(SalesforceExpiredSession):
        sf.Lead.create({"LastName": "A", "Company": "B"})


def test_missing_token_is_401_array(http: httpx.Client) -> None:
    resp = http.get("/services/data/v59.0/limits/")
    assert resp.status_code == 401
    assert resp.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_writes_are_stamped_with_the_tokens_user(salesforce: RunningSalesforce, sf: Any) -> None:
    salesforce.emulator.seed(leads=3)
    rep = salesforce.simple_salesforce(username="rep2.0@crm-bridge.example")
    lead_id = sf.Lead.create({"LastName": "Stamp", "Company": "Co"})["id"]
    integ_id = salesforce.emulator.user_id(salesforce.integration_username)
    rep_id = salesforce.emulator.user_id("rep2.0@crm-bridge.example")
    created = sf.Lead.get(lead_id)
    assert created["CreatedById"] == integ_id == created["LastModifiedById"]
    assert rep.Lead.update(lead_id, {"Title": "CFO"}) == 204
    edited = sf.Lead.get(lead_id)
    assert edited["LastModifiedById"] == rep_id
    assert edited["CreatedById"] == integ_id
    assert edited["SystemModstamp"] >= created["SystemModstamp"]
    rep.session.close()


def test_control_token_route_acts_as_user(salesforce: RunningSalesforce, control: Any) -> None:
    salesforce.emulator.seed(leads=1)
    issued = control("token", {"username": "manager0@crm-bridge.example"})
    client = _client(salesforce, issued["access_token"])
    lead_id = client.Lead.create({"LastName": "M", "Company": "C"})["id"]
    assert client.Lead.get(lead_id)["OwnerId"] == issued["user_id"]
    client.session.close()


def test_userinfo_and_revoke(salesforce: RunningSalesforce, http: httpx.Client) -> None:
    token = salesforce.emulator.issue_token()
    info = http.get("/services/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.json()["preferred_username"] == salesforce.integration_username
    assert http.post("/services/oauth2/revoke", data={"token": token}).status_code == 200
    after = http.get("/services/data/v59.0/limits", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
