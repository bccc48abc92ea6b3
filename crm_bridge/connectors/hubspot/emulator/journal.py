"""The webhooks journal: subscriptions, an append-only log of entries, pre-signed entry files.

Why an append log of *entries*, not of events: HubSpot's journal hands out one entry at a time
(``earliest`` / ``latest`` / ``offset/{offset}/next``), each a pre-signed file holding a batch of
events, and keeps three days of them.  Here every API call that changed something appends one
entry holding the events of every matching subscription, so a batch call of 100 records is one
entry and one file -- the cost a reader pays is per entry, not per record.

Who wrote is part of every event (``changeSource`` / ``sourceId``), derived from the caller's
token: a portal user's token is ``CRM_UI`` with ``userId:<id>``, an app's token (private app,
OAuth install, client credentials) is ``INTEGRATION`` with the app id.  That is how a reader tells
its own writes from a person's.  Changes made straight on the portal (tests seeding data, outside
any API call) are ``CRM_UI`` without a user, one entry each.

Faults (the control plane, :mod:`.controlplane`) strike entries as they are appended: duplicated
(the same events, same event ids, under a second offset), reordered (the events of one entry in
reverse), dropped (never appended: a gap no offset shows), and every current entry expired early.

Doc: https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide and
.../webhooks-journal/journal-entries/guide (the entry file's schema is not documented; the events
carry the webhooks' fields, see docs/connectors/hubspot.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.hubspot.emulator.auth import Principal
from crm_bridge.connectors.hubspot.emulator.catalog import OBJECT_TYPES
from crm_bridge.connectors.hubspot.emulator.settings import HubSpotEmulatorSettings
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = [
    "ACTIONS",
    "JOURNAL_SCOPES",
    "Entry",
    "Journal",
    "JournalExpired",
    "Source",
    "Subscription",
]

ACTIONS = ("CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE")
"""The OBJECT actions the emulator journals (association, list and snapshot ones are refused)."""

JOURNAL_SCOPES = (
    "developer.webhooks_journal.read",
    "developer.webhooks_journal.subscriptions.read",
    "developer.webhooks_journal.subscriptions.write",
)

RETENTION_SECONDS = 3 * 24 * 3600.0
FILE_TTL_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Source:
    """Who made a change, as the events name it."""

    change_source: str
    source_id: str


UNATTRIBUTED = Source("CRM_UI", "")


@dataclass
class Subscription:
    """One OBJECT subscription of an app: which object type, actions and properties."""

    id: int
    app_id: int
    portal_id: int
    object_type_id: str
    actions: tuple[str, ...]
    properties: tuple[str, ...]
    object_ids: tuple[int, ...]
    created_at: int
    updated_at: int

    def wire(self) -> dict[str, Any]:
        """The subscription as the API answers it."""
        return {
            "id": self.id,
            "appId": self.app_id,
            "portalId": self.portal_id,
            "subscriptionType": "OBJECT",
            "objectTypeId": self.object_type_id,
            "actions": list(self.actions),
            "properties": list(self.properties),
            "objectIds": list(self.object_ids),
            "createdAt": iso_ms(self.created_at),
            "updatedAt": iso_ms(self.updated_at),
        }


@dataclass
class Entry:
    """One journal entry: its offset, when it was written, and its events."""

    offset: str
    written_at: float
    events: list[dict[str, Any]]
    expired: bool = False


class JournalExpired(Exception):
    """An offset the journal no longer has (older than the retention, or never handed out)."""


@dataclass
class _Faults:
    duplicate: int = 0
    reorder: int = 0
    drop: int = 0
    dropped: int = 0


@dataclass
class _Scope:
    source: Source
    events: list[dict[str, Any]] = field(default_factory=list)


class Journal:
    """Every app's subscriptions and the portal's journal; thread-safe."""

    def __init__(self, settings: HubSpotEmulatorSettings, clock: EmulatorClock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.RLock()
        self._key = secrets.token_bytes(16)
        self._local = threading.local()
        self.reset()

    def reset(self) -> None:
        """No subscriptions, no entries, no armed faults, default retention."""
        with self._lock:
            self.subscriptions: dict[int, Subscription] = {}
            self.entries: list[Entry] = []
            self._by_offset: dict[str, int] = {}
            self._next_subscription = 1
            self._next_event = 1
            self.faults = _Faults()
            self.retention_seconds = RETENTION_SECONDS
            self.file_ttl_seconds = FILE_TTL_SECONDS

    # -- who is writing --------------------------------------------------------------------------

    def source_of(self, principal: Principal) -> Source:
        """``CRM_UI`` + ``userId:N`` for a person's token, ``INTEGRATION`` + app id for an app's."""
        if principal.kind == "user" and principal.user_id is not None:
            return Source("CRM_UI", f"userId:{principal.user_id}")
        app = principal.app_id if principal.app_id is not None else self.settings.app_id
        return Source("INTEGRATION", str(app))

    @contextlib.contextmanager
    def call(self, principal: Principal | None) -> Iterator[None]:
        """One API call: every change inside becomes one entry when the call ends."""
        source = UNATTRIBUTED if principal is None else self.source_of(principal)
        outer = getattr(self._local, "scope", None)
        if outer is not None:  # nested (a control route calling a handler): the outer one records
            yield
            return
        scope = _Scope(source)
        self._local.scope = scope
        try:
            yield
        finally:
            self._local.scope = None
            if scope.events:
                self._append(scope.events)

    # -- recording (called by the portal under its lock) -----------------------------------------

    def changed(
        self,
        action: str,
        obj: str,
        object_id: int,
        changes: Mapping[str, str] | None = None,
        merged: Sequence[int] = (),
    ) -> None:
        """A record was created / updated / deleted / merged / restored: journal its events."""
        otype = OBJECT_TYPES.get(obj)
        if otype is None:
            return
        with self._lock:
            subs = [
                s
                for s in self.subscriptions.values()
                if s.object_type_id == otype.type_id
                and action in s.actions
                and (not s.object_ids or object_id in s.object_ids)
            ]
            if not subs:
                return
            scope: _Scope | None = getattr(self._local, "scope", None)
            source = scope.source if scope is not None else UNATTRIBUTED
            events: list[dict[str, Any]] = []
            for sub in subs:
                events.extend(self._events(sub, action, otype.type_id, object_id, changes, merged))
            if not events:
                return
            for event in events:
                event.update(changeSource=source.change_source, sourceId=source.source_id)
        if scope is not None:
            scope.events.extend(events)
        else:
            self._append(events)

    def _events(
        self,
        sub: Subscription,
        action: str,
        type_id: str,
        object_id: int,
        changes: Mapping[str, str] | None,
        merged: Sequence[int],
    ) -> list[dict[str, Any]]:
        now = int(self.clock.time() * 1000)

        def event(**extra: Any) -> dict[str, Any]:
            eid = self._next_event
            self._next_event += 1
            return {
                "eventId": eid,
                "subscriptionId": sub.id,
                "portalId": sub.portal_id,
                "appId": sub.app_id,
                "occurredAt": now,
                "subscriptionType": "OBJECT",
                "objectTypeId": type_id,
                "objectId": object_id,
                "action": action,
                **extra,
            }

        if action == "UPDATE" and sub.properties:
            # A property-filtered subscription: one event per listed property that changed.
            return [
                event(propertyName=name, propertyValue=value)
                for name, value in sorted((changes or {}).items())
                if name in sub.properties
            ]
        if action == "UPDATE" and not changes:
            return []
        if action == "MERGE":
            return [event(primaryObjectId=object_id, mergedObjectIds=list(merged))]
        return [event()]

    def _append(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._expire()
            faults = self.faults
            if faults.drop > 0:
                faults.drop -= 1
                faults.dropped += 1
                return
            if faults.reorder > 0:
                faults.reorder -= 1
                events = list(reversed(events))
            copies = 1
            if faults.duplicate > 0:
                faults.duplicate -= 1
                copies = 2
            for _ in range(copies):
                entry = Entry(str(uuid.uuid4()), self.clock.time(), [dict(e) for e in events])
                self._by_offset[entry.offset] = len(self.entries)
                self.entries.append(entry)

    # -- subscriptions ---------------------------------------------------------------------------

    def upsert_subscription(
        self,
        app_id: int,
        portal_id: int,
        object_type_id: str,
        actions: Sequence[str],
        properties: Sequence[str],
        object_ids: Sequence[int],
    ) -> tuple[Subscription, bool]:
        """Create the app's subscription to an object type, or replace its actions/properties.

        One OBJECT subscription per app, portal and object type, as "create or update" says;
        returns it and whether it is new.
        """
        now = int(self.clock.time() * 1000)
        with self._lock:
            for sub in self.subscriptions.values():
                if (sub.app_id, sub.portal_id, sub.object_type_id) == (
                    app_id,
                    portal_id,
                    object_type_id,
                ):
                    sub.actions = tuple(actions)
                    sub.properties = tuple(properties)
                    sub.object_ids = tuple(object_ids)
                    sub.updated_at = now
                    return sub, False
            sub = Subscription(
                self._next_subscription,
                app_id,
                portal_id,
                object_type_id,
                tuple(actions),
                tuple(properties),
                tuple(object_ids),
                now,
                now,
            )
            self._next_subscription += 1
            self.subscriptions[sub.id] = sub
            return sub, True

    def of_app(self, app_id: int) -> list[Subscription]:
        """The app's subscriptions, oldest first."""
        with self._lock:
            return [s for s in self.subscriptions.values() if s.app_id == app_id]

    def delete_subscription(self, app_id: int, sub_id: int) -> bool:
        """Remove one of the app's subscriptions; False when it has none by that id."""
        with self._lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None or sub.app_id != app_id:
                return False
            del self.subscriptions[sub_id]
            return True

    # -- reading ---------------------------------------------------------------------------------

    def _expire(self) -> None:
        cutoff = self.clock.time() - self.retention_seconds
        for entry in self.entries:
            if entry.expired:
                continue
            if entry.written_at >= cutoff:
                break
            entry.expired = True

    def _live(self) -> list[Entry]:
        self._expire()
        return [e for e in self.entries if not e.expired]

    def earliest(self) -> Entry | None:
        """The oldest entry still kept."""
        with self._lock:
            live = self._live()
            return live[0] if live else None

    def latest(self) -> Entry | None:
        """The newest entry."""
        with self._lock:
            live = self._live()
            return live[-1] if live else None

    def after(self, offset: str) -> Entry | None:
        """The entry after ``offset`` (``None``: nothing newer yet); :class:`JournalExpired`."""
        with self._lock:
            self._expire()
            index = self._by_offset.get(offset)
            if index is None or self.entries[index].expired:
                raise JournalExpired(offset)
            for entry in self.entries[index + 1 :]:
                if not entry.expired:
                    return entry
            return None

    def expire_all(self) -> int:
        """Fault: every entry written so far is gone, as if three days had passed."""
        with self._lock:
            live = [e for e in self.entries if not e.expired]
            for entry in live:
                entry.expired = True
            return len(live)

    # -- pre-signed files ------------------------------------------------------------------------

    def sign(self, entry: Entry) -> tuple[str, float]:
        """The query string of the entry's pre-signed file URL, and when it expires."""
        expires = self.clock.time() + self.file_ttl_seconds
        return f"expires={int(expires)}&signature={self._signature(entry.offset, int(expires))}", (
            expires
        )

    def _signature(self, offset: str, expires: int) -> str:
        message = f"{offset}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def file(self, offset: str, expires: str, signature: str) -> list[dict[str, Any]] | str:
        """The events of a signed entry file, or why it is refused (an S3-style error code)."""
        if not expires.isdigit() or not hmac.compare_digest(
            signature, self._signature(offset, int(expires))
        ):
            return "SignatureDoesNotMatch"
        if self.clock.time() >= int(expires):
            return "AccessDenied"
        with self._lock:
            index = self._by_offset.get(offset)
            if index is None:
                return "NoSuchKey"
            return [dict(e) for e in self.entries[index].events]

    # -- control plane ---------------------------------------------------------------------------

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Arm faults or change retention; see :mod:`.controlplane`.  Returns :meth:`status`."""
        known = {
            "duplicate_next",
            "reorder_next",
            "drop_next",
            "expire_all",
            "retention_seconds",
            "file_ttl_seconds",
        }
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown journal keys: {sorted(unknown)}")
        with self._lock:
            self.faults.duplicate += int(changes.get("duplicate_next", 0))
            self.faults.reorder += int(changes.get("reorder_next", 0))
            self.faults.drop += int(changes.get("drop_next", 0))
            if "retention_seconds" in changes:
                self.retention_seconds = float(changes["retention_seconds"])
            if "file_ttl_seconds" in changes:
                self.file_ttl_seconds = float(changes["file_ttl_seconds"])
            if changes.get("expire_all"):
                self.expire_all()
            return self.status()

    def status(self) -> dict[str, Any]:
        """Counts, armed faults and subscriptions, for tests and ``crm-bridge emulate``."""
        with self._lock:
            live = self._live()
            return {
                "entries": len(live),
                "expired": len(self.entries) - len(live),
                "events": sum(len(e.events) for e in live),
                "dropped": self.faults.dropped,
                "armed": {
                    "duplicate_next": self.faults.duplicate,
                    "reorder_next": self.faults.reorder,
                    "drop_next": self.faults.drop,
                },
                "retention_seconds": self.retention_seconds,
                "file_ttl_seconds": self.file_ttl_seconds,
                "subscriptions": [s.wire() for s in self.subscriptions.values()],
            }
