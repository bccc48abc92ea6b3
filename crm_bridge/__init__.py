"""crm-bridge: close the loop between marketing and sales.

The public API is what connector authors and embedders code against: the connector contract
(:mod:`crm_bridge.connector`) and the error tree (:mod:`crm_bridge.errors`).  Everything else is
reached through its own module.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from crm_bridge.connector import (
    Capability,
    Connector,
    ConnectorSettings,
    Delete,
    ObjectSpec,
    Ordering,
    Owner,
    Record,
    Upsert,
    WriteOp,
    WriteResult,
)
from crm_bridge.errors import (
    AuthError,
    ConfigError,
    ConnectorLoadError,
    CrmBridgeError,
    RateLimitedError,
    RecordRejectedError,
    StoreError,
    StoreLockedError,
    SyncAbortedError,
    TransientError,
)

try:
    __version__ = version("crm-bridge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "AuthError",
    "Capability",
    "ConfigError",
    "Connector",
    "ConnectorLoadError",
    "ConnectorSettings",
    "CrmBridgeError",
    "Delete",
    "ObjectSpec",
    "Ordering",
    "Owner",
    "RateLimitedError",
    "Record",
    "RecordRejectedError",
    "StoreError",
    "StoreLockedError",
    "SyncAbortedError",
    "TransientError",
    "Upsert",
    "WriteOp",
    "WriteResult",
    "__version__",
]
