"""The Typer application object, shared options and the error boundary."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crm_bridge import __version__
from crm_bridge.config import LoadedConfig, load_config
from crm_bridge.errors import CrmBridgeError
from crm_bridge.log import configure_logging

__all__ = [
    "ConfigOption",
    "OutputOption",
    "SecretsFileOption",
    "app",
    "err_console",
    "guarded",
    "load",
    "out",
    "parse_since",
]

out = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="crm-bridge",
    help="Sync marketing and sales systems, enforce lead SLAs, report win/loss reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="CRM_BRIDGE_CONFIG",
        help="TOML configuration file (env: CRM_BRIDGE_CONFIG).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file (default: standard output)."),
]
SecretsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--secrets-file",
        envvar="CRM_BRIDGE_SECRETS_FILE",
        help="KEY=value file with CRM_BRIDGE_* secrets (env: CRM_BRIDGE_SECRETS_FILE).",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"crm-bridge {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Sync marketing and sales systems, enforce lead SLAs, report win/loss reasons.

    Example: crm-bridge config check --config config.toml
    """


@contextmanager
def guarded() -> Iterator[None]:
    """Turn crm-bridge errors into a message on stderr and their class's exit code."""
    try:
        yield
    except CrmBridgeError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code) from None


def load(config: Path | None, secrets_file: Path | None) -> LoadedConfig:
    """Load and validate the configuration, then set up logging with its secrets masked."""
    loaded = load_config(
        config,
        secrets_file=secrets_file,
        builtin_only=os.environ.get("CRM_BRIDGE_DISABLE_PLUGINS") == "1",
    )
    configure_logging(loaded.settings.logging, secrets=loaded.secret_values(), stream=sys.stderr)
    return loaded


def parse_since(value: str | None) -> datetime | None:
    """``--since`` as an aware datetime: an ISO date (midnight UTC) or an ISO datetime."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+00:00]",
            param_hint="--since",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
