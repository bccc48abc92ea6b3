"""Writing HubSpot: batch create / update / upsert / archive, one result per op in input order.

Why this much bookkeeping: HubSpot's batch answers do not promise input order, and they report
failures in three different shapes, so every answer is mapped back to its input explicitly:

* results -- by ``objectWriteTraceId`` when echoed, by ``id`` for updates, by the identity value
  (``email``) for creates and upserts, and finally by the best property match (the written
  properties are echoed back), so even an answer without trace ids maps unambiguously;
* **207 Multi-Status** errors -- through ``context.ids`` (unknown ids on update) or
  ``context.objectWriteTraceId`` (per-input validation, which HubSpot only enables when every
  input carries a unique trace id -- so we always send one);
* a **batch-level 400** (``VALIDATION_ERROR`` for the whole batch, e.g. on upsert) -- the inputs
  named by the error (same property and value) fail without being resent, a property that does not
  exist or is read-only fails every input setting it, and the remaining inputs are resent once; if
  the error names no input, the batch is split in halves until the bad one is alone.  The extra
  calls are documented in docs/connectors/hubspot.md.

Idempotency (what the retry seam may resend after a timeout or 5xx): updates, upserts by a unique
property and archives are idempotent -- resending sets the same values again; batch **create** is
not, so it is only resent when the request provably never reached HubSpot.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from crm_bridge.connector import Delete, Upsert, WriteOp, WriteResult
from crm_bridge.connectors.hubspot.client import HubSpotClient
from crm_bridge.connectors.hubspot.reading import Reader
from crm_bridge.errors import RecordRejectedError

__all__ = ["Writer", "to_hubspot_value"]

BATCH_MAX = 100
Kind = Literal["create", "update", "upsert", "archive"]
_ENDPOINT: dict[Kind, str] = {
    "create": "create",
    "update": "update",
    "upsert": "upsert",
    "archive": "archive",
}
_IDEMPOTENT: dict[Kind, bool] = {"create": False, "update": True, "upsert": True, "archive": True}
_VALUE_INDEPENDENT = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})
"""Codes that fail every input setting the property, whatever its value."""


def to_hubspot_value(value: Any) -> str:
    """HubSpot takes strings: ``""`` clears, booleans are ``true``/``false``, lists join by ``;``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(to_hubspot_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


@dataclass
class _Item:
    index: int
    op: WriteOp
    kind: Kind
    props: dict[str, str]
    trace: str
    key: str  # what must be unique inside one batch (id, identity value, or the trace)
    match_on: str | None = None


class Writer:
    """Applies a sequence of ops with as few batch calls as HubSpot allows."""

    def __init__(self, client: HubSpotClient, reader: Reader) -> None:
        self.client = client
        self.reader = reader

    def write(
        self, obj: str, ops: Sequence[WriteOp], identity: tuple[str, ...]
    ) -> list[WriteResult]:
        """One WriteResult per op, in input order; per-record refusals never raise."""
        results: dict[int, WriteResult] = {}
        groups: dict[Kind, list[_Item]] = {}
        for index, op in enumerate(ops):
            item = self._plan(index, op)
            if isinstance(item, WriteResult):
                results[index] = item
            else:
                groups.setdefault(item.kind, []).append(item)
        for kind, items in groups.items():  # kinds in order of first appearance
            for chunk in _unique_chunks(items, BATCH_MAX):
                self._run(obj, kind, chunk, identity, results)
        return [results[i] for i in range(len(ops))]

    # -- planning --------------------------------------------------------------------------------

    def _plan(self, index: int, op: WriteOp) -> _Item | WriteResult:
        trace = f"crm-bridge-{index}"
        if isinstance(op, Delete):
            if op.mode != "archive":
                return WriteResult.failure(
                    op.key,
                    "HubSpot hard delete (GDPR delete) is not supported; use mode='archive'",
                    code="UNSUPPORTED_DELETE_MODE",
                )
            return _Item(index, op, "archive", {}, trace, f"id:{op.id}")
        props = {str(k): to_hubspot_value(v) for k, v in op.fields.items()}
        if op.id is not None:
            return _Item(index, op, "update", props, trace, f"id:{op.id}")
        if op.match_on is not None and props.get(op.match_on):
            value = props[op.match_on].strip()
            return _Item(
                index, op, "upsert", props, trace, f"{op.match_on}:{value.lower()}", op.match_on
            )
        return _Item(index, op, "create", props, trace, trace)

    # -- one batch call (and its splits) ---------------------------------------------------------

    def _run(
        self,
        obj: str,
        kind: Kind,
        items: list[_Item],
        identity: tuple[str, ...],
        results: dict[int, WriteResult],
    ) -> None:
        try:
            response = self.client.send(
                "batch",
                "crm.objects.batch_api",
                _ENDPOINT[kind],
                obj,
                {"inputs": [_input(kind, i) for i in items]},
                idempotent=_IDEMPOTENT[kind],
            )
        except RecordRejectedError as exc:
            self._rejected(obj, kind, items, identity, results, exc)
            return
        if kind == "archive":
            for item in items:
                assert isinstance(item.op, Delete)
                results[item.index] = WriteResult.success(item.op.key, item.op.id)
            return
        body = response.body if isinstance(response.body, dict) else {}
        results.update(_assign(kind, items, body, identity))

    def _rejected(
        self,
        obj: str,
        kind: Kind,
        items: list[_Item],
        identity: tuple[str, ...],
        results: dict[int, WriteResult],
        exc: RecordRejectedError,
    ) -> None:
        """A whole-batch 4xx: fail the inputs it names, resend the rest (or split in halves)."""
        problems = _problems(exc)
        if len(items) == 1:
            item = items[0]
            message, code = _first_problem(problems, exc)
            results[item.index] = WriteResult.failure(item.op.key, message, code=code)
            return
        named: dict[int, WriteResult] = {}
        for item in items:
            for prop, code, message in problems:
                value = item.props.get(prop)
                if value is None:
                    continue
                if code in _VALUE_INDEPENDENT or (value and _names_value(message, value)):
                    named[item.index] = WriteResult.failure(
                        item.op.key, f"{prop}: {message}", code=code
                    )
                    break
        if named:
            results.update(named)
            rest = [i for i in items if i.index not in named]
            if rest:
                self._run(obj, kind, rest, identity, results)
            return
        half = len(items) // 2
        self._run(obj, kind, items[:half], identity, results)
        self._run(obj, kind, items[half:], identity, results)


def _input(kind: Kind, item: _Item) -> dict[str, Any]:
    op = item.op
    if kind == "archive":
        assert isinstance(op, Delete)
        return {"id": op.id}
    body: dict[str, Any] = {"properties": item.props, "objectWriteTraceId": item.trace}
    if kind == "update":
        assert isinstance(op, Upsert)
        body["id"] = op.id
    elif kind == "upsert":
        assert item.match_on is not None
        body["id"] = item.props[item.match_on].strip()
        body["idProperty"] = item.match_on
    return body


def _assign(
    kind: Kind, items: list[_Item], body: Mapping[str, Any], identity: tuple[str, ...]
) -> dict[int, WriteResult]:
    """Map a batch answer (200/201/207) back to its inputs; see the module docstring.

    The inputs are indexed once (:class:`_Inputs`), so an answer of n results costs O(n) rather
    than a scan of every remaining input per result -- at 100 inputs a batch the scans cost more
    CPU than the HTTP call.  Which input each result gets is unchanged: the first input, in input
    order, that is still unanswered and matches.
    """
    out: dict[int, WriteResult] = {}
    left = {i.index: i for i in items}
    by_trace = {i.trace: i for i in items}
    inputs = _Inputs(items, identity)

    def fail(item: _Item, error: Mapping[str, Any]) -> None:
        code, message = _error_code(error), str(error.get("message") or "rejected by HubSpot")
        out[item.index] = WriteResult.failure(item.op.key, message, code=code)
        left.pop(item.index, None)

    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        context = error.get("context") or {}
        for trace in context.get("objectWriteTraceId") or []:
            if str(trace) in by_trace and by_trace[str(trace)].index in left:
                fail(by_trace[str(trace)], error)
        wanted = {str(x).lower() for x in context.get("ids") or []}
        for item in inputs.named(wanted, left):
            fail(item, error)

    def success(item: _Item, raw: Mapping[str, Any]) -> None:
        created = kind == "create" or bool(raw.get("new"))
        out[item.index] = WriteResult.success(
            item.op.key, str(raw["id"]), version=_version(raw), created=created
        )
        left.pop(item.index, None)

    unmatched: list[Mapping[str, Any]] = []
    for raw in body.get("results") or []:
        if not isinstance(raw, Mapping) or "id" not in raw:
            continue
        found = _match(kind, raw, left, by_trace, inputs)
        if found is None:
            unmatched.append(raw)
        else:
            success(found, raw)
    for raw, item in _by_resemblance(unmatched, list(left.values())):
        success(item, raw)
    for item in list(left.values()):
        out[item.index] = WriteResult.failure(
            item.op.key,
            "HubSpot's batch answer named no result and no error for this input",
            code="UNKNOWN_OUTCOME",
        )
    return out


class _Inputs:
    """One batch's inputs indexed by what a result or an error can name them by.

    Each index keeps its inputs in input order, and an input that got its answer is dropped from
    the front of a queue lazily, the first time a lookup meets it: every input leaves every queue
    at most once, so all lookups of one answer together cost O(inputs + results).
    """

    def __init__(self, items: list[_Item], identity: tuple[str, ...]) -> None:
        self.items = items
        self.rank = {item.index: n for n, item in enumerate(items)}
        # by lower-cased id as ``context.ids`` names them; built by the first error naming ids
        self.by_error_id: dict[str, list[_Item]] | None = None
        self.by_id: dict[str, deque[_Item]] = {}
        self.by_identity: dict[tuple[str, str], deque[_Item]] = {}
        names: dict[str, None] = {}  # every property some input is identified by, ordered
        for item in items:
            if isinstance(item.op, Upsert) and item.op.id is not None:
                self.by_id.setdefault(item.op.id, deque()).append(item)
            for name in (item.match_on,) if item.match_on else identity:
                names[name] = None
                mine = item.props.get(name)
                if mine:
                    key = (name, mine.strip().lower())
                    self.by_identity.setdefault(key, deque()).append(item)
        self.names = tuple(names)

    def named(self, wanted: set[str], left: Mapping[int, _Item]) -> list[_Item]:
        """Unanswered inputs whose id (lower-cased) an error's ``context.ids`` lists."""
        if not wanted:
            return []
        if self.by_error_id is None:
            self.by_error_id = {}
            for item in self.items:
                self.by_error_id.setdefault(_item_id(item).lower(), []).append(item)
        found = [i for w in wanted for i in self.by_error_id.get(w, ()) if i.index in left]
        return sorted(found, key=lambda i: self.rank[i.index])  # input order, as a scan gives

    def with_id(self, rid: str, left: Mapping[int, _Item]) -> _Item | None:
        """The first unanswered update of record ``rid``."""
        return _first_left(self.by_id.get(rid), left)

    def with_identity(self, props: Mapping[str, Any], left: Mapping[int, _Item]) -> _Item | None:
        """The first unanswered input whose identity value (trimmed, any case) ``props`` echoes.

        An input is identified by its ``match_on`` property if it has one, else by each of the
        object's identity properties; the earliest input matching on any of them wins.
        """
        best: _Item | None = None
        for name in self.names:
            theirs = props.get(name)
            if not theirs:
                continue
            item = _first_left(self.by_identity.get((name, str(theirs).strip().lower())), left)
            if item is not None and (best is None or self.rank[item.index] < self.rank[best.index]):
                best = item
        return best


def _first_left(queue: deque[_Item] | None, left: Mapping[int, _Item]) -> _Item | None:
    """The first input of ``queue`` still unanswered, dropping the answered ones before it."""
    if queue is None:
        return None
    while queue and queue[0].index not in left:
        queue.popleft()
    return queue[0] if queue else None


def _match(
    kind: Kind,
    raw: Mapping[str, Any],
    left: Mapping[int, _Item],
    by_trace: Mapping[str, _Item],
    inputs: _Inputs,
) -> _Item | None:
    trace = raw.get("objectWriteTraceId")
    if trace is not None and str(trace) in by_trace and by_trace[str(trace)].index in left:
        return by_trace[str(trace)]
    if not left:
        return None
    if kind == "update":
        found = inputs.with_id(str(raw["id"]), left)
        if found is not None:
            return found
    return inputs.with_identity(raw.get("properties") or {}, left)


def _by_resemblance(
    results: list[Mapping[str, Any]], items: list[_Item]
) -> Iterable[tuple[Mapping[str, Any], _Item]]:
    """Pair leftover results and inputs by how many written values the result echoes.

    Each result, in answer order, takes the free input whose written values it echoes most
    (trimmed, any case; a value not echoed counts as ``""``), the earliest input on a tie.
    HubSpot echoes every written property, so that input normally echoes *all* its values; it is
    then found by a dict lookup instead of scoring every free input (deals have no identity
    property, so every deal result lands here).  An input echoed in full scores its property
    count, which no input with fewer properties can reach: among the free inputs with the most
    properties, the earliest echoed in full is exactly what the scoring would pick.  A result
    that echoes none of those in full is scored against every free input, as before.
    """
    if not results or not items:
        return
    free = dict(enumerate(items))  # position -> input, in input order
    sizes: Counter[int] = Counter()
    # property count -> property names (as written) -> normalised values -> positions, in order
    by_values: dict[int, dict[tuple[str, ...], dict[tuple[str, ...], deque[int]]]] = {}
    for pos, item in free.items():
        names = tuple(item.props)
        values = tuple([v.strip().lower() for v in item.props.values()])
        shapes = by_values.setdefault(len(names), {})
        shapes.setdefault(names, {}).setdefault(values, deque()).append(pos)
        sizes[len(names)] += 1
    for raw in results:
        if not free:
            return
        props = raw.get("properties") or {}
        widest = max(size for size, count in sizes.items() if count)
        best: int | None = None
        for names, table in by_values[widest].items():
            # _echoed, inlined: this runs once per result and property
            echoed = tuple([str(props.get(k) or "").strip().lower() for k in names])
            queue = table.get(echoed)
            while queue and queue[0] not in free:
                queue.popleft()
            if queue and (best is None or queue[0] < best):
                best = queue[0]
        if best is None:

            def score(pos: int, props: Mapping[str, Any] = props) -> int:
                return sum(
                    1 for k, v in free[pos].props.items() if _echoed(props, k) == v.strip().lower()
                )

            best = max(free, key=score)
        item = free.pop(best)
        sizes[len(item.props)] -= 1
        yield raw, item


def _echoed(props: Mapping[str, Any], name: str) -> str:
    """The value a result echoes for ``name``, normalised for comparing with a written one."""
    return str(props.get(name) or "").strip().lower()


def _item_id(item: _Item) -> str:
    op = item.op
    if isinstance(op, Delete):
        return op.id
    if op.id is not None:
        return op.id
    if item.match_on is not None:
        return item.props.get(item.match_on, "").strip()
    return item.trace


def _version(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("updatedAt")
    return str(value) if value else None


def _error_code(error: Mapping[str, Any]) -> str | None:
    nested = error.get("errors")
    if isinstance(nested, list) and nested and isinstance(nested[0], Mapping):
        code = nested[0].get("code")
        if code:
            return str(code)
    category = error.get("category")
    return str(category) if category else None


def _problems(exc: RecordRejectedError) -> list[tuple[str, str, str]]:
    """``(property, code, message)`` from the client's error body behind ``exc``."""
    body: Any = getattr(exc.__cause__, "body", None)
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return []
    out: list[tuple[str, str, str]] = []
    if not isinstance(data, dict):
        return out
    for error in data.get("errors") or []:
        if not isinstance(error, dict):
            continue
        names = (error.get("context") or {}).get("propertyName") or []
        for name in names:
            out.append((str(name), str(error.get("code") or ""), str(error.get("message") or "")))
    return out


def _first_problem(
    problems: list[tuple[str, str, str]], exc: RecordRejectedError
) -> tuple[str, str | None]:
    if problems:
        prop, code, message = problems[0]
        return f"{prop}: {message}", code or exc.code
    return exc.message, exc.code


def _names_value(message: str, value: str) -> bool:
    """Whether HubSpot's message is about this very value ("bogus was not one of ...")."""
    return message.startswith(f"{value} ") or f"Email address {value} is invalid" in message


def _unique_chunks(items: list[_Item], size: int) -> list[list[_Item]]:
    """Chunks of at most ``size`` with no key twice (HubSpot 400s on duplicate ids / emails).

    A repeated key goes to a later chunk than its previous occurrence, so writes to the same
    record still apply in input order.
    """
    chunks: list[list[_Item]] = []
    last: dict[str, int] = {}
    for item in items:
        start = last.get(item.key, -1) + 1
        target = next((n for n in range(start, len(chunks)) if len(chunks[n]) < size), len(chunks))
        if target == len(chunks):
            chunks.append([])
        chunks[target].append(item)
        last[item.key] = target
    return chunks
