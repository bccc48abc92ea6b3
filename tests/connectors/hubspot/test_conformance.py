"""The conformance kit against the real HubSpot connector and the emulator over HTTP.

The backend driver acts as a marketer: the REST API with a token the emulator issues for a
portal user, so their writes carry ``hs_updated_by_user_id`` while the integration's (a private
app) carry none -- which is why ``integration_user_id`` stays ``None`` for HubSpot.  Time moves
on the emulator's clock and the connector's ``LinkedClock`` together; faults are the emulator's
fault plane.  The connector polls the archived listing on every read (``archived_poll_seconds``
0): the kit reads right after a deletion, and the default hourly throttle is tested on its own
in test_reading.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest

from crm_bridge.connectors.hubspot import HubSpotConnector
from crm_bridge.connectors.hubspot.emulator.emulator import RunningHubSpot
from crm_bridge.emulators.runtime import Fault
from crm_bridge.http import FakeClock
from crm_bridge.testing import BackendDriver, ConnectorContract
from tests.connectors.hubspot.conftest import LinkedClock, MakeConnector

MARKETER = "mark.marketer@example.com"
CRM_API = r"^/crm/"
PAGE = 5


class HubSpotDriver(BackendDriver):
    """A marketer working in the emulated portal, plus its clock and fault plane."""

    def __init__(self, hubspot: RunningHubSpot, connector_clock: FakeClock) -> None:
        self.hubspot = hubspot
        self.connector_clock = connector_clock
        token = hubspot.emulator.as_user(MARKETER)
        self.http = httpx.Client(
            base_url=f"{hubspot.base_url}/crm/v3/objects",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        return str(self._send("POST", f"/{obj}", {"properties": _text(fields)})["id"])

    def create_many(self, obj: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(rows), 100):
            chunk = rows[start : start + 100]
            body = {"inputs": [{"properties": _text(row)} for row in chunk]}
            results = self._send("POST", f"/{obj}/batch/create", body)["results"]
            # batch create answers in any order: map back by the unique email
            by_email = {r["properties"]["email"]: str(r["id"]) for r in results}
            ids.extend(by_email[str(row["email"]).lower()] for row in chunk)
        return ids

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self._send("PATCH", f"/{obj}/{record_id}", {"properties": _text(fields)})

    def delete(self, obj: str, record_id: str) -> None:
        self._send("DELETE", f"/{obj}/{record_id}")

    def merge(self, obj: str, winner: str, loser: str) -> None:
        self._send("POST", f"/{obj}/merge", {"primaryObjectId": winner, "objectIdToMerge": loser})

    def advance(self, seconds: float) -> None:
        self.hubspot.emulator.clock.advance(seconds)
        self.connector_clock.advance(seconds)

    def inject_rate_limit(self) -> None:
        self.hubspot.emulator.faults.add(
            Fault(path=CRM_API, status=429, headers={"Retry-After": "1"}, times=None)
        )

    def inject_auth_failure(self) -> None:
        # A private-app token cannot be refreshed: the first 401 is final.
        self.hubspot.emulator.faults.add(Fault(path=CRM_API, status=401, times=None))


def _text(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in fields.items()}


class TestHubSpotConformance(ConnectorContract):
    connector_class = HubSpotConnector
    entry_point = "hubspot"
    object_name = "contacts"
    page_size = PAGE
    unknown_id = "999999999"
    relation = ("contacts", "companies")

    @pytest.fixture
    def clock(self, hubspot: RunningHubSpot) -> LinkedClock:
        return LinkedClock(hubspot.emulator.clock)

    @pytest.fixture
    def connector(self, make_connector: MakeConnector, clock: LinkedClock) -> HubSpotConnector:
        return make_connector(clock=clock, search_page_size=PAGE, archived_poll_seconds=0)

    @pytest.fixture
    def driver(self, hubspot: RunningHubSpot, clock: LinkedClock) -> Iterator[HubSpotDriver]:
        driver = HubSpotDriver(hubspot, clock)
        yield driver
        driver.close()

    def sample_record(self, n: int) -> dict[str, Any]:
        return {"email": f"kit{n}@example.com", "firstname": f"Kit{n}"}

    def edited_fields(self, n: int) -> dict[str, Any]:
        return {"firstname": f"Edited{n}"}

    def invalid_record(self, n: int) -> dict[str, Any]:
        return {**self.sample_record(n), "lifecyclestage": "bogus"}
