"""A local Salesforce org that the real simple-salesforce client talks to over TLS on 127.0.0.1.

See ``docs/emulators/salesforce.md`` for every resource served and what is simplified.
"""

from crm_bridge.connectors.salesforce.emulator.emulator import RunningSalesforce, SalesforceEmulator
from crm_bridge.connectors.salesforce.emulator.settings import SalesforceEmulatorSettings

__all__ = ["RunningSalesforce", "SalesforceEmulator", "SalesforceEmulatorSettings"]
