"""HubSpot connector for crm-bridge (import it as ``crm_bridge.connectors.hubspot``).

Entry point: ``hubspot = "crm_bridge.connectors.hubspot:HubSpotConnector"``.
See docs/connectors/hubspot.md for settings, call budget and trade-offs.
"""

from crm_bridge.connectors.hubspot.connector import HubSpotConnector
from crm_bridge.connectors.hubspot.settings import HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
