"""Finding connectors: the ``crm_bridge.connectors`` entry-point group, validated on load.

In-tree connectors register exactly like third-party ones (see ``pyproject.toml``), so there is
one discovery path to test.  Loading checks that the target really is a
:class:`~crm_bridge.connector.Connector` with a settings model, every required method and an
override behind every declared capability's methods (a capability declared but left to the base
class would otherwise fail only when the engine first calls it, mid-cycle), and an unknown
``type`` answers with the names that *are* installed instead of a bare ``KeyError``.  What no
import can check -- that the methods keep the contract -- is the conformance kit's job
(:mod:`crm_bridge.testing`).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from crm_bridge.connector import Connector, ConnectorSettings, unimplemented_capabilities
from crm_bridge.errors import ConnectorLoadError

__all__ = [
    "ENTRY_POINT_GROUP",
    "InstalledConnector",
    "contract_problem",
    "installed_connectors",
    "load_connector",
]

ENTRY_POINT_GROUP = "crm_bridge.connectors"
_OWN_DISTRIBUTION = "crm-bridge"


@dataclass(frozen=True, slots=True)
class InstalledConnector:
    """An entry point in the group, not yet imported."""

    name: str
    target: str
    distribution: str

    def load(self) -> type[Connector[Any]]:
        """Import and validate the connector class."""
        entry = importlib.metadata.EntryPoint(
            name=self.name, value=self.target, group=ENTRY_POINT_GROUP
        )
        try:
            cls = entry.load()
        except Exception as exc:
            raise ConnectorLoadError(
                f"connector {self.name!r} from {self.distribution} failed to import "
                f"({self.target}): {type(exc).__name__}: {exc}",
                fix=f"reinstall {self.distribution} or remove the connector from the config",
            ) from None
        problem = contract_problem(cls)
        if problem:
            raise ConnectorLoadError(
                f"connector {self.name!r} from {self.distribution} ({self.target}) {problem}",
                fix="fix the connector package; see docs/connectors/writing-a-connector.md",
            )
        connector_cls: type[Connector[Any]] = cls
        return connector_cls


def contract_problem(cls: object) -> str | None:
    """Why ``cls`` cannot be loaded as a connector, or ``None`` when it can.

    Public so the conformance kit's structural test and the loader apply one and the same check.
    """
    if not isinstance(cls, type) or not issubclass(cls, Connector):
        return "is not a subclass of crm_bridge.connector.Connector"
    settings = getattr(cls, "Settings", None)
    if not isinstance(settings, type) or not issubclass(settings, ConnectorSettings):
        return "has no Settings class derived from ConnectorSettings"
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        return f"does not implement: {missing}"
    lacking = unimplemented_capabilities(cls)
    if lacking:
        detail = "; ".join(
            f"Capability.{capability.name} without {', '.join(f'{m}()' for m in methods)}"
            for capability, methods in lacking.items()
        )
        return f"declares capabilities it does not implement: {detail}"
    return None


def installed_connectors(*, builtin_only: bool = False) -> dict[str, InstalledConnector]:
    """Every connector registered in the entry-point group, by name.

    ``builtin_only`` keeps only crm-bridge's own (the ``CRM_BRIDGE_DISABLE_PLUGINS=1`` switch the
    CLI offers when a third-party plugin misbehaves).
    """
    found: dict[str, InstalledConnector] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else "unknown distribution"
        if builtin_only and dist != _OWN_DISTRIBUTION:
            continue
        found.setdefault(entry.name, InstalledConnector(entry.name, entry.value, dist))
    return dict(sorted(found.items()))


def load_connector(type_name: str, *, builtin_only: bool = False) -> type[Connector[Any]]:
    """The connector class registered as ``type_name``."""
    available = installed_connectors(builtin_only=builtin_only)
    if type_name not in available:
        names = ", ".join(available) or "none"
        raise ConnectorLoadError(
            f"unknown connector type {type_name!r}; installed: {names}",
            fix="fix the `type` key or install the connector's package",
        )
    return available[type_name].load()
