from __future__ import annotations

import pytest

from crm_bridge.connectors.example_memory import MemoryConnector
from crm_bridge.errors import ConnectorLoadError
from crm_bridge.registry import InstalledConnector, installed_connectors, load_connector


def test_in_tree_connector_registers_through_entry_points() -> None:
    found = installed_connectors()
    assert found["example_memory"].distribution == "crm-bridge"
    assert load_connector("example_memory") is MemoryConnector


def test_unknown_type_lists_installed_names() -> None:
    with pytest.raises(ConnectorLoadError) as info:
        load_connector("hubspott")
    assert "unknown connector type 'hubspott'" in str(info.value)
    assert "example_memory" in str(info.value)


def test_entry_point_that_is_not_a_connector_is_refused() -> None:
    bogus = InstalledConnector("bogus", "crm_bridge.errors:CrmBridgeError", "thirdparty")
    with pytest.raises(ConnectorLoadError, match="not a subclass"):
        bogus.load()
    broken = InstalledConnector("broken", "crm_bridge.no_such_module:X", "thirdparty")
    with pytest.raises(ConnectorLoadError, match="failed to import"):
        broken.load()
