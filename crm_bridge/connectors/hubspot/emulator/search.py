"""CRM search: filter groups (OR of ANDs), sorts, free-text query, offset paging with a cap.

Why it is built this way: incremental sync asks "modified since X, oldest first" page after page.
Two things keep that cheap on a million records:

* candidates -- when every filter group bounds the last-modified property from below, only the
  tail of the store's write order is examined (see :meth:`ObjectStore.recent`);
* a per-query cache of the sorted id list, keyed by the store's write version, so pages 2..50 of
  the same query cost a slice, not a sort.  Any write to the store invalidates it, which also
  models HubSpot's "results shift while you page" behaviour.

Doc: https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from crm_bridge.connectors.hubspot.emulator.errors import bad_request
from crm_bridge.connectors.hubspot.emulator.state import ObjectStore, Portal, Record
from crm_bridge.connectors.hubspot.emulator.timefmt import parse_ms

__all__ = ["SearchEngine", "SearchQuery"]

OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
_TOKEN_SPLIT = re.compile(r"[^0-9a-z]+")

Key = Callable[[Record], Any]
Predicate = Callable[[Record], bool]


@dataclass
class SearchQuery:
    """A validated search request body."""

    groups: list[list[dict[str, Any]]]
    sorts: list[tuple[str, bool]]  # (property, descending)
    query: str
    properties: list[str] | None
    limit: int
    after: int

    @classmethod
    def parse(cls, body: dict[str, Any], *, max_limit: int) -> SearchQuery:
        """Validate the body the way the real endpoint does (400 on anything malformed)."""
        groups = [list(g.get("filters") or []) for g in body.get("filterGroups") or []]
        if len(groups) > MAX_GROUPS:
            raise bad_request(f"Too many filter groups ({len(groups)}); the maximum is 5.")
        if any(len(g) > MAX_FILTERS_PER_GROUP for g in groups) or sum(map(len, groups)) > (
            MAX_FILTERS
        ):
            raise bad_request("Too many filters: at most 6 per group and 18 in total.")
        for group in groups:
            for f in group:
                if f.get("operator", "EQ") not in OPERATORS:
                    raise bad_request(f"Unknown operator {f.get('operator')!r}.")
                if not f.get("propertyName"):
                    raise bad_request("Every filter needs a propertyName.")
        sorts: list[tuple[str, bool]] = []
        for s in body.get("sorts") or []:
            if isinstance(s, str):
                sorts.append((s.lstrip("-"), s.startswith("-")))
            else:
                sorts.append((s["propertyName"], s.get("direction", "ASCENDING") == "DESCENDING"))
        limit = int(body.get("limit") or 10)
        if not 0 < limit <= max_limit:
            raise bad_request(f"limit must be between 1 and {max_limit}, got {limit}.")
        after_raw = body.get("after") or 0
        try:
            after = int(after_raw)
        except (TypeError, ValueError):
            raise bad_request(f"after must be a numeric offset, got {after_raw!r}.") from None
        props = body.get("properties")
        return cls(groups, sorts, str(body.get("query") or ""), props or None, limit, after)

    def cache_key(self, obj: str) -> str:
        """Everything that decides the ordered result set (not the page)."""
        return json.dumps([obj, self.groups, self.sorts, self.query], sort_keys=True)


class SearchEngine:
    """Evaluates queries against a portal and caches ordered results."""

    def __init__(
        self, portal: Portal, *, cache_size: int = 32, lag: Callable[[], float] = lambda: 0.0
    ) -> None:
        self.portal = portal
        self.cache_size = cache_size
        self.lag = lag  # seconds from a write to the index (HubSpotEmulatorSettings)
        self._cache: OrderedDict[str, tuple[int, list[int]]] = OrderedDict()

    def clear(self) -> None:
        """Drop cached results (after reset/load)."""
        self._cache.clear()

    def run(self, obj: str, q: SearchQuery) -> list[int]:
        """The full ordered id list matching ``q`` (served from cache when still valid)."""
        store = self.portal.store(obj)
        lag_ms = int(self.lag() * 1000)
        if lag_ms > 0:  # what the index holds changes with time, not only with writes
            return self._evaluate(store, q, indexed_by=self.portal.now_ms() - lag_ms)
        key = q.cache_key(obj)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == store.version:
            self._cache.move_to_end(key)
            return hit[1]
        ids = self._evaluate(store, q)
        self._cache[key] = (store.version, ids)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return ids

    # -- evaluation -------------------------------------------------------------------------

    def _evaluate(
        self, store: ObjectStore, q: SearchQuery, indexed_by: int | None = None
    ) -> list[int]:
        groups = [[self._predicate(store, f) for f in g] for g in q.groups]
        text = self._text_predicate(store, q.query) if q.query else None
        matches = [
            rec
            for rec in self._candidates(store, q)
            if (indexed_by is None or rec.updated <= indexed_by)
            and (not groups or any(all(p(rec) for p in g) for g in groups))
            and (text is None or text(rec))
        ]
        matches.sort(key=lambda r: r.id)
        for prop, desc in reversed(q.sorts):
            key = self._key(store, prop)
            present = [r for r in matches if key(r) is not None]
            missing = [r for r in matches if key(r) is None]
            present.sort(key=key, reverse=desc)
            matches = present + missing
        return [r.id for r in matches]

    def _candidates(self, store: ObjectStore, q: SearchQuery) -> Iterable[Record]:
        """The records worth testing: a recent tail, an id/email lookup, or everything."""
        if q.groups:
            bounds = [self._lower_bound(store, g) for g in q.groups]
            if all(b is not None for b in bounds):
                store.ensure_order()
                return list(store.recent(min(b for b in bounds if b is not None)))
            direct = [self._direct_ids(store, g) for g in q.groups]
            if all(d is not None for d in direct):
                ids = {i for d in direct if d is not None for i in d}
                return [store.live[i] for i in ids if i in store.live]
        return store.live.values()

    def _lower_bound(self, store: ObjectStore, group: list[dict[str, Any]]) -> int | None:
        modified = store.type.modified_prop
        for f in group:
            if f["propertyName"] == modified and f.get("operator", "EQ") in (
                "GT",
                "GTE",
                "EQ",
                "BETWEEN",
            ):
                return parse_ms(str(f.get("value", "")))
        return None

    def _direct_ids(self, store: ObjectStore, group: list[dict[str, Any]]) -> set[int] | None:
        for f in group:
            name, op = f["propertyName"], f.get("operator", "EQ")
            values = [f.get("value")] if op == "EQ" else f.get("values") if op == "IN" else None
            if values is None:
                continue
            if name in ("hs_object_id", "id"):
                return {int(str(v)) for v in values if str(v).isdigit()}
            if name == "email" and store.type.name == "contacts":
                found = (store.by_email.get(str(v).lower()) for v in values)
                return {i for i in found if i is not None}
        return None

    def _key(self, store: ObjectStore, prop: str) -> Key:
        """A function giving the comparable value of ``prop`` (None when unset)."""
        otype = store.type
        if prop in ("hs_object_id", "id"):
            return lambda r: r.id
        if prop == otype.modified_prop:
            return lambda r: r.updated
        if prop == otype.created_prop:
            return lambda r: r.created
        conv = self._converter(store, prop)

        def key(r: Record) -> Any:
            raw = r.props.get(prop)
            return None if raw is None else conv(raw)

        return key

    def _converter(self, store: ObjectStore, prop: str) -> Callable[[str], Any]:
        otype = store.type
        if prop in ("hs_object_id", "id"):
            return lambda v: int(v) if v.isdigit() else None
        d = self.portal.property_def(otype.name, prop)
        kind = d.type if d is not None else "string"
        if prop in (otype.modified_prop, otype.created_prop) or kind in ("date", "datetime"):
            return parse_ms
        if kind == "number":
            return _to_float
        return str.lower

    def _predicate(self, store: ObjectStore, f: dict[str, Any]) -> Predicate:
        prop, op = f["propertyName"], f.get("operator", "EQ")
        key = self._key(store, prop)
        conv = self._converter(store, prop)
        if op == "HAS_PROPERTY":
            return lambda r: key(r) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda r: key(r) is None
        if op in ("IN", "NOT_IN"):
            wanted = {conv(str(v)) for v in f.get("values") or []}
            if op == "IN":
                return lambda r: key(r) in wanted
            return lambda r: key(r) not in wanted
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(f.get("value", "")).lower()
            hit = _token_matcher(pattern)

            def contains(r: Record) -> bool:
                raw = r.props.get(prop)
                return raw is not None and hit(raw.lower())

            return contains if op == "CONTAINS_TOKEN" else (lambda r: not contains(r))
        value = conv(str(f.get("value", "")))
        if op == "EQ":
            return lambda r: key(r) == value
        if op == "NEQ":
            return lambda r: key(r) != value
        if op == "BETWEEN":
            high = conv(str(f.get("highValue", "")))
            return lambda r: (k := key(r)) is not None and value <= k <= high
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
        }
        cmp = compare[op]
        if value is None:
            raise bad_request(f"{f.get('value')!r} is not a valid value for {prop}.")
        return lambda r: (k := key(r)) is not None and cmp(k, value)

    def _text_predicate(self, store: ObjectStore, query: str) -> Predicate:
        """Free-text ``query``: every word must prefix-match a token of a searchable property."""
        words = [w for w in _TOKEN_SPLIT.split(query.lower()) if w]
        fields = store.type.searchable

        def match(r: Record) -> bool:
            tokens: list[str] = []
            for name in fields:
                raw = r.props.get(name)
                if raw:
                    tokens.extend(t for t in _TOKEN_SPLIT.split(raw.lower()) if t)
            return all(any(t.startswith(w) for t in tokens) for w in words)

        return match


def _to_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _token_matcher(pattern: str) -> Callable[[str], bool]:
    """CONTAINS_TOKEN: a whole-token match, ``*`` wildcards allowed (also on the whole value)."""
    if "*" in pattern:
        return lambda value: (
            fnmatch.fnmatchcase(value, pattern)
            or any(fnmatch.fnmatchcase(t, pattern) for t in _TOKEN_SPLIT.split(value))
        )
    return lambda value: value == pattern or pattern in _TOKEN_SPLIT.split(value)
