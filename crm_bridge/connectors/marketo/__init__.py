"""Marketo Engage connector for crm-bridge (import it as ``crm_bridge.connectors.marketo``).

Entry point: ``marketo = "crm_bridge.connectors.marketo:MarketoConnector"``.  The local REST
emulator lives in ``emulator`` (server dependencies; the connector never imports it).
See docs/connectors/marketo.md for settings, call budget and trade-offs.
"""

from crm_bridge.connectors.marketo.connector import MarketoConnector
from crm_bridge.connectors.marketo.settings import MarketoSettings

__all__ = ["MarketoConnector", "MarketoSettings"]
