"""crm-bridge's persistent state: links, cursors, dead letters, runs, decisions and audit log.

Open a store with :meth:`Store.open` (SQLite file by default, PostgreSQL by URL); it migrates the
schema to head.  Do all work inside :meth:`Store.transaction`, and hold :meth:`Store.writer_lock`
for the duration of a sync run.  See ``docs/store.md``.
"""

from crm_bridge.store.errors import (
    StoreConflictError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    StoreSchemaError,
)
from crm_bridge.store.models import (
    AuditEntry,
    ChangeCursor,
    CursorPhase,
    DeadLetter,
    DeadLetterStatus,
    Decision,
    DecisionIn,
    Keyset,
    Link,
    LinkStatus,
    PendingWrite,
    Run,
    RunStatus,
    Side,
    SideState,
)
from crm_bridge.store.store import Backend, LinkIn, Store, StoreTx, display_url

__all__ = [
    "AuditEntry",
    "Backend",
    "ChangeCursor",
    "CursorPhase",
    "DeadLetter",
    "DeadLetterStatus",
    "Decision",
    "DecisionIn",
    "Keyset",
    "Link",
    "LinkIn",
    "LinkStatus",
    "PendingWrite",
    "Run",
    "RunStatus",
    "Side",
    "SideState",
    "Store",
    "StoreConflictError",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreSchemaError",
    "StoreTx",
    "display_url",
]
