"""The in-memory portal: records, indexes, associations, property definitions, lists, owners.

Why plain dicts of strings: property values are strings on the wire, so storing them as such makes
reads a dict copy, and a million contacts fit in well under 2 GB.  System properties
(``hs_object_id``, ``createdate``, ``lastmodifieddate``) are derived from the record's integer
fields when rendered instead of being stored a second time.

Every mutation goes through :class:`Portal` and happens under ``Portal.lock``: the HTTP handlers
run on the server thread while tests seed, snapshot or reset from theirs.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from crm_bridge.connectors.hubspot.emulator.associations import AssociationGraph
from crm_bridge.connectors.hubspot.emulator.catalog import (
    ASSOCIATION_TYPES,
    DEFAULT_PIPELINE,
    OBJECT_TYPES,
    OWNERS,
    AssociationKind,
    ObjectType,
)
from crm_bridge.connectors.hubspot.emulator.errors import HubSpotError, conflict, property_errors
from crm_bridge.connectors.hubspot.emulator.lists import CrmList, ListStore
from crm_bridge.connectors.hubspot.emulator.properties import (
    FUNNEL_LIFECYCLE_LABELS,
    PropertyDef,
    PropertyRegistry,
    coerce_value,
)
from crm_bridge.connectors.hubspot.emulator.timefmt import iso_ms
from crm_bridge.emulators.runtime import EmulatorClock

__all__ = ["ChangeObserver", "ObjectStore", "Portal", "Record"]

SNAPSHOT_FORMAT = "crm-bridge-hubspot/1"
_EXTERNAL = frozenset({"hubspot_owner_id", "pipeline", "dealstage"})


def _v3_type_name(kind: AssociationKind, type_id: int) -> str:
    """v3 names: the primary link is ``contact_to_company``, the plain one ``..._unlabeled``."""
    if kind.primary_id is not None and type_id == kind.default_id:
        return f"{kind.name}_unlabeled"
    return kind.name


class Record:
    """One CRM record.  ``props`` holds only user-visible, non-derived values."""

    __slots__ = ("archived_at", "created", "id", "props", "updated")

    def __init__(self, rid: int, props: dict[str, str], created: int, updated: int) -> None:
        self.id = rid
        self.props = props
        self.created = created
        self.updated = updated
        self.archived_at = 0


class ObjectStore:
    """The records of one object type, with the indexes the API needs.

    * ``ids`` -- live ids ascending, for ``after`` paging of the list endpoint;
    * ``by_email`` -- lower-cased email -> id (contacts), for ``idProperty=email`` and 409s;
    * ``by_update`` -- ids in write order; while the clock only moves forward this is also
      ``updated`` order, so "modified since X" walks back from the end instead of scanning.
    """

    def __init__(self, otype: ObjectType) -> None:
        self.type = otype
        self.live: dict[int, Record] = {}
        self.archived: dict[int, Record] = {}
        self.ids: list[int] = []
        self.by_email: dict[str, int] = {}
        self.by_update: dict[int, None] = {}
        self.order_ok = True
        self.last_update = 0
        self.version = 0

    def touch(self, rec: Record) -> None:
        """Move a record to the end of the write order after its ``updated`` changed."""
        self.by_update.pop(rec.id, None)
        self.by_update[rec.id] = None
        if rec.updated < self.last_update:
            self.order_ok = False
        else:
            self.last_update = rec.updated
        self.version += 1

    def ensure_order(self) -> None:
        """Rebuild ``by_update`` by timestamp after the clock went backwards."""
        if self.order_ok:
            return
        ordered = sorted(self.live.values(), key=lambda r: (r.updated, r.id))
        self.by_update = dict.fromkeys(r.id for r in ordered)
        self.last_update = ordered[-1].updated if ordered else 0
        self.order_ok = True

    def recent(self, since_ms: int) -> Iterator[Record]:
        """Live records with ``updated >= since_ms``, newest first (needs ``ensure_order``)."""
        live = self.live
        for rid in reversed(self.by_update):
            rec = live[rid]
            if rec.updated < since_ms:
                return
            yield rec

    def add(self, rec: Record) -> None:
        """Index a new live record."""
        self.live[rec.id] = rec
        if not self.ids or rec.id > self.ids[-1]:
            self.ids.append(rec.id)
        else:
            insort(self.ids, rec.id)
        self._index_email(rec, None)
        self.touch(rec)

    def remove(self, rec: Record) -> None:
        """Take a record out of the live indexes."""
        del self.live[rec.id]
        i = bisect_left(self.ids, rec.id)
        if i < len(self.ids) and self.ids[i] == rec.id:
            del self.ids[i]
        self.by_update.pop(rec.id, None)
        email = rec.props.get("email")
        if email is not None and self.by_email.get(email.lower()) == rec.id:
            del self.by_email[email.lower()]
        self.version += 1

    def _index_email(self, rec: Record, old: str | None) -> None:
        if self.type.name != "contacts":
            return
        if old is not None and self.by_email.get(old.lower()) == rec.id:
            del self.by_email[old.lower()]
        email = rec.props.get("email")
        if email:
            key = email.lower()
            self.by_email[email if key == email else key] = rec.id


PRIMARY_COMPANY = "associatedcompanyid"
"""A contact's primary company id: a property HubSpot derives from the primary association, and
writing it moves that association (how a contact's company is set without the associations API)."""


class ChangeObserver(Protocol):
    """Told of every record write (the webhooks journal, :mod:`.journal`)."""

    def changed(
        self,
        action: str,
        obj: str,
        object_id: int,
        changes: Mapping[str, str] | None = None,
        merged: Sequence[int] = (),
    ) -> None:
        """``action`` is CREATE / UPDATE / DELETE / MERGE / RESTORE; ``changes`` what moved."""


class Portal:
    """One HubSpot account's data.

    ``observer`` (set once, kept across resets) hears of every record write made through the
    methods below, whichever API made it: that is how the journal sees writes without each
    endpoint having to remember to tell it.
    """

    def __init__(self, clock: EmulatorClock, portal_id: int) -> None:
        self.clock = clock
        self.portal_id = portal_id
        self.lock = threading.RLock()
        self.observer: ChangeObserver | None = None
        self.reset()

    # -- lifecycle --------------------------------------------------------------------------

    def reset(self) -> None:
        """A fresh portal: default properties, owners and pipeline, no records."""
        with self.lock:
            now = self.now_ms()
            self.stores: dict[str, ObjectStore] = {
                name: ObjectStore(t) for name, t in OBJECT_TYPES.items()
            }
            self.properties = PropertyRegistry(now)
            self.associations = AssociationGraph()
            self.associations.on_primary_change = self._primary_changed
            self.associations.on_link_change = self._associations_changed
            self.lists = ListStore()
            self.merged_into: dict[int, int] = {}
            self.next_id = 1001
            self.created_ms = now
            self.owners: list[dict[str, Any]] = [
                {
                    "id": str(o.owner_id),
                    "email": o.email,
                    "firstName": o.first_name,
                    "lastName": o.last_name,
                    "userId": o.user_id,
                    "teams": [
                        {"id": str(abs(hash(o.team)) % 10**6), "name": o.team, "primary": True}
                    ],
                }
                for o in OWNERS
            ]
            self.pipelines = {"default": ("Sales Pipeline", 0, list(DEFAULT_PIPELINE))}

    def now_ms(self) -> int:
        """The emulator clock in epoch milliseconds."""
        return int(self.clock.time() * 1000)

    def new_id(self) -> int:
        """Ids are unique across object types, so a deal id used as a contact id is a 404."""
        rid = self.next_id
        self.next_id += 1
        return rid

    def store(self, obj: str) -> ObjectStore:
        """The store of an object type (already resolved to its plural name)."""
        return self.stores[obj]

    # -- lookups ----------------------------------------------------------------------------

    def find(self, obj: str, key: str, id_property: str | None = None) -> Record | None:
        """A live record by id (following merges) or by a unique property such as email."""
        store = self.stores[obj]
        if id_property in (None, "", "hs_object_id", "id"):
            if not key.isdigit():
                return None
            rid = int(key)
            rid = self.merged_into.get(rid, rid)
            return store.live.get(rid)
        if id_property == "email" and obj == "contacts":
            rid2 = store.by_email.get(key.lower())
            return store.live.get(rid2) if rid2 is not None else None
        d = self.properties.get(obj, id_property or "")
        if d is None or not d.has_unique_value:
            raise HubSpotError(
                400, f"{id_property} is not a unique identifier property", "VALIDATION_ERROR"
            )
        for rec in store.live.values():
            if rec.props.get(id_property or "") == key:
                return rec
        return None

    def external_options(
        self, obj: str, changes: dict[str, str], rec: Record | None
    ) -> dict[str, set[str]]:
        """Allowed values of owner / pipeline / deal-stage properties for this write."""
        allowed: dict[str, set[str]] = {"hubspot_owner_id": {o["id"] for o in self.owners}}
        if obj == "deals":
            allowed["pipeline"] = set(self.pipelines)
            pipeline = changes.get("pipeline") or (rec.props.get("pipeline") if rec else None)
            stages = self.pipelines.get(pipeline or "default")
            allowed["dealstage"] = {s.stage_id for s in stages[2]} if stages else set()
        return allowed

    def validate(self, obj: str, raw: dict[str, Any], rec: Record | None) -> dict[str, str]:
        """String-coerce and check a write; raises the documented 400 listing every problem."""
        changes = {k: coerce_value(v) for k, v in raw.items()}
        needs_external = any(k in _EXTERNAL for k in changes)
        external = self.external_options(obj, changes, rec) if needs_external else {}
        problems = []
        for name, value in changes.items():
            bad = self.properties.check(obj, name, value, external)
            if bad is not None:
                problems.append((name, bad[0], bad[1]))
        company = changes.get(PRIMARY_COMPANY) if obj == "contacts" else None
        if company and company.isdigit() and int(company) not in self.stores["companies"].live:
            problems.append(
                (PRIMARY_COMPANY, "INVALID_OPTION", f"Company with ID {company} does not exist.")
            )
        if problems:
            raise property_errors(problems)
        return changes

    def check_unique_email(self, obj: str, changes: dict[str, str], rec: Record | None) -> None:
        """409 when the email already belongs to another contact."""
        email = changes.get("email")
        if obj != "contacts" or not email:
            return
        existing = self.stores[obj].by_email.get(email.lower())
        if existing is not None and (rec is None or existing != rec.id):
            raise conflict(
                f"Contact already exists. Existing ID: {existing}",
                context={"existingId": [str(existing)]},
            )

    # -- writes -----------------------------------------------------------------------------

    def create(self, obj: str, changes: dict[str, str], actor: str | None) -> Record:
        """Insert a validated record."""
        now = self.now_ms()
        company = changes.get(PRIMARY_COMPANY) if obj == "contacts" else None
        props = {k: v for k, v in changes.items() if v != "" and k != PRIMARY_COMPANY}
        rec = Record(self.new_id(), props, now, now)
        self._derive(obj, rec, None, actor)
        self.stores[obj].add(rec)
        if company:
            self._set_primary_company(rec, int(company))
        if self.observer is not None:
            self.observer.changed(
                "CREATE",
                obj,
                rec.id,
                {**props, **({} if not company else {PRIMARY_COMPANY: company})},
            )
        return rec

    def update(self, obj: str, rec: Record, changes: dict[str, str], actor: str | None) -> bool:
        """Apply a validated change; returns False (and touches nothing) when nothing changed."""
        props = rec.props
        old_email = props.get("email")
        moved: dict[str, str] = {}
        if obj == "contacts" and PRIMARY_COMPANY in changes:
            changes = dict(changes)
            company = changes.pop(PRIMARY_COMPANY)
            if (company or None) != self._primary_company(rec.id):
                self._set_primary_company(rec, int(company) if company else None)
                moved[PRIMARY_COMPANY] = company
        for k, v in changes.items():
            if v == "":
                if props.pop(k, None) is not None:
                    moved[k] = v
            elif props.get(k) != v:
                props[k] = v
                moved[k] = v
        if not moved:
            return False
        store = self.stores[obj]
        rec.updated = max(self.now_ms(), rec.updated)
        self._derive(obj, rec, changes, actor)
        if "email" in changes:
            store._index_email(rec, old_email)
        store.touch(rec)
        if self.observer is not None:
            self.observer.changed("UPDATE", obj, rec.id, moved)
        return True

    def _derive(
        self, obj: str, rec: Record, changes: dict[str, str] | None, actor: str | None
    ) -> None:
        """Stamp who wrote, and keep calculated deal properties in step with the stage."""
        if actor is not None:
            rec.props["hs_updated_by_user_id"] = actor
        else:
            rec.props.pop("hs_updated_by_user_id", None)
        if obj == "contacts":
            self._derive_lifecycle(rec, changes)
            return
        if obj != "deals" or (changes is not None and "dealstage" not in changes):
            return
        pipeline = rec.props.setdefault("pipeline", "default")
        stage = next(
            (
                s
                for s in self.pipelines.get(pipeline, ("", 0, []))[2]
                if s.stage_id == rec.props.get("dealstage")
            ),
            None,
        )
        closed = stage is not None and stage.is_closed
        rec.props["hs_is_closed"] = "true" if closed else "false"
        won = closed and stage is not None and stage.probability == "1.0"
        rec.props["hs_is_closed_won"] = "true" if won else "false"

    def _primary_company(self, contact_id: int) -> str | None:
        company = self.associations.primary("contacts", contact_id, "companies")
        return None if company is None else str(company)

    def _set_primary_company(self, rec: Record, company: int | None) -> None:
        """What writing ``associatedcompanyid`` does: move (or drop) the primary association."""
        kind = ASSOCIATION_TYPES[("contacts", "companies")]
        assert kind.primary_id is not None
        current = self.associations.primary("contacts", rec.id, "companies")
        if current is not None and current != company:
            self.associations.unlink("contacts", rec.id, "companies", current, [kind.primary_id])
        if company is not None:
            self.associations.link(
                "contacts", rec.id, "companies", company, (kind.default_id, kind.primary_id)
            )

    def _primary_changed(self, obj: str, rid: int) -> None:
        """A contact's primary company moved: its ``associatedcompanyid`` changed with it."""
        if obj != "contacts":
            return
        store = self.stores[obj]
        rec = store.live.get(rid)
        if rec is not None:
            rec.updated = max(self.now_ms(), rec.updated)
            store.touch(rec)

    def _associations_changed(self, obj: str, rid: int, other: str) -> None:
        """A deal's contacts changed: its calculated ``num_associated_contacts`` moved.

        And with it ``hs_lastmodifieddate``, so a deal search brings the deal after a contact
        joins or leaves it.
        """
        if (obj, other) != ("deals", "contacts"):
            return
        store = self.stores[obj]
        rec = store.live.get(rid)
        if rec is not None:
            rec.props["num_associated_contacts"] = str(
                len(self.associations.links(obj, rid, other))
            )
            rec.updated = max(self.now_ms(), rec.updated)
            store.touch(rec)

    def _derive_lifecycle(self, rec: Record, changes: dict[str, str] | None) -> None:
        """HubSpot's calculated contact properties, kept up to date on every write.

        Form fills start at 0; entering a lifecycle stage stamps its ``hs_v2_date_entered_*``
        date once (the funnel backfill reads them).
        """
        if changes is None:
            rec.props.setdefault("num_conversion_events", "0")
        stage = rec.props.get("lifecyclestage")
        if (changes is None or "lifecyclestage" in changes) and stage in FUNNEL_LIFECYCLE_LABELS:
            rec.props.setdefault(f"hs_v2_date_entered_{stage}", str(rec.updated))

    def archive(self, obj: str, rec: Record) -> None:
        """Move a record to the archive (recycle bin) and drop its associations."""
        store = self.stores[obj]
        store.remove(rec)
        rec.archived_at = self.now_ms()
        store.archived[rec.id] = rec
        self.associations.drop_record(obj, rec.id)
        self.lists.forget_record(store.type.type_id, rec.id, None)
        if self.observer is not None:
            self.observer.changed("DELETE", obj, rec.id)

    def restore(self, obj: str, rid: int, actor: str | None) -> Record | None:
        """Bring an archived record back from the recycle bin (as the UI's "Restore" does).

        Its associations stay dropped, as HubSpot's do; ``None`` when no such archived record
        (or its email now belongs to another contact).
        """
        store = self.stores[obj]
        rec = store.archived.get(rid)
        email = rec.props.get("email") if rec is not None else None
        if rec is None or (email and store.by_email.get(email.lower()) not in (None, rid)):
            return None
        del store.archived[rid]
        rec.archived_at = 0
        rec.updated = max(self.now_ms(), rec.updated)
        self._derive(obj, rec, {}, actor)
        store.add(rec)
        if self.observer is not None:
            self.observer.changed("RESTORE", obj, rec.id)
        return rec

    def merge(self, obj: str, primary: Record, other: Record, actor: str | None) -> Record:
        """Merge ``other`` into ``primary``: blanks filled, ids recorded, links moved."""
        store = self.stores[obj]
        email = other.props.get("email")
        fill = {
            k: v
            for k, v in other.props.items()
            if k not in primary.props and k not in ("email", "hs_merged_object_ids")
        }
        previous = [i for i in primary.props.get("hs_merged_object_ids", "").split(";") if i]
        merged = [
            *previous,
            str(other.id),
            *[i for i in other.props.get("hs_merged_object_ids", "").split(";") if i],
        ]
        store.remove(other)
        other.archived_at = self.now_ms()
        self.merged_into[other.id] = primary.id
        for old, new in list(self.merged_into.items()):
            if new == other.id:
                self.merged_into[old] = primary.id
        self.associations.move(obj, other.id, primary.id)
        self.lists.forget_record(store.type.type_id, other.id, primary.id)
        primary.props.update(fill)
        primary.props["hs_merged_object_ids"] = ";".join(merged)
        if email and obj == "contacts":
            extra = [e for e in primary.props.get("hs_additional_emails", "").split(";") if e]
            primary.props["hs_additional_emails"] = ";".join([*extra, email])
            store.by_email[email.lower()] = primary.id
        primary.updated = max(self.now_ms(), primary.updated)
        self._derive(obj, primary, {}, actor)
        store.touch(primary)
        if self.observer is not None:
            self.observer.changed("MERGE", obj, primary.id, merged=[other.id])
        return primary

    # -- rendering --------------------------------------------------------------------------

    def value(self, otype: ObjectType, rec: Record, name: str) -> str | None:
        """A property's wire value, derived ones included."""
        if name == "hs_object_id":
            return str(rec.id)
        if name == otype.modified_prop:
            return iso_ms(rec.updated)
        if name == otype.created_prop:
            return iso_ms(rec.created)
        if name == PRIMARY_COMPANY and otype.name == "contacts":
            return self._primary_company(rec.id)
        return rec.props.get(name)

    def render(
        self,
        obj: str,
        rec: Record,
        props: Iterable[str] | None,
        associations: Iterable[str] = (),
    ) -> dict[str, Any]:
        """``SimplePublicObject``: the requested (or default) properties, all strings or null."""
        otype = self.stores[obj].type
        names = otype.default_props if props is None else props
        created, updated = iso_ms(rec.created), iso_ms(rec.updated)
        derived: dict[str, str | None] = {
            "hs_object_id": str(rec.id),
            otype.created_prop: created,
            otype.modified_prop: updated,
        }
        if obj == "contacts" and PRIMARY_COMPANY in names:
            derived[PRIMARY_COMPANY] = self._primary_company(rec.id)
        values = rec.props
        body: dict[str, Any] = {
            "id": str(rec.id),
            "properties": {n: derived[n] if n in derived else values.get(n) for n in names},
            "createdAt": created,
            "updatedAt": updated,
            "archived": bool(rec.archived_at),
        }
        if rec.archived_at:
            body["archivedAt"] = iso_ms(rec.archived_at)
        assoc: dict[str, Any] = {}
        for to_obj in associations:
            links = self.associations.links(obj, rec.id, to_obj)
            kind = ASSOCIATION_TYPES.get((obj, to_obj))
            if not links or kind is None:
                continue
            assoc[to_obj] = {
                "results": [
                    {"id": str(to_id), "type": _v3_type_name(kind, tid)}
                    for to_id, tids in links.items()
                    for tid in tids
                ]
            }
        if assoc:
            body["associations"] = assoc
        return body

    # -- definitions ------------------------------------------------------------------------

    def property_def(self, obj: str, name: str) -> PropertyDef | None:
        """A live property definition."""
        return self.properties.get(obj, name)

    def list_by_id(self, list_id: str) -> CrmList | None:
        """A list by its id as it appears in paths."""
        return self.lists.lists.get(int(list_id)) if list_id.isdigit() else None

    # -- snapshots --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All state as JSON-ready data (records, links, definitions, lists)."""
        with self.lock:
            return {
                "format": SNAPSHOT_FORMAT,
                "next_id": self.next_id,
                "objects": {
                    name: {
                        "live": [[r.id, r.created, r.updated, r.props] for r in s.live.values()],
                        "archived": [
                            [r.id, r.created, r.updated, r.props, r.archived_at]
                            for r in s.archived.values()
                        ],
                    }
                    for name, s in self.stores.items()
                },
                "merged_into": [[k, v] for k, v in self.merged_into.items()],
                "associations": list(self.associations.rows()),
                "properties": {
                    obj: [d.to_state() for d in defs.values()]
                    for obj, defs in self.properties.defs.items()
                },
                "lists": [lst.to_state() for lst in self.lists.lists.values()],
                "next_list_id": self.lists.next_id,
            }

    def load(self, data: dict[str, Any]) -> None:
        """Replace all state with a snapshot taken by :meth:`snapshot`."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"not a HubSpot emulator snapshot (format {data.get('format')!r})")
        with self.lock:
            self.reset()
            self.next_id = int(data["next_id"])
            for name, rows in data["objects"].items():
                store = self.stores[name]
                live = sorted(rows["live"], key=lambda r: (r[2], r[0]))
                for rid, created, updated, props in live:
                    store.add(Record(int(rid), dict(props), int(created), int(updated)))
                for rid, created, updated, props, archived_at in rows["archived"]:
                    rec = Record(int(rid), dict(props), int(created), int(updated))
                    rec.archived_at = int(archived_at)
                    store.archived[rec.id] = rec
            self.merged_into = {int(k): int(v) for k, v in data["merged_into"]}
            self.associations.load_rows(data["associations"])
            for obj, defs in data["properties"].items():
                self.properties.defs[obj] = {d["name"]: PropertyDef(**d) for d in defs}
            for raw in data["lists"]:
                lst = CrmList.from_state(raw)
                self.lists.lists[lst.list_id] = lst
            self.lists.next_id = int(data["next_list_id"])
