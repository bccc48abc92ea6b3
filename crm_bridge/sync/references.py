"""Reference fields: ids of another synced object, translated through that object's links.

A Salesforce contact's ``AccountId`` and a HubSpot contact's ``associatedcompanyid`` name the
same company only through the link the pair's accounts object keeps between the two records.
So a field of kind ``reference`` (``refers_to = "accounts"``) compares and writes ids the way an
owner field compares e-mails: its logical value is the **CRM side's id**, and a marketing-side id
is translated through the link.  A marketing id with no link yet (the company was never synced,
or is filtered out) reads as an ``unlinked:`` marker -- it never equals a real id, and writing it
fails with ``REFERENCE_NOT_LINKED``, so the record is dead-lettered and replayed once the
referenced record links, instead of writing a wrong or dangling id.

A field of kind ``references`` holds a *set* of such ids -- an opportunity's contact roles, a
deal's associated contacts.  Connectors read it as a list of ids; its logical value is the sorted
CRM ids joined by ``;`` (a plain string, so baselines, hashes and conflict rules treat it as one
value).  A member with no link is left out of the write rather than holding the record back
(a deal's stage must not wait for one contact that cannot sync): the record is written with the
members that can be, and dead-lettered ``REFERENCE_NOT_LINKED`` to send the rest once they link.

Links are looked up in the store: once per cycle for every id the cycle read (one query per
object and side), then one by one for the few a plan needs beyond those (a baseline's id).  A
merged-away account's id follows its link's ``merged_into`` to the survivor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.store import Link, Side

__all__ = ["SET_SEPARATOR", "UNLINKED_PREFIX", "LinkLookup", "ReferenceDirectory", "member_ids"]

UNLINKED_PREFIX = "unlinked:"
SET_SEPARATOR = ";"
"""Joins the members of a ``references`` field's logical value (ids never contain it)."""


def member_ids(raw: Any) -> list[str]:
    """The ids a ``references`` value holds: a list from a connector, or a joined string."""
    if raw is None:
        return []
    items = raw.split(SET_SEPARATOR) if isinstance(raw, str) else list(raw)
    return [text for item in items if (text := str(item).strip())]


LinkLookup = Callable[[str, Side, set[str]], Mapping[str, Link]]
"""``(object, side, ids) -> {id: link}``: the store's links of ``object`` whose ``side`` id is one
of ``ids`` (active ones preferred, see :meth:`crm_bridge.store.StoreTx.links_by_ids`)."""

_MAX_MERGE_HOPS = 8


@dataclass
class ReferenceDirectory:
    """Id translation for one cycle: ``(object, side, id) -> the other side's id``."""

    lookup: LinkLookup | None = None
    follow: Callable[[int], Link | None] | None = None
    """Link by link id, to follow a merged link to its survivor."""
    _known: dict[tuple[str, Side, str], str | None] = field(default_factory=dict)

    def preload(self, wanted: Mapping[tuple[str, Side], Iterable[str]]) -> None:
        """Look up many ids at once (the ids a cycle's reads hold)."""
        for (obj, side), ids in wanted.items():
            missing = {i for i in ids if (obj, side, i) not in self._known}
            if missing:
                self._resolve(obj, side, missing)

    def crm_id(self, obj: str, map_id: str) -> str | None:
        """The CRM id linked to marketing record ``map_id`` of ``obj``, if any."""
        return self._other(obj, "map", map_id)

    def map_id(self, obj: str, crm_id: str) -> str | None:
        """The marketing id linked to CRM record ``crm_id`` of ``obj``, if any."""
        return self._other(obj, "crm", crm_id)

    def logical(self, obj: str, side: Side, raw_id: str) -> str:
        """The logical value of a reference read on ``side``: the CRM id, or a marker."""
        if side == "crm":
            return raw_id
        crm_id = self.crm_id(obj, raw_id)
        return crm_id if crm_id is not None else f"{UNLINKED_PREFIX}{raw_id}"

    def logical_set(self, obj: str, side: Side, raw: Any) -> str | None:
        """The logical value of a ``references`` field read on ``side`` (None when empty)."""
        members = {self.logical(obj, side, i) for i in member_ids(raw)}
        return SET_SEPARATOR.join(sorted(members)) or None

    def vendor_ids(self, obj: str, target: Side, logical: str | None) -> tuple[list[str], int]:
        """The ids to write on ``target`` for a logical set, and how many members have no link."""
        out: list[str] = []
        missing = 0
        for member in member_ids(logical):
            vendor = self.vendor_id(obj, target, member)
            if vendor is None:
                missing += 1
            else:
                out.append(vendor)
        return sorted(out), missing

    def vendor_id(self, obj: str, target: Side, logical: str) -> str | None:
        """The id to write on ``target`` for a logical reference; None when it has no link."""
        if logical.startswith(UNLINKED_PREFIX):
            return None
        return logical if target == "crm" else self.map_id(obj, logical)

    def _other(self, obj: str, side: Side, record_id: str) -> str | None:
        key = (obj, side, record_id)
        if key not in self._known:
            self._resolve(obj, side, {record_id})
        return self._known.get(key)

    def _resolve(self, obj: str, side: Side, ids: set[str]) -> None:
        found = self.lookup(obj, side, ids) if self.lookup is not None else {}
        other: Side = "map" if side == "crm" else "crm"
        for record_id in ids:
            direct = found.get(record_id)
            link = self._survivor(direct)
            other_id = None if link is None else link.id_on(other)
            self._known[(obj, side, record_id)] = other_id
            if link is direct and other_id is not None:
                # The way back is the same active link: a value translated one way is read
                # back the other way when the planner works out what a write leaves behind.
                self._known.setdefault((obj, other, other_id), record_id)

    def _survivor(self, link: Link | None) -> Link | None:
        for _ in range(_MAX_MERGE_HOPS):
            if link is None or link.status == "active":
                return link
            if link.merged_into is None or self.follow is None:
                return None
            link = self.follow(link.merged_into)
        return None
