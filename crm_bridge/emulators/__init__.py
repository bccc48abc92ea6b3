"""What every vendor's emulator shares: the server runtime and the control plane.

Each vendor's emulator lives with its connector (``crm_bridge.connectors.<vendor>.emulator``), so
the code that imitates an API sits beside the code that calls it.  The servers need Starlette,
uvicorn and trustme, which a production install does not: they come with the ``emulators``
extra, and :func:`require_emulators` turns their absence into an error that says how to get them.
"""

from __future__ import annotations

import importlib

from crm_bridge.errors import ConfigError, ConfigProblem

__all__ = ["EMULATOR_MODULES", "require_emulators"]

EMULATOR_MODULES = ("starlette", "uvicorn", "trustme")
"""The import names the ``emulators`` extra installs."""


def require_emulators(verb: str) -> None:
    """Raise a clear error when the ``emulators`` extra is not installed."""
    missing = [name for name in EMULATOR_MODULES if not _importable(name)]
    if missing:
        raise ConfigError(
            [
                ConfigProblem(
                    key="install",
                    problem=f"`crm-bridge {verb}` needs the emulators extra "
                    f"(missing: {', '.join(missing)})",
                    fix='pip install "crm-bridge[emulators]"',
                )
            ],
            heading="The local emulators are not installed",
        )


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
