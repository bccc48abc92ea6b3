"""The in-memory org: records, indexes, and an undo journal for all-or-none requests.

Why plain dicts: a record is a ``dict`` of field name -> wire value holding only the fields that
are set, so a million leads fit in well under 2 GB; rendering a record is a dict comprehension.
Why an undo journal instead of copying the org: sObject Collections, Composite and Bulk jobs
need "all or none" over a few hundred writes; undoing them costs as little as doing them.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crm_bridge.connectors.salesforce.emulator.auth import TokenStore
from crm_bridge.connectors.salesforce.emulator.ids import KEY_PREFIXES, make_id, normalize_id
from crm_bridge.connectors.salesforce.emulator.schema import SObjectType, standard_objects
from crm_bridge.connectors.salesforce.emulator.settings import SalesforceEmulatorSettings
from crm_bridge.connectors.salesforce.emulator.values import format_datetime
from crm_bridge.emulators.runtime import EmulatorClock

if TYPE_CHECKING:
    from crm_bridge.connectors.salesforce.emulator.bulk2 import BulkJob
    from crm_bridge.connectors.salesforce.emulator.soql import Cursor
    from crm_bridge.connectors.salesforce.emulator.tooling import ToolingCatalog

__all__ = ["ObjectStore", "Org", "Savepoint"]

Record = dict[str, Any]
WriteHook = Callable[["ObjectStore", "Record | None", "Record"], None]
"""Called with ``(store, old, new)`` after every :meth:`Org.put` (change data capture)."""


class ObjectStore:
    """All records of one object, by id, plus lookup indexes (email, external ids)."""

    __slots__ = ("by_email", "by_ext", "modlog", "modlog_sorted", "records", "type")

    def __init__(self, sobject: SObjectType) -> None:
        self.type = sobject
        self.records: dict[str, Record] = {}
        self.by_email: dict[str, list[str]] = {}
        self.by_ext: dict[str, dict[Any, list[str]]] = {}
        self.modlog: list[tuple[str, str]] = []
        self.modlog_sorted = True

    def log_write(self, rec: Record) -> None:
        """Append ``(SystemModstamp, Id)`` to the modification log.

        Why a log: the incremental-sync query (``WHERE SystemModstamp > X``) then binary-searches
        instead of scanning a million records.  Entries go stale when a record changes again;
        readers skip an entry whose stamp is no longer the record's.
        """
        stamp = rec.get("SystemModstamp")
        if stamp is None:
            return
        if self.modlog and stamp < self.modlog[-1][0]:
            self.modlog_sorted = False  # the clock moved back, or seed data arrived
        self.modlog.append((stamp, rec["Id"]))

    def since(self, stamp: str, *, inclusive: bool) -> list[Record]:
        """Records whose SystemModstamp is after ``stamp`` (or at it), oldest change first."""
        if not self.modlog_sorted or len(self.modlog) > 2 * len(self.records) + 1024:
            self.modlog = sorted((r["SystemModstamp"], r["Id"]) for r in self.records.values())
            self.modlog_sorted = True
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        start = find(self.modlog, stamp, key=lambda e: e[0])
        out: list[Record] = []
        seen: set[str] = set()
        records = self.records
        for entry_stamp, rid in self.modlog[start:]:
            rec = records.get(rid)
            if rec is not None and rec["SystemModstamp"] == entry_stamp and rid not in seen:
                seen.add(rid)
                out.append(rec)
        return out

    def ext_fields(self) -> tuple[str, ...]:
        """Names of the external-id fields that are indexed."""
        return self.type.rules.external_ids

    @staticmethod
    def ext_key(value: Any) -> Any:
        """External ids match case-insensitively (a real org's default for text ids)."""
        return value.lower() if isinstance(value, str) else value

    def index(self, rec: Record) -> None:
        """Add ``rec`` to the indexes."""
        rid = rec["Id"]
        email = rec.get("Email")
        if email:
            self.by_email.setdefault(email.lower(), []).append(rid)
        for name in self.ext_fields():
            value = rec.get(name)
            if value is not None:
                self.by_ext.setdefault(name, {}).setdefault(self.ext_key(value), []).append(rid)

    def unindex(self, rec: Record) -> None:
        """Remove ``rec`` from the indexes."""
        rid = rec["Id"]
        email = rec.get("Email")
        if email:
            ids = self.by_email.get(email.lower())
            if ids and rid in ids:
                ids.remove(rid)
                if not ids:
                    del self.by_email[email.lower()]
        for name in self.ext_fields():
            value = rec.get(name)
            bucket = self.by_ext.get(name, {}).get(self.ext_key(value))
            if bucket and rid in bucket:
                bucket.remove(rid)

    def reindex(self) -> None:
        """Rebuild every index (after a custom external-id field appears, or a load)."""
        self.by_email.clear()
        self.by_ext.clear()
        for rec in self.records.values():
            self.index(rec)
        self.modlog_sorted = False


@dataclass
class Savepoint:
    """Undo entries written since an :meth:`Org.atomic` block began."""

    entries: list[tuple[ObjectStore, str, Record | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)


class Org:
    """One emulated org.  Every public method expects the caller to hold :attr:`lock`."""

    def __init__(self, settings: SalesforceEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        self._stamp_ms = -1
        self._stamp = ""
        self.tokens = TokenStore(settings.org_id)
        self.write_hooks: list[WriteHook] = []
        self.reset()

    # ----------------------------------------------------------------- lifecycle
    def reset(self) -> None:
        """An empty org holding only the integration user."""
        from crm_bridge.connectors.salesforce.emulator.tooling import ToolingCatalog

        self.schema: dict[str, SObjectType] = standard_objects()
        self._schema_lower = {name.lower(): t for name, t in self.schema.items()}
        self.stores: dict[str, ObjectStore] = {n: ObjectStore(t) for n, t in self.schema.items()}
        self._by_prefix = {t.key_prefix: self.stores[n] for n, t in self.schema.items()}
        self.counter = 1
        self.api_used = 0
        self.api_day = ""
        self.daily_api_limit = self.settings.daily_api_limit
        self.duplicate_rules = self.settings.duplicate_rules
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self.bulk_jobs: dict[str, BulkJob] = {}
        self.tooling: ToolingCatalog = ToolingCatalog(self)
        self.tokens.clear()
        self._journal: Savepoint | None = None
        self.integration_user_id = self.add_user(
            self.settings.integration_username,
            "Integration",
            "User",
            title="API Integration",
            alias="integ",
        )

    def add_user(
        self,
        username: str,
        first: str,
        last: str,
        *,
        title: str | None = None,
        alias: str | None = None,
        manager_id: str | None = None,
        email: str | None = None,
    ) -> str:
        """Insert a User directly (no validation); seed data and reset use it."""
        now = self.now_stamp()
        uid = self.new_id("User")
        rec: Record = {
            "Id": uid,
            "IsDeleted": False,
            "CreatedDate": now,
            "LastModifiedDate": now,
            "SystemModstamp": now,
            "Username": username,
            "Email": email or username,
            "FirstName": first,
            "LastName": last,
            "Alias": alias or (first[:1] + last[:4]).lower(),
            "IsActive": True,
            "UserType": "Standard",
        }
        rec["CreatedById"] = rec["LastModifiedById"] = getattr(self, "integration_user_id", uid)
        if title:
            rec["Title"] = title
        if manager_id:
            rec["ManagerId"] = manager_id
        self.put(self.stores["User"], rec)
        return uid

    def user_by_username(self, username: str) -> Record | None:
        """An active or inactive User by (case-insensitive) username."""
        wanted = username.lower()
        for rec in self.stores["User"].records.values():
            if rec["Username"].lower() == wanted:
                return rec
        return None

    # ----------------------------------------------------------------- lookups
    def now_stamp(self) -> str:
        """The clock's time in wire format (memoised per millisecond: writes come in bursts)."""
        now = self.clock.time()
        ms = int(now * 1000)
        if ms != self._stamp_ms:
            self._stamp_ms = ms
            self._stamp = format_datetime(datetime.fromtimestamp(ms / 1000, tz=UTC))
        return self._stamp

    def new_id(self, object_name: str) -> str:
        """A fresh 18-character id with the object's key prefix."""
        prefix = KEY_PREFIXES.get(object_name) or self.schema[object_name].key_prefix
        self.counter += 1
        return make_id(prefix, self.counter)

    def sobject(self, name: str) -> SObjectType | None:
        """An object type by case-insensitive name."""
        return self._schema_lower.get(name.lower())

    def store_for_id(self, record_id: str) -> ObjectStore | None:
        """The store an id belongs to, by its key prefix."""
        return self._by_prefix.get(record_id[:3])

    def find(self, record_id: str) -> tuple[ObjectStore, Record] | None:
        """The store and record for an id (15 or 18 characters), deleted or not."""
        store = self._by_prefix.get(record_id[:3])
        if store is None:
            return None
        rec = store.records.get(normalize_id(record_id))
        return (store, rec) if rec is not None else None

    def get(self, record_id: str | None) -> Record | None:
        """A record by id, or ``None``."""
        if not record_id:
            return None
        store = self._by_prefix.get(record_id[:3])
        return store.records.get(record_id) if store is not None else None

    def records_of(self, name: str) -> dict[str, Record]:
        """Every record of an object (a :class:`~.soql.RecordSource` method)."""
        return self.stores[name].records

    def modified_since(self, name: str, stamp: str, *, inclusive: bool) -> list[Record]:
        """Records of ``name`` with SystemModstamp after (or at) ``stamp``, via the log."""
        return self.stores[name].since(stamp, inclusive=inclusive)

    def email_index(self, name: str) -> dict[str, list[str]] | None:
        """Lower-cased email -> ids for objects with an Email field."""
        store = self.stores[name]
        return store.by_email if store.type.field("Email") is not None else None

    # ----------------------------------------------------------------- writes
    def put(self, store: ObjectStore, rec: Record) -> None:
        """Insert or replace a record, keeping indexes and the undo journal right."""
        rid = rec["Id"]
        old = store.records.get(rid)
        if old is not None:
            store.unindex(old)
        store.records[rid] = rec
        store.index(rec)
        store.log_write(rec)
        if self._journal is not None:
            self._journal.entries.append((store, rid, old))
        for hook in self.write_hooks:
            hook(store, old, rec)

    @contextmanager
    def atomic(self) -> Iterator[Savepoint]:
        """Collect undo entries; an exception (or :meth:`rollback`) undoes the block's writes."""
        outer = self._journal
        sp = Savepoint()
        self._journal = sp
        try:
            yield sp
        except BaseException:
            self.rollback(sp)
            raise
        finally:
            self._journal = outer
        if outer is not None:
            outer.entries.extend(sp.entries)

    def rollback(self, sp: Savepoint) -> None:
        """Undo every write recorded in ``sp`` (newest first)."""
        for store, rid, old in reversed(sp.entries):
            current = store.records.pop(rid, None)
            if current is not None:
                store.unindex(current)
            if old is not None:
                store.records[rid] = old
                store.index(old)
        sp.entries.clear()

    # ----------------------------------------------------------------- api usage
    def count_api_call(self) -> tuple[bool, str]:
        """Spend one call of the daily allocation; ``(allowed, Sforce-Limit-Info value)``.

        The allocation resets when the emulator clock crosses a UTC day boundary (a real org uses
        a rolling 24 h window; a calendar day is easier to reason about in tests).
        """
        day = self.clock.now().strftime("%Y-%m-%d")
        if day != self.api_day:
            self.api_day = day
            self.api_used = 0
        if self.api_used >= self.daily_api_limit:
            return False, self.limit_info()
        self.api_used += 1
        return True, self.limit_info()

    def limit_info(self) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.api_used}/{self.daily_api_limit}"
