"""Fixtures: a HubSpotConnector talking to the real emulator over the socket.

The connector gets a :class:`LinkedClock`: a FakeClock (nothing really sleeps) whose sleeps also
move the emulator's clock forward, so a wait the connector "sleeps" really lets HubSpot's rate
windows pass on the server side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from crm_bridge.connectors.hubspot import HubSpotConnector, HubSpotSettings
from crm_bridge.connectors.hubspot.emulator.emulator import HubSpotEmulator, RunningHubSpot
from crm_bridge.emulators.runtime import EmulatorClock
from crm_bridge.http import Clock, FakeClock


class LinkedClock(FakeClock):
    def __init__(self, emulator_clock: EmulatorClock) -> None:
        super().__init__()
        self.emulator_clock = emulator_clock

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if seconds > 0:
            self.emulator_clock.advance(seconds)


MakeConnector = Callable[..., HubSpotConnector]


@pytest.fixture
def make_connector(hubspot: RunningHubSpot) -> Iterator[MakeConnector]:
    made: list[HubSpotConnector] = []

    def make(*, clock: Clock | None = None, **overrides: Any) -> HubSpotConnector:
        values: dict[str, Any] = {
            "host": hubspot.base_url,
            "access_token": SecretStr(hubspot.access_token),
        }
        values.update(overrides)
        settings = HubSpotSettings(**values)
        conn = HubSpotConnector(
            settings, name="hs", clock=clock or LinkedClock(hubspot.emulator.clock)
        )
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def connector(make_connector: MakeConnector) -> HubSpotConnector:
    return make_connector()


def server_calls(hubspot: RunningHubSpot) -> dict[str, int]:
    return hubspot.emulator.calls.snapshot()


def assert_counts_match(conn: HubSpotConnector, hubspot: RunningHubSpot) -> None:
    """Our own count of requests sent equals what the emulator received, family by family."""
    ours = {("oauth" if k == "auth" else k): v for k, v in conn.calls.items() if v}
    theirs = {k: v for k, v in server_calls(hubspot).items() if k != "total" and v}
    assert ours == theirs


def add_contacts(
    emulator: HubSpotEmulator,
    n: int,
    *,
    start: datetime,
    step_ms: int = 1,
    prefix: str = "p",
    extra: dict[str, str] | None = None,
) -> list[str]:
    """Create contacts straight in the portal, ``step_ms`` apart on a frozen emulator clock."""
    base = int(start.timestamp() * 1000)
    ids: list[str] = []
    portal = emulator.portal
    with portal.lock:
        for i in range(n):
            emulator.clock.freeze(datetime.fromtimestamp((base + i * step_ms) / 1000, tz=UTC))
            props = {"email": f"{prefix}{i}@example.com", "firstname": f"F{i}", **(extra or {})}
            ids.append(str(portal.create("contacts", props, None).id))
    emulator.clock.unfreeze()
    return ids


def oauth_refresh_token(hubspot: RunningHubSpot) -> str:
    """Install the app the way a portal admin would and return its refresh token."""
    with httpx.Client(base_url=hubspot.base_url) as http:
        redirect = http.get(
            "/oauth/authorize",
            params={"client_id": hubspot.client_id, "redirect_uri": "http://localhost/cb"},
        )
        code = httpx.URL(redirect.headers["location"]).params["code"]
        token = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "authorization_code",
                "client_id": hubspot.client_id,
                "client_secret": hubspot.client_secret,
                "redirect_uri": "http://localhost/cb",
                "code": code,
            },
        )
        token.raise_for_status()
        return str(token.json()["refresh_token"])
