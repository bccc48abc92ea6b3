"""Change Data Capture in the emulated org: every committed write becomes a change event.

Why capture at :meth:`Org.put`: every write path the emulator serves (REST sObjects, Collections,
Composite, Bulk 2.0, merge, lead conversion) ends there, so no path can forget to publish.  A
*transaction* (:meth:`EventBus.transaction`) spans one API request or one control-plane action;
writes are collected while it is open and turned into events when it closes, from the net
difference between each record before its first write and after its last one.  So a write an
all-or-none request rolled back publishes nothing, and a record created and updated in one
request gives one CREATE event, as in a real org.

What an event holds (the Avro record served by ``GetSchema``): ``ChangeEventHeader`` (entityName,
recordIds, changeType, changeOrigin, transactionKey, sequenceNumber, commitTimestamp,
commitNumber, commitUser, nulledFields, diffFields, changedFields) and one optional field per
field of the object.  ``changedFields``/``nulledFields`` are the Avro *bitmaps* a real org sends
to Pub/Sub subscribers (``["0x..."]``, bit *i* = the schema's top-level field *i*), not the
names Apex triggers see.  Simplified: fields are flat (a real Lead's ``Name`` is a nested
compound record), ``diffFields`` stays empty, and the events of one transaction with the same
entity, change type and changed values share one event (``recordIds`` lists them), which a real
org also does.

Retention is 72 hours on the emulator clock; replay ids are opaque 8-byte values that grow by
uneven steps, so clients cannot count on them being contiguous.
Docs: https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import io
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import fastavro

from crm_bridge.connectors.salesforce.emulator.schema import SObjectType
from crm_bridge.connectors.salesforce.emulator.state import ObjectStore, Org, Record
from crm_bridge.connectors.salesforce.emulator.values import parse_datetime
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = [
    "ALL_CHANGES_TOPIC",
    "CHANGE_TYPES",
    "RETENTION_SECONDS",
    "BusEvent",
    "EventBus",
    "ReplayExpired",
    "bitmap",
    "topic_for",
]

ALL_CHANGES_TOPIC = "/data/ChangeEvents"
"""The standard channel carrying the change events of every entity selected for CDC."""
RETENTION_SECONDS = 72 * 3600
CHANGE_TYPES = (
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
)
MAX_EVENTS = 200_000
"""Events the bus keeps at most (oldest dropped first, as if purged): bounds the emulator's
memory on bulk benches; a real org's limit is only the 72 h retention."""
OVERFLOW_LIMIT = 100_000
"""Changes of one entity in one transaction past which a real org sends one GAP_OVERFLOW."""
_NOT_IN_EVENTS = frozenset({"Id", "IsDeleted", "SystemModstamp"})
_REPLAY_BYTES = 8


def topic_for(entity: str) -> str:
    """``Lead`` -> ``/data/LeadChangeEvent``; ``Thing__c`` -> ``/data/Thing__ChangeEvent``."""
    if entity.endswith("__c"):
        return f"/data/{entity[:-3]}__ChangeEvent"
    return f"/data/{entity}ChangeEvent"


def bitmap(positions: list[int]) -> list[str]:
    """Field positions as a Pub/Sub bitmap: ``["0x..."]`` (bit i set = field i), or ``[]``."""
    if not positions:
        return []
    value = sum(1 << p for p in set(positions))
    digits = format(value, "X")
    return ["0x" + digits.rjust(len(digits) + len(digits) % 2, "0")]


_STAMPS = frozenset({"LastModifiedDate", "SystemModstamp"})
"""Per-record audit stamps that do not make two records' identical changes different."""


class ReplayExpired(Exception):
    """A CUSTOM replay id the bus cannot resume from (purged past 72 h, or never issued)."""


@dataclass
class BusEvent:
    """One published change event as the bus keeps it.

    The Avro payload is encoded on first delivery and kept: encoding is most of an event's
    cost, and a bulk load that nobody subscribes to should not pay it for every row.
    """

    replay: int
    event_id: str
    entity: str
    change_type: str
    record_ids: tuple[str, ...]
    schema: _Schema
    header: dict[str, Any]
    values: dict[str, Any]
    """The fields the event carries, as the org stores them (converted to Avro when encoded)."""
    published_at: float
    _payload: bytes | None = None

    @property
    def schema_id(self) -> str:
        """The id ``GetSchema`` serves this event's schema under."""
        return self.schema.schema_id

    @property
    def payload(self) -> bytes:
        """The Avro-encoded event (schemaless: the schema is served by ``GetSchema``)."""
        if self._payload is None:
            types = self.schema.types
            record: dict[str, Any] = dict.fromkeys(types)
            for name, value in self.values.items():
                record[name] = _avro_value(types[name], value)
            record["ChangeEventHeader"] = self.header
            out = io.BytesIO()
            fastavro.schemaless_writer(out, self.schema.parsed, record)
            self._payload = out.getvalue()
        return self._payload

    @property
    def replay_id(self) -> bytes:
        """The opaque replay id on the wire."""
        return self.replay.to_bytes(_REPLAY_BYTES, "big")


@dataclass
class _Schema:
    schema_id: str
    json: str
    parsed: Any
    fields: list[tuple[str, str]]  # (field name, emulator field type), in schema order
    positions: dict[str, int] = field(default_factory=dict)  # name -> index in the record
    types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = {name: i + 1 for i, (name, _) in enumerate(self.fields)}
        self.types = dict(self.fields)


@dataclass
class _Transaction:
    origin: str
    touched: dict[tuple[str, str], tuple[ObjectStore, Record | None]] = field(default_factory=dict)


@dataclass
class BusFaults:
    """Event faults armed on the bus (the HTTP fault plane also strikes the RPCs themselves)."""

    gap: int = 0
    """The next N events lose their body and become ``GAP_<type>`` (header only)."""
    duplicate: int = 0
    """The next N deliveries are sent twice."""
    reorder: int = 0
    """The next N events are held and published in reverse order."""


class EventBus:
    """The org's change events: capture, encoding, retention, and the waiters of Subscribe."""

    def __init__(self, org: Org, clock: EmulatorClock, *, seed: int = 7) -> None:
        self.org = org
        self.clock = clock
        self.cond = threading.Condition(threading.RLock())
        self.faults = BusFaults()
        self.overflow_limit = OVERFLOW_LIMIT
        self.max_events = MAX_EVENTS
        self.closed = False
        self._random = random.Random(seed)
        self._ids = random.Random()  # event ids and transaction keys: unique across emulators
        self._schemas: dict[str, _Schema] = {}
        self._schema_for: dict[tuple[str, tuple[tuple[str, str], ...]], _Schema] = {}
        self._current: dict[str, tuple[Any, _Schema]] = {}
        self._tx: _Transaction | None = None
        self._held: list[BusEvent] = []
        self._commit_number = 0
        self._next = 10_000 + self._random.randrange(1, 1000)
        self.events: list[BusEvent] = []
        self.floor = self._next
        """Replay ids below this can no longer be resumed from (purged, or from before a reset)."""
        self._floor_purged = False  # the floor is a purged event's id: refused too
        org.write_hooks.append(self._on_put)

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget every event, fault and limit; replay ids issued before are refused from now on."""
        with self.cond:
            self.events.clear()
            self._held.clear()
            self.faults = BusFaults()
            self.overflow_limit = OVERFLOW_LIMIT
            self.max_events = MAX_EVENTS
            self._step()
            self.floor = self._next
            self._floor_purged = False
            self.cond.notify_all()

    def close(self) -> None:
        """Wake every waiting subscriber so its stream ends (the server is stopping)."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # ------------------------------------------------------------------ topics and schemas
    def entities(self) -> list[str]:
        """Entities selected for CDC: every object the emulated org has."""
        return sorted(self.org.schema)

    def topic_entities(self, topic: str) -> frozenset[str] | None:
        """The entities a topic carries, or ``None`` for an unknown topic."""
        names = self.entities()
        if topic == ALL_CHANGES_TOPIC:
            return frozenset(names)
        for name in names:
            if topic_for(name) == topic:
                return frozenset({name})
        return None

    def schema_of(self, entity: str) -> _Schema:
        """The current Avro schema of an entity's change events (new id when fields change)."""
        t: SObjectType = self.org.schema[entity]
        rules = t.rules  # rebuilt whenever the object's fields change: a cheap validity check
        current = self._current.get(entity)
        if current is not None and current[0] is rules:
            return current[1]
        fields = tuple((f.name, f.type) for f in t.fields.values() if f.name not in _NOT_IN_EVENTS)
        key = (entity, fields)
        with self.cond:
            known = self._schema_for.get(key)
            if known is not None:
                self._current[entity] = (rules, known)
                return known
            doc = _avro_schema(entity, fields)
            text = json.dumps(doc, separators=(",", ":"))
            schema_id = hashlib.sha256(text.encode()).hexdigest()[:22]
            made = _Schema(schema_id, text, fastavro.parse_schema(doc), list(fields))
            self._schemas[schema_id] = made
            self._schema_for[key] = made
            self._current[entity] = (rules, made)
            return made

    def schema_json(self, schema_id: str) -> str | None:
        """A schema by id (also one an old event was written with), or ``None``."""
        with self.cond:
            known = self._schemas.get(schema_id)
        return known.json if known is not None else None

    # ------------------------------------------------------------------ capture
    @contextmanager
    def transaction(self, origin: str) -> Iterator[None]:
        """Collect the writes of one request; publish their net changes when it ends.

        ``origin`` is the ``changeOrigin`` header value (``com/salesforce/api/rest/59.0;
        client=...`` for an API call naming a client, ``""`` for what a person does in the UI).
        Nested transactions join the outer one.  The caller holds ``org.lock``.
        """
        if self._tx is not None:
            yield
            return
        self._tx = _Transaction(origin)
        try:
            yield
        finally:
            tx, self._tx = self._tx, None
            self._publish_transaction(tx)

    def _on_put(self, store: ObjectStore, old: Record | None, new: Record) -> None:
        tx = self._tx
        if tx is None:
            return  # seeding and snapshot loads are not API writes
        key = (store.type.name, str(new["Id"]))
        if key not in tx.touched:
            tx.touched[key] = (store, old)

    def _publish_transaction(self, tx: _Transaction) -> None:
        now = self.clock.time()
        commit_ms = int(now * 1000)
        groups: dict[
            tuple[Any, ...], tuple[str, str, list[str], dict[str, Any], list[str], str]
        ] = {}
        per_entity: dict[str, int] = {}
        overflowed: list[str] = []
        for (entity, rid), (store, before) in tx.touched.items():
            after = store.records.get(rid)
            change = _classify(before, after)
            if change is None:
                continue
            change_type, changed = change
            assert after is not None
            count = per_entity.get(entity, 0) + 1
            per_entity[entity] = count
            if count > self.overflow_limit:
                if entity not in overflowed:
                    overflowed.append(entity)
                continue
            values = {} if change_type == "DELETE" else {k: after.get(k) for k in changed}
            user = str(after.get("LastModifiedById") or "")
            if change_type in ("UPDATE", "DELETE"):
                gkey: tuple[Any, ...] = (
                    entity,
                    change_type,
                    user,
                    # Audit stamps left out: one transaction commits at one instant in a real
                    # org, while the emulator stamps record by record (a millisecond may tick
                    # between two records of one request).
                    tuple(sorted((k, repr(v)) for k, v in values.items() if k not in _STAMPS)),
                )
            else:
                gkey = (entity, change_type, rid)
            if gkey in groups:
                groups[gkey][2].append(rid)
            else:
                groups[gkey] = (entity, change_type, [rid], values, changed, user)
        if not groups and not overflowed:
            return
        with self.cond:
            self._commit_number += self._random.randrange(1, 50)
            key = self._uuid()
            seq = 0
            built: list[BusEvent] = []
            for entity, change_type, rids, values, changed, user in groups.values():
                seq += 1
                built.append(
                    self._build(
                        entity,
                        change_type,
                        rids,
                        values,
                        changed,
                        origin=tx.origin,
                        transaction_key=key,
                        sequence=seq,
                        commit_ms=commit_ms,
                        user=user,
                    )
                )
            for entity in overflowed:
                seq += 1
                built.append(
                    self._build(
                        entity,
                        "GAP_OVERFLOW",
                        [],
                        {},
                        [],
                        origin=tx.origin,
                        transaction_key=key,
                        sequence=seq,
                        commit_ms=commit_ms,
                        user="",
                    )
                )
            for event in built:
                self._append(event)

    # ------------------------------------------------------------------ faults
    def inject_gap(self, entity: str, record_ids: list[str], change_type: str = "UPDATE") -> None:
        """Publish a gap event (header only) for records, as an org does when it lost the details."""
        self._inject(entity, f"GAP_{change_type}", record_ids)

    def inject_overflow(self, entity: str) -> None:
        """Publish a GAP_OVERFLOW event for an entity (a transaction too large to describe)."""
        self._inject(entity, "GAP_OVERFLOW", [])

    def _inject(self, entity: str, change_type: str, record_ids: list[str]) -> None:
        if change_type not in CHANGE_TYPES:
            raise ValueError(f"unknown change type {change_type!r}")
        with self.cond:
            self._commit_number += 1
            event = self._build(
                entity,
                change_type,
                record_ids,
                {},
                [],
                origin="",
                transaction_key=self._uuid(),
                sequence=1,
                commit_ms=int(self.clock.time() * 1000),
                user="",
            )
            self._append(event)

    # ------------------------------------------------------------------ the log
    def _uuid(self) -> str:
        """A random version-4 UUID string (cheaper than ``uuid.uuid4()`` for bulk loads)."""
        h = f"{self._ids.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62) | (4 << 76) | (2 << 62):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _step(self) -> int:
        self._next += self._random.randrange(1, 8)
        return self._next

    def _build(
        self,
        entity: str,
        change_type: str,
        record_ids: list[str],
        values: dict[str, Any],
        changed: list[str],
        *,
        origin: str,
        transaction_key: str,
        sequence: int,
        commit_ms: int,
        user: str,
    ) -> BusEvent:
        schema = self.schema_of(entity)
        if self.faults.gap > 0 and not change_type.startswith("GAP_"):
            self.faults.gap -= 1
            change_type, values, changed = f"GAP_{change_type}", {}, []
        positions = schema.positions
        carried = {name: value for name, value in values.items() if name in positions}
        update = change_type == "UPDATE"
        nulled = [positions[n] for n, v in carried.items() if v is None] if update else []
        header = {
            "entityName": entity,
            "recordIds": list(record_ids),
            "changeType": change_type,
            "changeOrigin": origin,
            "transactionKey": transaction_key,
            "sequenceNumber": sequence,
            "commitTimestamp": commit_ms,
            "commitNumber": self._commit_number,
            "commitUser": user,
            "nulledFields": bitmap(nulled),
            "diffFields": [],
            "changedFields": bitmap([positions[n] for n in changed if n in positions])
            if update
            else [],
        }
        return BusEvent(
            replay=0,
            event_id=self._uuid(),
            entity=entity,
            change_type=change_type,
            record_ids=tuple(record_ids),
            schema=schema,
            header=header,
            values=carried,
            published_at=self.clock.time(),
        )

    def _append(self, event: BusEvent) -> None:
        """Give the event its replay id and put it on the log (or hold it, to reorder)."""
        if self.faults.reorder > 0:
            self._held.append(event)
            if len(self._held) < self.faults.reorder:
                return
            self.faults.reorder = 0
            pending, self._held = list(reversed(self._held)), []
        else:
            pending = [event]
        for item in pending:
            item.replay = self._step()  # not shared yet: ids are given in publishing order
            self.events.append(item)
        excess = len(self.events) - self.max_events
        if excess > 0:
            self.floor = self.events[excess - 1].replay
            self._floor_purged = True
            del self.events[:excess]
        self.cond.notify_all()

    def purge(self) -> None:
        """Drop events older than the retention window (measured on the emulator clock)."""
        with self.cond:
            horizon = self.clock.time() - RETENTION_SECONDS
            keep = 0
            while keep < len(self.events) and self.events[keep].published_at < horizon:
                keep += 1
            if keep:
                self.floor = self.events[keep - 1].replay
                self._floor_purged = True
                del self.events[:keep]

    def start_cursor(self, preset: str, replay_id: bytes) -> int:
        """The replay value a new subscription starts after (it gets the events past it).

        ``LATEST``: the newest id issued; ``EARLIEST``: before the oldest retained event;
        ``CUSTOM``: ``replay_id`` itself, which must be one this bus issued and not purged: an
        event older than 72 h is refused even when nothing after it was lost, as the service
        refuses an id outside the retention window (:class:`ReplayExpired`).
        """
        with self.cond:
            self.purge()
            if preset == "LATEST":
                return self._next
            if preset == "EARLIEST":
                return self.floor
            if len(replay_id) != _REPLAY_BYTES:
                raise ReplayExpired("malformed replay id")
            wanted = int.from_bytes(replay_id, "big")
            purged = wanted < self.floor or (wanted == self.floor and self._floor_purged)
            if purged or wanted > self._next:
                raise ReplayExpired(f"replay id {replay_id.hex()} is not retained")
            return wanted

    def after(self, replay: int) -> list[BusEvent]:
        """Retained events after ``replay``, oldest first (the log is ordered by replay id)."""
        with self.cond:
            self.purge()
            start = bisect.bisect_right(self.events, replay, key=lambda e: e.replay)
            return self.events[start:]

    @staticmethod
    def replay_bytes(replay: int) -> bytes:
        """A replay value as the opaque bytes on the wire."""
        return replay.to_bytes(_REPLAY_BYTES, "big")

    def take_duplicate(self) -> bool:
        """Whether the next delivery is sent twice (consumes one ``duplicate`` fault)."""
        with self.cond:
            if self.faults.duplicate > 0:
                self.faults.duplicate -= 1
                return True
            return False


def _classify(before: Record | None, after: Record | None) -> tuple[str, list[str]] | None:
    """``(changeType, changed field names)`` for a record's net change, or ``None``."""
    if after is None or after is before:
        return None
    was_live = before is not None and not before.get("IsDeleted")
    is_live = not after.get("IsDeleted")
    if before is None:
        if not is_live:
            return None
        return "CREATE", [k for k, v in after.items() if v is not None and k not in _NOT_IN_EVENTS]
    if was_live and not is_live:
        return "DELETE", []
    if not was_live and is_live:
        return "UNDELETE", [
            k for k, v in after.items() if v is not None and k not in _NOT_IN_EVENTS
        ]
    if not is_live:
        return None
    keys = (set(before) | set(after)) - _NOT_IN_EVENTS
    changed = sorted(k for k in keys if before.get(k) != after.get(k))
    return ("UPDATE", changed) if changed else None


_AVRO_TYPES = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "datetime": "long",
    "date": "int",
}


def _avro_schema(entity: str, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    header = {
        "type": "record",
        "name": "ChangeEventHeader",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": {"type": "array", "items": "string"}},
            {
                "name": "changeType",
                "type": {"type": "enum", "name": "ChangeType", "symbols": list(CHANGE_TYPES)},
            },
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
            {"name": "diffFields", "type": {"type": "array", "items": "string"}},
            {"name": "changedFields", "type": {"type": "array", "items": "string"}},
        ],
    }
    name = entity[:-3] + "__ChangeEvent" if entity.endswith("__c") else f"{entity}ChangeEvent"
    return {
        "type": "record",
        "name": name,
        "namespace": "com.sforce.eventbus",
        "fields": [
            {"name": "ChangeEventHeader", "type": header},
            *(
                {"name": fname, "type": ["null", _AVRO_TYPES.get(ftype, "string")], "default": None}
                for fname, ftype in fields
            ),
        ],
    }


@functools.lru_cache(maxsize=4096)
def _epoch_ms(stamp: str) -> int:
    """A wire datetime as epoch milliseconds (memoised: one transaction shares its stamps)."""
    return int(parse_datetime(stamp).timestamp() * 1000)


def _avro_value(field_type: str, value: Any) -> Any:
    """An emulator wire value as the Avro type its field maps to."""
    if value is None:
        return None
    kind = _AVRO_TYPES.get(field_type, "string")
    if kind == "long":
        return _epoch_ms(str(value))
    if kind == "int" and field_type == "date":
        return (date.fromisoformat(str(value)[:10]) - date(1970, 1, 1)).days
    if kind == "int":
        return int(value)
    if kind == "double":
        return float(value)
    if kind == "boolean":
        return bool(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value if isinstance(value, str) else json.dumps(value)
