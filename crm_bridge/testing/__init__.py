"""The connector conformance kit: subclass :class:`ConnectorContract` to test a connector.

Needs pytest (crm-bridge's ``test`` extra); nothing under :mod:`crm_bridge` outside this package
imports it, so a production install never loads pytest.  The kit module's assertions are
registered for pytest's assertion rewriting before it is imported, so a failing check shows the
values compared, not a bare ``AssertionError``.  ``crm_bridge.testing.plugin`` is the pytest
plugin (entry point ``pytest11``) that marks the kit's tests ``conformance``.
See docs/connectors/conformance-kit.md.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("crm_bridge.testing.kit")

from crm_bridge.testing.driver import BackendDriver, DriverUnsupported  # noqa: E402
from crm_bridge.testing.kit import ConnectorContract, check_capabilities_implemented  # noqa: E402

__all__ = [
    "BackendDriver",
    "ConnectorContract",
    "DriverUnsupported",
    "check_capabilities_implemented",
]
