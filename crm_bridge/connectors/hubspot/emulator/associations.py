"""The association graph between records, stored in both directions.

Why both directions: HubSpot answers ``GET .../contacts/{id}/associations/companies`` and the
reverse equally fast, and every write keeps the inverse type id in step (279 <-> 280, 3 <-> 4).
Type-id tuples are interned so a million contacts linked to companies share a handful of tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from crm_bridge.connectors.hubspot.emulator.catalog import ASSOCIATION_TYPES, inverse_type_id

__all__ = ["AssociationGraph", "category_of"]

_HUBSPOT_DEFINED = {k.default_id for k in ASSOCIATION_TYPES.values()} | {
    k.primary_id for k in ASSOCIATION_TYPES.values() if k.primary_id is not None
}


def category_of(type_id: int) -> str:
    """``HUBSPOT_DEFINED`` for the built-in ids, ``USER_DEFINED`` for labels."""
    return "HUBSPOT_DEFINED" if type_id in _HUBSPOT_DEFINED else "USER_DEFINED"


Links = dict[int, tuple[int, ...]]


class AssociationGraph:
    """``(from_type, to_type) -> from_id -> to_id -> type ids``."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str], dict[int, Links]] = {}
        self._tuples: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.on_link_change: Callable[[str, int, str], None] | None = None
        """Called with ``(object, id, other object)`` when a record gains or loses an association
        to a record of ``other object``: the portal recalculates its ``num_associated_*``."""
        self.on_primary_change: Callable[[str, int], None] | None = None
        """Called with ``(object, id)`` when a record's primary association is set or removed:
        the portal derives ``associatedcompanyid`` from it and stamps the contact modified."""

    def _notify_primary(self, a: str, a_id: int, b: str, ids: Iterable[int]) -> None:
        kind = ASSOCIATION_TYPES.get((a, b))
        if self.on_primary_change is None or kind is None or kind.primary_id is None:
            return
        if kind.primary_id in ids:
            self.on_primary_change(a, a_id)

    def primary(self, a: str, a_id: int, b: str) -> int | None:
        """The record of type ``b`` that is ``a_id``'s primary one (its primary company)."""
        kind = ASSOCIATION_TYPES.get((a, b))
        if kind is None or kind.primary_id is None:
            return None
        return next(
            (b_id for b_id, ids in self.links(a, a_id, b).items() if kind.primary_id in ids), None
        )

    def _intern(self, ids: Iterable[int]) -> tuple[int, ...]:
        key = tuple(sorted(set(ids)))
        return self._tuples.setdefault(key, key)

    def _add_one_way(self, a: str, a_id: int, b: str, b_id: int, ids: Iterable[int]) -> None:
        per_from = self.edges.setdefault((a, b), {}).setdefault(a_id, {})
        per_from[b_id] = self._intern((*per_from.get(b_id, ()), *ids))

    def link(self, a: str, a_id: int, b: str, b_id: int, type_ids: Iterable[int]) -> None:
        """Associate two records with the given type ids (seen from ``a``)."""
        ids = list(type_ids)
        kind = ASSOCIATION_TYPES.get((a, b))
        if kind is not None and kind.primary_id in ids:
            self._drop_other_primaries(a, a_id, b, b_id, kind.primary_id)
        fresh = b_id not in self.links(a, a_id, b)
        self._add_one_way(a, a_id, b, b_id, ids)
        back = [inverse_type_id(i) for i in ids]
        self._add_one_way(b, b_id, a, a_id, back)
        self._notify_primary(a, a_id, b, ids)
        self._notify_primary(b, b_id, a, back)
        if fresh:
            self._notify_link(a, a_id, b, b_id)

    def _drop_other_primaries(self, a: str, a_id: int, b: str, keep: int, primary: int) -> None:
        # A record has at most one primary company: moving the flag removes the old one.
        for other, ids in list(self.links(a, a_id, b).items()):
            if other != keep and primary in ids:
                self.unlink(a, a_id, b, other, [primary])

    def unlink(
        self, a: str, a_id: int, b: str, b_id: int, type_ids: Iterable[int] | None = None
    ) -> bool:
        """Remove some (or, with None, all) types between two records; True if any existed."""
        fwd = self.edges.get((a, b), {}).get(a_id)
        if not fwd or b_id not in fwd:
            return False
        drop = set(fwd[b_id]) if type_ids is None else set(type_ids)
        self._remove_one_way(a, a_id, b, b_id, drop)
        back = {inverse_type_id(i) for i in drop}
        self._remove_one_way(b, b_id, a, a_id, back)
        self._notify_primary(a, a_id, b, drop)
        self._notify_primary(b, b_id, a, back)
        if b_id not in self.links(a, a_id, b):
            self._notify_link(a, a_id, b, b_id)
        return True

    def _notify_link(self, a: str, a_id: int, b: str, b_id: int) -> None:
        if self.on_link_change is not None:
            self.on_link_change(a, a_id, b)
            self.on_link_change(b, b_id, a)

    def _remove_one_way(self, a: str, a_id: int, b: str, b_id: int, drop: set[int] | None) -> None:
        per_type = self.edges.get((a, b))
        if per_type is None or a_id not in per_type:
            return
        per_from = per_type[a_id]
        remaining = (
            () if drop is None else tuple(i for i in per_from.get(b_id, ()) if i not in drop)
        )
        if remaining:
            per_from[b_id] = self._intern(remaining)
        else:
            per_from.pop(b_id, None)
        if not per_from:
            del per_type[a_id]

    def links(self, a: str, a_id: int, b: str) -> Links:
        """Everything ``a_id`` is associated with among records of type ``b``."""
        return self.edges.get((a, b), {}).get(a_id, {})

    def drop_record(self, a: str, a_id: int) -> None:
        """Forget every association of a record (it was archived or merged away)."""
        for x, y in list(self.edges):
            if x != a:
                continue
            for b_id in list(self.links(a, a_id, y)):
                self.unlink(a, a_id, y, b_id)

    def move(self, a: str, old_id: int, new_id: int) -> None:
        """Re-point every association of ``old_id`` to ``new_id`` (what a merge does)."""
        for x, y in list(self.edges):
            if x != a:
                continue
            for b_id, ids in list(self.links(a, old_id, y).items()):
                self.unlink(a, old_id, y, b_id)
                if not (x == y and b_id == new_id):
                    self.link(a, new_id, y, b_id, ids)

    def rows(self) -> Iterator[list[Any]]:
        """One-way rows ``[from, to, from_id, to_id, [ids]]`` for snapshots."""
        for (a, b), per_type in self.edges.items():
            for a_id, per_from in per_type.items():
                for b_id, ids in per_from.items():
                    yield [a, b, a_id, b_id, list(ids)]

    def load_rows(self, rows: Iterable[list[Any]]) -> None:
        """Restore rows written by :meth:`rows` (both directions are in them)."""
        self.edges.clear()
        for a, b, a_id, b_id, ids in rows:
            self._add_one_way(a, int(a_id), b, int(b_id), [int(i) for i in ids])
