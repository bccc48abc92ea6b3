from __future__ import annotations

import subprocess
import sys

import pytest

from crm_bridge.connector import Connector
from crm_bridge.connectors.example_memory import MemoryConnector
from crm_bridge.errors import ConnectorLoadError
from crm_bridge.registry import (
    InstalledConnector,
    contract_problem,
    installed_connectors,
    load_connector,
)


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


class DeclaresOwnersButKeepsTheRaiser(MemoryConnector):
    """Declares OWNERS (inherited) but puts the base class's NotImplementedError back."""

    owners = Connector.owners


def test_a_declared_capability_without_its_methods_is_refused_on_load() -> None:
    lazy = InstalledConnector(
        "lazy", "tests.core.test_registry:DeclaresOwnersButKeepsTheRaiser", "thirdparty"
    )
    with pytest.raises(ConnectorLoadError, match=r"Capability\.OWNERS without owners\(\)"):
        lazy.load()
    assert contract_problem(MemoryConnector) is None


def test_every_installed_connector_passes_the_load_check() -> None:
    for name, entry in installed_connectors().items():
        assert contract_problem(entry.load()) is None, name


def test_importing_crm_bridge_does_not_import_pytest() -> None:
    """Only crm_bridge.testing needs pytest (a test extra); the rest must load without it."""
    code = (
        "import sys\n"
        "import crm_bridge, crm_bridge.cli, crm_bridge.registry, crm_bridge.sync\n"
        "from crm_bridge.registry import installed_connectors\n"
        "for entry in installed_connectors().values():\n"
        "    entry.load()\n"
        "assert 'pytest' not in sys.modules, 'pytest was imported'\n"
        "import crm_bridge.testing\n"
        "assert 'pytest' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
