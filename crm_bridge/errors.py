"""Every error crm-bridge raises on purpose, grouped by what the caller should do about it.

The tree (each class's CLI exit code in brackets)::

    CrmBridgeError [1]
    ├── ConfigError [2]              fix the TOML / environment and run again; lists every problem
    │   └── ConnectorLoadError [2]   a connector could not be found or loaded
    ├── AuthError [3]                credentials are wrong or revoked; a human must act
    ├── TransientError [4]           try again later; the engine retries these itself
    │   └── RateLimitedError [4]     the vendor said "slow down" (carries retry_after)
    ├── RecordRejectedError [5]      one record was refused; it goes to the dead-letter store
    ├── SyncAbortedError [7]         a safety guard stopped the cycle (e.g. the delete-ratio guard)
    └── StoreError [8]               the state store cannot be used
        └── StoreLockedError [9]     another writer holds the store's lock

Why a tree grouped by action rather than by vendor: the engine decides per class whether to retry,
dead-letter, stop or ask for a human, and a connector author only has to pick the right class.
Messages never contain secrets: exceptions are built from masked values (see
:mod:`crm_bridge.secrets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AuthError",
    "ConfigError",
    "ConfigProblem",
    "ConnectorLoadError",
    "CrmBridgeError",
    "RateLimitedError",
    "RecordRejectedError",
    "StoreError",
    "StoreLockedError",
    "SyncAbortedError",
    "TransientError",
]


class CrmBridgeError(Exception):
    """Root of the tree; ``exit_code`` is what the CLI returns when this reaches it."""

    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        connector: str | None = None,
        object_name: str | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.connector = connector
        self.object_name = object_name
        self.record_id = record_id
        self.field = field

    def __str__(self) -> str:
        where = [
            f"{label}={value}"
            for label, value in (
                ("connector", self.connector),
                ("object", self.object_name),
                ("record", self.record_id),
                ("field", self.field),
            )
            if value
        ]
        return f"{self.message} ({', '.join(where)})" if where else self.message


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration: where, which env var was tried, and the fix."""

    key: str
    problem: str
    env_var: str | None = None
    fix: str | None = None

    def render(self) -> str:
        """One line for the terminal, e.g. ``connectors.sf.client_secret: ... (env X) -> fix``."""
        text = f"{self.key}: {self.problem}"
        if self.env_var:
            text += f" [env var: {self.env_var}]"
        if self.fix:
            text += f" -> {self.fix}"
        return text


class ConfigError(CrmBridgeError):
    """The configuration cannot be used; carries every problem found, not just the first."""

    exit_code: ClassVar[int] = 2

    def __init__(self, problems: Sequence[ConfigProblem], *, heading: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = heading or f"invalid configuration: {count} problem{'s' if count != 1 else ''}"
        body = "\n".join(f"  - {p.render()}" for p in self.problems)
        super().__init__(f"{head}\n{body}" if body else head)


class ConnectorLoadError(ConfigError):
    """A connector named in the config is not installed or does not honour the connector API."""

    def __init__(self, message: str, *, key: str = "connectors", fix: str | None = None) -> None:
        super().__init__([ConfigProblem(key=key, problem=message, fix=fix)], heading=message)


class AuthError(CrmBridgeError):
    """The vendor refused our credentials even after a token refresh."""

    exit_code: ClassVar[int] = 3


class TransientError(CrmBridgeError):
    """Something that usually goes away: a timeout, a 5xx, a locked row."""

    exit_code: ClassVar[int] = 4


class RateLimitedError(TransientError):
    """The vendor asked us to slow down; ``retry_after`` seconds if it said how long."""

    def __init__(self, message: str, *, retry_after: float | None = None, **where: str) -> None:
        super().__init__(message, **where)
        self.retry_after = retry_after


class RecordRejectedError(CrmBridgeError):
    """One record was refused by a side; ``code`` is the vendor's error code when it gave one."""

    exit_code: ClassVar[int] = 5

    def __init__(self, message: str, *, code: str | None = None, **where: str) -> None:
        super().__init__(message, **where)
        self.code = code


class SyncAbortedError(CrmBridgeError):
    """A safety guard stopped the cycle before it could do harm; the message names the override."""

    exit_code: ClassVar[int] = 7


class StoreError(CrmBridgeError):
    """The state store is unreachable, corrupt or on an unknown schema."""

    exit_code: ClassVar[int] = 8


class StoreLockedError(StoreError):
    """Another process holds the store's single-writer lock (e.g. a daemon is running)."""

    exit_code: ClassVar[int] = 9
