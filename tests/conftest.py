"""Shared fixtures: the emulators run as real servers on 127.0.0.1 for the whole session.

Hypothesis profiles: under CI (``CI=true``) the property tests run a fixed, derandomised set of
examples, so a red run always reproduces and main never flips colour on a lucky draw; locally
they draw fresh examples every run.  ``CRM_BRIDGE_HYPOTHESIS=thorough`` draws many more (the
way the sync state machine's bugs were hunted down) -- run it before touching the planner.
"""

import os

from hypothesis import settings

pytest_plugins = [
    "crm_bridge.connectors.salesforce.emulator.pytest_fixtures",
    "crm_bridge.connectors.hubspot.emulator.pytest_fixtures",
    "crm_bridge.connectors.marketo.emulator.pytest_fixtures",
]

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=2000, print_blob=True)
settings.load_profile(
    os.environ.get("CRM_BRIDGE_HYPOTHESIS")
    or ("ci" if os.environ.get("CI", "").lower() in ("1", "true") else "default")
)
