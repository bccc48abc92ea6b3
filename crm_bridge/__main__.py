"""``python -m crm_bridge`` runs the CLI."""

from crm_bridge.cli import main

main()
