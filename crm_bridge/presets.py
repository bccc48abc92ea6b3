"""Finding presets: ready-made object and field maps that connector packages install.

A preset names vendor objects and fields, so it ships with the connector that knows them and
registers in the ``crm_bridge.presets`` entry-point group, in-tree and third-party alike::

    [project.entry-points."crm_bridge.presets"]
    hubspot_salesforce = "crm_bridge.connectors.salesforce.presets:HUBSPOT_SALESFORCE"

The target is a mapping ``{object name: ObjectMap fields}`` (see ``crm_bridge.sync.mapping``),
the same keys a ``[pairs.NAME.objects.OBJ]`` table takes.  ``preset = "none"`` (the default)
starts from nothing.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

__all__ = ["PRESET_GROUP", "installed_presets", "load_preset"]

PRESET_GROUP = "crm_bridge.presets"


def installed_presets() -> dict[str, str]:
    """Every registered preset: name -> ``module:attribute``."""
    found: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=PRESET_GROUP):
        found.setdefault(entry.name, entry.value)
    return dict(sorted(found.items()))


def load_preset(name: str) -> dict[str, dict[str, Any]]:
    """The object maps of preset ``name`` (a copy); a ValueError lists the installed ones.

    Raised as ValueError so that pydantic reports it at the ``preset`` key of the pair.
    """
    installed = installed_presets()
    if name not in installed:
        known = ", ".join(["none", *installed]) or "none"
        raise ValueError(f"unknown preset {name!r}; installed: {known}")
    value = importlib.metadata.EntryPoint(name=name, value=installed[name], group=PRESET_GROUP)
    try:
        objects = value.load()
    except Exception as exc:
        raise ValueError(
            f"preset {name!r} ({installed[name]}) failed to import: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(objects, Mapping) or not all(
        isinstance(obj, Mapping) for obj in objects.values()
    ):
        raise ValueError(f"preset {name!r} ({installed[name]}) is not a mapping of object maps")
    return {str(obj_name): dict(obj) for obj_name, obj in objects.items()}
