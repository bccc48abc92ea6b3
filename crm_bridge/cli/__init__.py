"""The ``crm-bridge`` command line: one module per group of verbs, all registered here.

Why a thin CLI: every verb parses options, loads the config once through
:func:`crm_bridge.config.load_config`, calls into the library and renders the result.  Errors from
the library reach the user as one clear message and the exit code of their class in
:mod:`crm_bridge.errors`; no traceback is shown for expected failures.
"""

from __future__ import annotations

from crm_bridge.cli import (  # noqa: F401  (registers the verbs)
    config_cmd,
    connectors_cmd,
    demo_cmd,
    emulate_cmd,
    explain_cmd,
    funnel_cmd,
    new_connector_cmd,
    owners_cmd,
    reasons_cmd,
    sla_cmd,
    sync_cmd,
    worker_cmd,
)
from crm_bridge.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
