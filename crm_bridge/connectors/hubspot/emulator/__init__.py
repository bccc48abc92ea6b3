"""A local HubSpot emulator that the real ``hubspot-api-client`` talks to over a socket.

Start one with ``HubSpotEmulator().start()`` and point the client at it with
``HubSpot(access_token=..., host=running.base_url)``; see ``docs/emulators/hubspot.md``.
"""

from crm_bridge.connectors.hubspot.emulator.emulator import HubSpotEmulator, RunningHubSpot
from crm_bridge.connectors.hubspot.emulator.settings import (
    RATE_LIMIT_TIERS,
    HubSpotEmulatorSettings,
)

__all__ = ["RATE_LIMIT_TIERS", "HubSpotEmulator", "HubSpotEmulatorSettings", "RunningHubSpot"]
