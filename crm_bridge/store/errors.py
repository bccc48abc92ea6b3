"""Exceptions raised by the state store.

:class:`StoreError` and :class:`StoreLockedError` *are* the package-wide classes from
:mod:`crm_bridge.errors` (exit codes 8 and 9), re-exported so store users need one import and the
CLI's handlers catch what the store raises.  The store-specific refinements below derive from
:class:`StoreError`, so callers can catch "anything the store refused" without catching
SQLAlchemy's own exception tree.
"""

from __future__ import annotations

from crm_bridge.errors import StoreError, StoreLockedError

__all__ = [
    "StoreConflictError",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreSchemaError",
]


class StoreConflictError(StoreError):
    """A write would break a uniqueness rule (e.g. a second active link for the same record).

    The offending statement is undone, but the surrounding transaction stays usable on both
    SQLite and PostgreSQL, so one bad record does not cost a whole batch.
    """


class StoreNotFoundError(StoreError, LookupError):
    """An update addressed a row id that does not exist."""


class StoreSchemaError(StoreError):
    """The database schema cannot be brought to this version of crm-bridge.

    Typically the database was migrated by a newer crm-bridge than the one now running.
    """
