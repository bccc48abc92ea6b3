"""The pytest plugin of the conformance kit, registered under the ``pytest11`` entry point.

Installed with crm-bridge, it loads in every pytest run of a project that depends on it, so it
does as little as possible: it registers the ``conformance`` marker (the project may run with
``--strict-markers``) and puts it on every test a :class:`~crm_bridge.testing.ConnectorContract`
subclass runs, so ``pytest -m conformance`` runs the kit alone and ``-m "not conformance"``
everything else.  The kit itself works without the plugin: it is a plain base class.
"""

from __future__ import annotations

import pytest

from crm_bridge.testing.kit import ConnectorContract

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]

MARKER = "conformance"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a test of crm-bridge's connector conformance kit (ConnectorContract)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every collected test whose class derives from :class:`ConnectorContract`."""
    for item in items:
        cls = getattr(item, "cls", None)
        if isinstance(cls, type) and issubclass(cls, ConnectorContract):
            item.add_marker(getattr(pytest.mark, MARKER))
