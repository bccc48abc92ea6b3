"""Structured logging (key=value or JSON lines) with secrets masked before anything is formatted.

Why masking happens here and not at each call site: a secret can reach a log line by accident --
inside an exception message, a URL, a repr.  Every record, from crm-bridge's own structlog calls
and from third-party libraries' stdlib logging alike, passes through :class:`SecretMasker` as the
last step before rendering.  The masker is built from the configuration's secret values, so it
needs no module-global list.

Why libraries are quieted here: at ``info`` an operator wants crm-bridge's own events (see
:mod:`crm_bridge.ops.events`), not alembic announcing its migration context on every command or
httpx logging each request line.  The loggers in :data:`NOISY_LIBRARIES` are held at ``warning``
unless the configured level is ``debug``, where everything shows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

from crm_bridge.config import LoggingSettings

__all__ = ["MASK", "NOISY_LIBRARIES", "SecretMasker", "configure_logging", "get_logger"]

MASK = "**********"

NOISY_LIBRARIES = (
    "alembic",
    "httpx",
    "httpcore",
    "urllib3",
    "requests",
    "simple_salesforce",
    "hubspot",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "sqlalchemy",
)
"""Third-party loggers shown only at ``debug`` (their warnings and errors always show)."""


class SecretMasker:
    """A structlog processor replacing secret values, and ``SecretStr`` objects, with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask_text(self, text: str) -> str:
        """``text`` with every known secret value replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _mask(self, value: Any) -> Any:
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._mask(v) for v in value)
        if isinstance(value, BaseException):
            return self.mask_text(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Mask every value of the event, and the rendered exception if there is one."""
        for key in list(event_dict):
            event_dict[key] = self._mask(event_dict[key])
        return event_dict


def configure_logging(
    settings: LoggingSettings, *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> SecretMasker:
    """Route structlog and stdlib logging to ``stream`` (stderr) in the configured format."""
    masker = SecretMasker(secrets)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            masker,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_crm_bridge", False)]:
        root.removeHandler(old)
    handler._crm_bridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    quiet = logging.NOTSET if settings.level == "debug" else logging.WARNING
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    return masker


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; call ``configure_logging`` first (the CLI does)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
