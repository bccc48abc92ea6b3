"""pytest fixtures: one real HubSpot emulator per session, reset before every test.

``hubspot_server`` is the session-wide server; ``hubspot`` resets data, faults, call counts, the
clock and the rate-limit buckets and yields the :class:`RunningHubSpot`.  Rate limits are off by
default here so unrelated tests never trip them; rate-limit tests turn them on through
``POST /__emulator__/rate-limits`` (or ``emulator.configure_rate_limits``) and the next reset turns
them off again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_bridge.connectors.hubspot.emulator.emulator import HubSpotEmulator, RunningHubSpot
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings


@pytest.fixture(scope="session")
def hubspot_server() -> Iterator[RunningHubSpot]:
    """A HubSpot emulator listening on 127.0.0.1 for the whole test session."""
    emulator = HubSpotEmulator(HubSpotEmulatorSettings(rate_limits_enabled=False))
    running = emulator.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def hubspot(hubspot_server: RunningHubSpot) -> RunningHubSpot:
    """The session emulator, emptied and with default settings for this test."""
    hubspot_server.emulator.reset()
    return hubspot_server
