"""Helpers for the Salesforce emulator tests: a real client and a raw HTTP client per test."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crm_bridge.connectors.salesforce.emulator import RunningSalesforce


@pytest.fixture
def sf(salesforce: RunningSalesforce) -> Iterator[Any]:
    """simple-salesforce acting as the integration user; its session is closed afterwards."""
    client = salesforce.simple_salesforce()
    yield client
    client.session.close()


@pytest.fixture
def http(salesforce: RunningSalesforce) -> Iterator[httpx.Client]:
    """httpx against the emulator, for what simple-salesforce has no helper for."""
    with httpx.Client(
        base_url=salesforce.base_url,
        verify=ssl.create_default_context(cafile=salesforce.ca_path),
        trust_env=False,
    ) as client:
        yield client


@pytest.fixture
def control(http: httpx.Client) -> Any:
    """POST to the control plane and return the decoded answer."""

    def call(path: str, body: dict[str, Any] | None = None) -> Any:
        resp = http.post(f"/__emulator__/{path}", json=body or {})
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    return call
