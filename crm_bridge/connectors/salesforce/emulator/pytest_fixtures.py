"""Pytest fixtures: one real emulator server per session, reset before every test.

Why session-scoped: starting uvicorn and minting a CA costs ~100 ms; resetting the org costs
microseconds.  Tests get isolation from :meth:`SalesforceEmulator.reset`, not from new servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_bridge.connectors.salesforce.emulator.emulator import RunningSalesforce, SalesforceEmulator


@pytest.fixture(scope="session")
def salesforce_server() -> Iterator[RunningSalesforce]:
    """One running Salesforce emulator (TLS, free port) for the whole test session."""
    running = SalesforceEmulator().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def salesforce(salesforce_server: RunningSalesforce) -> RunningSalesforce:
    """The session's emulator with an empty org, no faults, zero call counts and a real clock."""
    salesforce_server.emulator.reset()
    return salesforce_server
