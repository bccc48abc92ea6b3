"""A SOQL subset: parse, check against the schema, and run over the in-memory records.

Why check types as strictly as a real org: the classic SOQL bugs in integration code are a quoted
datetime (``SystemModstamp > '2024-01-01T00:00:00Z'``), an unknown field, mixing AND/OR without
parentheses -- all of which a real org rejects.  An emulator that accepted them would let those
bugs ship.
Docs: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm
and https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm_bridge.connectors.salesforce.emulator.errors import ApiError
from crm_bridge.connectors.salesforce.emulator.ids import normalize_id
from crm_bridge.connectors.salesforce.emulator.schema import STRING_TYPES, Field, SObjectType
from crm_bridge.connectors.salesforce.emulator.soql_parse import (
    BoolOp,
    Comparison,
    Cond,
    Errors,
    Literal,
    parse,
)
from crm_bridge.connectors.salesforce.emulator.values import format_datetime

__all__ = ["Cursor", "Query", "RecordSource", "Renderer", "compile_query", "run_query"]

Record = dict[str, Any]
Getter = Callable[[Record], Any]
Predicate = Callable[[Record], bool]


class RecordSource(Protocol):
    """What the query engine needs from an org (the data org or the tooling catalog)."""

    def sobject(self, name: str) -> SObjectType | None:
        """An object by case-insensitive name."""

    def get(self, record_id: str | None) -> Record | None:
        """A record by id."""

    def records_of(self, name: str) -> dict[str, Record]:
        """Every record of an object, by id."""

    def email_index(self, name: str) -> dict[str, list[str]] | None:
        """Lower-cased email -> ids, if the object keeps that index."""

    def modified_since(self, name: str, stamp: str, *, inclusive: bool) -> list[Record] | None:
        """Records changed after ``stamp`` (``None``: no such index, scan instead)."""


# ------------------------------------------------------------------------------------ compile
@dataclass
class PathInfo:
    """A resolved field path (``Owner.Manager.Email``)."""

    names: list[str]  # canonical spelling
    leaf: Field
    getter: Getter


@dataclass
class SelectNode:
    """The select list as a tree: leaves are fields, branches are relationships."""

    items: list[tuple[str, Getter | None, Field | None, SelectNode | None]] = field(
        default_factory=list
    )
    branches: dict[str, SelectNode] = field(default_factory=dict)


class Renderer:
    """Turns records into the JSON the REST API sends for a given select list."""

    def __init__(
        self, source: RecordSource, obj: SObjectType, tree: SelectNode, version: str
    ) -> None:
        self.source = source
        self.obj = obj
        self.tree = tree
        self.version = version
        self.prefix = f"/services/data/v{version}/sobjects/"

    def render(self, rec: Record) -> dict[str, Any]:
        """One record as ``{"attributes": {...}, fields...}``."""
        return self._render(rec, self.obj.name, self.tree)

    def _render(self, rec: Record, type_name: str, node: SelectNode) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {"type": type_name, "url": f"{self.prefix}{type_name}/{rec['Id']}"}
        }
        get = self.source.get
        for name, getter, ref, sub in node.items:
            if sub is None:
                out[name] = getter(rec)  # type: ignore[misc]
                continue
            assert ref is not None
            target = get(rec.get(ref.name))
            out[name] = (
                None
                if target is None
                else self._render(target, _type_of(self.source, ref, target), sub)
            )
        return out


def _type_of(source: RecordSource, ref: Field, target: Record) -> str:
    if len(ref.reference_to) == 1:
        return ref.reference_to[0]
    for name in ref.reference_to:
        t = source.sobject(name)
        if t is not None and str(target["Id"]).startswith(t.key_prefix):
            return t.name
    return ref.reference_to[0]


@dataclass
class Query:
    """A checked query, ready to run."""

    text: str
    obj: SObjectType
    count: bool
    paths: list[PathInfo]
    renderer: Renderer
    where: Predicate | None
    narrow: tuple[str, list[Any]] | None
    order: list[tuple[Getter, bool, bool]]
    limit: int | None
    offset: int


_NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, be "
    "sure to append the '__c' after the custom field name. Please reference your WSDL or the "
    "describe call for the appropriate names."
)


def field_getter(obj: SObjectType, f: Field) -> Getter:
    derived = obj.derived.get(f.name)
    if derived is not None:
        return derived
    name = f.name
    return lambda rec: rec.get(name)


def resolve_path(
    source: RecordSource, obj: SObjectType, parts: list[str], pos: int, err: Errors
) -> PathInfo:
    """Check a dotted field path against the schema and build its getter."""
    if len(parts) == 1:
        f = obj.field(parts[0])
        if f is None:
            raise err.at(pos, "INVALID_FIELD", _NO_SUCH_COLUMN.format(name=parts[0], obj=obj.name))
        return PathInfo([f.name], f, field_getter(obj, f))
    if parts[0].lower() == obj.name.lower() and len(parts) >= 2:
        return resolve_path(source, obj, parts[1:], pos, err)
    ref = obj.relationship(parts[0])
    if ref is None:
        raise err.at(
            pos,
            "INVALID_FIELD",
            f"Didn't understand relationship '{parts[0]}' in field path. If you are "
            f"attempting to use a custom relationship, be sure to append the '__r' after "
            f"the custom relationship name. Please reference your WSDL or the describe "
            f"call for the appropriate names.",
        )
    subs: dict[str, PathInfo] = {}
    first: PathInfo | None = None
    for target_name in ref.reference_to:
        target = source.sobject(target_name)
        if target is None or (target.field(parts[1]) is None and len(parts) == 2):
            continue
        try:
            info = resolve_path(source, target, parts[1:], pos, err)
        except ApiError:
            continue
        subs[target.key_prefix] = info
        first = first or info
    if first is None:
        target_name = ref.reference_to[0] if ref.reference_to else parts[0]
        raise err.at(pos, "INVALID_FIELD", _NO_SUCH_COLUMN.format(name=parts[-1], obj=target_name))
    ref_name = ref.name
    get = source.get
    if len(subs) == 1:
        inner = first.getter

        def getter(rec: Record) -> Any:
            target = get(rec.get(ref_name))
            return None if target is None else inner(target)
    else:

        def getter(rec: Record) -> Any:
            target = get(rec.get(ref_name))
            if target is None:
                return None
            info = subs.get(str(target["Id"])[:3])
            return None if info is None else info.getter(target)

    return PathInfo([ref.relationship_name or ref.name, *first.names], first.leaf, getter)


def _add_to_tree(
    source: RecordSource, objs: list[SObjectType], node: SelectNode, names: list[str]
) -> None:
    """Place a resolved path (canonical ``names``) into the select tree."""
    if len(names) == 1:
        node.items.append((names[0], _leaf_getter(objs, names[0]), None, None))
        return
    ref = next(r for o in objs if (r := o.relationship(names[0])) is not None)
    sub = node.branches.get(names[0])
    if sub is None:
        sub = node.branches[names[0]] = SelectNode()
        node.items.append((names[0], None, ref, sub))
    targets = [t for n in ref.reference_to if (t := source.sobject(n)) is not None]
    _add_to_tree(source, targets, sub, names[1:])


def _leaf_getter(objs: list[SObjectType], name: str) -> Getter:
    """A getter for field ``name`` on a record of any of ``objs`` (chosen by id prefix)."""
    getters = {o.key_prefix: field_getter(o, f) for o in objs if (f := o.field(name))}
    if len(getters) == 1:
        return next(iter(getters.values()))

    def getter(rec: Record) -> Any:
        g = getters.get(str(rec["Id"])[:3])
        return None if g is None else g(rec)

    return getter


_STRING_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda v, x: v == x,
    "!=": lambda v, x: v != x,
    "<": lambda v, x: v < x,
    "<=": lambda v, x: v <= x,
    ">": lambda v, x: v > x,
    ">=": lambda v, x: v >= x,
}


def _date_range(literal: tuple[str, int], now: datetime) -> tuple[str, str]:
    name, n = literal
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    start, end = {
        "TODAY": (today, today + day),
        "YESTERDAY": (today - day, today),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
    }[name]
    return format_datetime(start), format_datetime(end)


class _Compiler:
    def __init__(self, source: RecordSource, obj: SObjectType, err: Errors, now: datetime) -> None:
        self.source = source
        self.obj = obj
        self.err = err
        self.now = now

    def cond(self, c: Cond) -> Predicate:
        if isinstance(c, BoolOp):
            parts = [self.cond(i) for i in c.items]
            if c.op == "NOT":
                inner = parts[0]
                return lambda r: not inner(r)
            if c.op == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        return self.comparison(c)

    def _value(self, f: Field, lit: Literal, op: str) -> Any:
        """Check a literal against the field's type and convert it to stored form."""
        t = f.type
        name = f.name
        if lit.kind == "null":
            if op not in ("=", "!=", "IN", "NOT IN"):
                raise self.err.at(lit.pos, "MALFORMED_QUERY", "unexpected token: null")
            return None
        if t in STRING_TYPES:
            if lit.kind != "string":
                raise self.err.at(
                    lit.pos,
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type string and "
                    f"should be enclosed in quotes",
                )
            if t in ("id", "reference"):
                return normalize_id(lit.value)
            return lit.value.lower()
        if t == "boolean":
            if lit.kind != "bool":
                raise self.err.at(
                    lit.pos,
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type "
                    f"boolean and should not be enclosed in quotes",
                )
            return lit.value
        if t in ("double", "currency", "percent", "int"):
            if lit.kind != "number":
                raise self.err.at(
                    lit.pos,
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type "
                    f"double and should not be enclosed in quotes",
                )
            return lit.value
        if t == "datetime":
            if lit.kind == "dateliteral":
                return _date_range(lit.value, self.now)
            if lit.kind != "datetime":
                raise self.err.at(
                    lit.pos,
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type "
                    f"dateTime and should not be enclosed in quotes",
                )
            return lit.value
        if t == "date":
            if lit.kind == "dateliteral":
                start, end = _date_range(lit.value, self.now)
                return (start[:10], end[:10])
            if lit.kind != "date":
                raise self.err.at(
                    lit.pos,
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type "
                    f"date and should not be enclosed in quotes",
                )
            return lit.value
        return lit.value

    def comparison(self, c: Comparison) -> Predicate:
        info = resolve_path(self.source, self.obj, c.path, c.path_pos, self.err)
        f, get = info.leaf, info.getter
        fold = f.type in STRING_TYPES and f.type not in ("id", "reference")
        if c.op in ("IN", "NOT IN"):
            values = {self._value(f, lit, c.op) for lit in c.values}
            has_null = None in values
            if c.op == "IN":
                if fold:
                    return lambda r: (
                        ((v := get(r)) is not None and v.lower() in values)
                        or (has_null and v is None)
                    )
                return lambda r: get(r) in values
            if fold:
                return lambda r: (
                    ((v := get(r)) is None and not has_null)
                    or (v is not None and v.lower() not in values)
                )
            return lambda r: get(r) not in values
        if c.op == "LIKE":
            if f.type not in STRING_TYPES:
                raise self.err.at(
                    c.values[0].pos, "INVALID_FIELD", f"invalid operator on {f.type} field: LIKE"
                )
            pattern = self._value(f, c.values[0], "=")
            rx = _like_regex(pattern)
            return lambda r: (v := get(r)) is not None and rx.match(v) is not None
        x = self._value(f, c.values[0], c.op)
        if isinstance(x, tuple):  # a date literal range such as TODAY or LAST_N_DAYS:7
            start, end = x
            ranged: Callable[[Any], bool] = {
                "=": lambda v: start <= v < end,
                "!=": lambda v: not (start <= v < end),
                "<": lambda v: v < start,
                "<=": lambda v: v < end,
                ">": lambda v: v >= end,
                ">=": lambda v: v >= start,
            }[c.op]
            if c.op == "!=":
                return lambda r: (v := get(r)) is None or ranged(v)
            return lambda r: (v := get(r)) is not None and ranged(v)
        if x is None:
            if c.op == "=":
                return lambda r: get(r) is None
            return lambda r: get(r) is not None
        if f.type == "boolean" and c.op not in ("=", "!="):
            raise self.err.at(
                c.values[0].pos, "INVALID_FIELD", f"invalid operator on boolean field: {c.op}"
            )
        compare = _STRING_OPS[c.op]
        if fold:
            if c.op == "!=":
                return lambda r: (v := get(r)) is None or v.lower() != x
            return lambda r: (v := get(r)) is not None and compare(v.lower(), x)
        if c.op == "!=":
            return lambda r: get(r) != x
        return lambda r: (v := get(r)) is not None and compare(v, x)


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def _narrowing(c: Cond | None, obj: SObjectType) -> tuple[str, list[Any]] | None:
    """An index lookup that yields a superset of the matches (``Id =``/``IN``, ``Email =``/``IN``)."""
    if c is None:
        return None
    items = c.items if isinstance(c, BoolOp) and c.op == "AND" else [c]
    for item in items:
        if not isinstance(item, Comparison) or len(item.path) != 1:
            continue
        name = item.path[0].lower()
        if item.op not in ("=", "IN") or any(v.kind != "string" for v in item.values):
            continue
        if name == "id":
            return ("Id", [normalize_id(v.value) for v in item.values])
        if name == "email" and obj.field("Email") is not None:
            return ("Email", [v.value.lower() for v in item.values])
    for item in items:  # no equality index: fall back to the SystemModstamp log
        if (
            isinstance(item, Comparison)
            and [p.lower() for p in item.path] == ["systemmodstamp"]
            and item.op in (">", ">=")
            and item.values[0].kind == "datetime"
        ):
            return ("SystemModstamp" + item.op, [item.values[0].value])
    return None


def compile_query(
    source: RecordSource,
    text: str,
    *,
    version: str,
    now: datetime,
    allow_relationships: bool = True,
) -> Query:
    """Parse ``text`` and check it against ``source``'s schema."""
    parsed = parse(text)
    err = Errors(text)
    obj = source.sobject(parsed.object)
    if obj is None:
        raise err.at(
            parsed.object_pos,
            "INVALID_TYPE",
            f"sObject type '{parsed.object}' is not supported. If you are attempting to use a "
            f"custom object, be sure to append the '__c' after the entity name. Please reference "
            f"your WSDL or the describe call for the appropriate names.",
        )
    paths: list[PathInfo] = []
    tree = SelectNode()
    seen: set[str] = set()
    for parts, pos in parsed.fields:
        info = resolve_path(source, obj, parts, pos, err)
        key = ".".join(info.names).lower()
        if key in seen:
            raise err.at(pos, "INVALID_FIELD", f"duplicate field selected: {'.'.join(parts)}")
        seen.add(key)
        if len(info.names) > 1 and not allow_relationships:
            raise err.at(pos, "INVALID_FIELD", "relationship fields are not supported here")
        paths.append(info)
        _add_to_tree(source, [obj], tree, info.names)
    comp = _Compiler(source, obj, err, now)
    where = comp.cond(parsed.where) if parsed.where is not None else None
    order: list[tuple[Getter, bool, bool]] = []
    for parts, pos, desc, nulls in parsed.order:
        info = resolve_path(source, obj, parts, pos, err)
        get = info.getter
        if info.leaf.type in STRING_TYPES and info.leaf.type not in ("id", "reference"):
            get = _lowered(get)
        nulls_first = (not desc) if nulls is None else nulls
        order.append((get, desc, nulls_first))
    return Query(
        text=text,
        obj=obj,
        count=parsed.count,
        paths=paths,
        renderer=Renderer(source, obj, tree, version),
        where=where,
        narrow=_narrowing(parsed.where, obj),
        order=order,
        limit=parsed.limit,
        offset=parsed.offset,
    )


def _lowered(get: Getter) -> Getter:
    def key(rec: Record) -> Any:
        v = get(rec)
        return v.lower() if isinstance(v, str) else v

    return key


def _candidates(source: RecordSource, q: Query) -> Iterable[Record]:
    records = source.records_of(q.obj.name)
    if q.narrow is None:
        return records.values()
    kind, values = q.narrow
    if kind.startswith("SystemModstamp"):
        since = source.modified_since(q.obj.name, values[0], inclusive=kind.endswith(">="))
        return records.values() if since is None else since
    if kind == "Id":
        return [r for v in dict.fromkeys(values) if (r := records.get(v)) is not None]
    index = source.email_index(q.obj.name)
    if index is None:
        return records.values()
    ids = dict.fromkeys(i for v in dict.fromkeys(values) for i in index.get(v, ()))
    return sorted((records[i] for i in ids if i in records), key=lambda r: str(r["Id"]))


def run_query(source: RecordSource, q: Query, *, include_deleted: bool) -> list[Record]:
    """The matching records, filtered, ordered, offset and limited."""
    where = q.where
    rows = [
        r
        for r in _candidates(source, q)
        if (include_deleted or not r.get("IsDeleted")) and (where is None or where(r))
    ]
    for get, desc, nulls_first in reversed(q.order):
        present = [r for r in rows if get(r) is not None]
        missing = [r for r in rows if get(r) is None]
        present.sort(key=get, reverse=desc)
        rows = missing + present if nulls_first else present + missing
    if q.offset:
        rows = rows[q.offset :]
    if q.limit is not None:
        rows = rows[: q.limit]
    return rows


@dataclass
class Cursor:
    """A query locator: the matched rows and how to render them, served page by page."""

    id: str
    rows: list[Record]
    renderer: Renderer
    batch: int
    touched: float
    include_deleted: bool
