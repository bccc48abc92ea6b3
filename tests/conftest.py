"""Shared fixtures: the emulators run as real servers on 127.0.0.1 for the whole session."""

pytest_plugins = [
    "crm_bridge.emulators.salesforce.pytest_fixtures",
    "crm_bridge.emulators.hubspot.pytest_fixtures",
]
