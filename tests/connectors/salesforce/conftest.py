"""Helpers for the Salesforce connector tests: a connector wired to the emulator fixture."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from crm_bridge.connectors.salesforce import SalesforceConnector, SalesforceSettings
from crm_bridge.connectors.salesforce.emulator import RunningSalesforce
from crm_bridge.http import FakeClock

MakeConnector = Callable[..., SalesforceConnector]


def settings_for(salesforce: RunningSalesforce, **overrides: Any) -> SalesforceSettings:
    values: dict[str, Any] = {
        "instance_url": salesforce.instance_url,
        "token_url": salesforce.token_url,
        "client_id": salesforce.client_id,
        "client_secret": SecretStr(salesforce.client_secret),
        "ca_bundle": salesforce.ca_path,
        "timeout_seconds": 10.0,
    }
    values.update(overrides)
    return SalesforceSettings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_connector(salesforce: RunningSalesforce, clock: FakeClock) -> Iterator[MakeConnector]:
    made: list[SalesforceConnector] = []

    def make(**overrides: Any) -> SalesforceConnector:
        connector = SalesforceConnector(
            settings_for(salesforce, **overrides), name="sf", clock=clock
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector: MakeConnector) -> SalesforceConnector:
    return make_connector()


def emulator_calls(salesforce: RunningSalesforce) -> dict[str, int]:
    """The emulator's own per-family counts, over its HTTP control plane."""
    context = ssl.create_default_context(cafile=salesforce.ca_path)
    with httpx.Client(verify=context, trust_env=False) as client:
        counts = client.get(f"{salesforce.base_url}/__emulator__/calls").json()
    assert isinstance(counts, dict)
    counts.pop("total", None)
    return {str(k): int(v) for k, v in counts.items()}


def reset_calls(salesforce: RunningSalesforce, connector: SalesforceConnector) -> None:
    """Zero both sides' counters (after setting up data)."""
    salesforce.emulator.calls.reset()
    connector.calls.clear()
