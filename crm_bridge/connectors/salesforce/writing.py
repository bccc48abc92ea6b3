"""Write batches: Composite carrying sObject Collections, or Bulk API 2.0 for big batches.

Why Composite around Collections: one Collections request takes 200 records, and one Composite
request may carry five Collections subrequests, so 1,000 records cost **one** API call (the
theoretical minimum in ``user-asks-and-limits.md`` §3).  Every subrequest runs with
``allOrNone=false``, so a record Salesforce refuses (a restricted picklist, a validation rule)
becomes one failed :class:`WriteResult` while its siblings land.

Why Bulk API 2.0 above a threshold: a job costs about five calls however many records it holds
(create, upload, close, poll, results), so past ~10,000 records of one kind it beats Composite;
below that its latency (asynchronous processing) is not worth it.

``Upsert.match_on`` on a field that is not an external id (e.g. ``Email``) cannot use Salesforce's
upsert, so the batch first runs one *pre-read*: up to five ``WHERE Email IN (...)`` queries inside
one Composite call (one extra API call per 1,000 records).  Matches (case-insensitive; the oldest
record wins when several share the value) become updates, the rest creates.  Two creates in the same
batch with the same value are not sent together: the second waits for the first and becomes an
update of it, so a batch never creates a duplicate of itself.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode

from more_itertools import chunked, constrained_batches

from crm_bridge.connector import Delete, Upsert, WriteOp, WriteResult
from crm_bridge.errors import CrmBridgeError, TransientError
from crm_bridge.http import Action, Clock, RetryPolicy

from .reading import NUMBER_TYPES, ObjectDescription, quote, valid_id
from .settings import COLLECTION_SIZE, COLLECTIONS_PER_COMPOSITE

__all__ = [
    "BatchWriter",
    "WriteApi",
    "coerce",
    "query_rows",
    "query_subrequest",
    "wait_for_job",
]

_QUERY_CHARS = 6000
"""Keep each pre-read query's IN list under this many characters (URL length limits)."""
_TERMINAL = ("JobComplete", "Failed", "Aborted")


class WriteApi(Protocol):
    """The HTTP calls the writer needs; the connector supplies them with retries and counting."""

    clock: Clock

    def composite(self, subrequests: list[dict[str, Any]], *, idempotent: bool) -> list[Any]:
        """POST /composite (``allOrNone=false``); the ``compositeResponse`` list."""
        ...

    def query_more(self, next_url: str) -> Mapping[str, Any]:
        """Follow a ``nextRecordsUrl``."""
        ...

    def bulk_create(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST jobs/ingest."""
        ...

    def bulk_upload(self, job_id: str, data: str) -> None:
        """PUT jobs/ingest/{id}/batches (CSV)."""
        ...

    def bulk_close(self, job_id: str) -> Mapping[str, Any]:
        """PATCH jobs/ingest/{id} to UploadComplete."""
        ...

    def bulk_get(self, job_id: str) -> Mapping[str, Any]:
        """GET jobs/ingest/{id}."""
        ...

    def bulk_results(self, job_id: str, kind: str) -> str:
        """GET jobs/ingest/{id}/successfulResults|failedResults (CSV text)."""
        ...


# -- value coercion ----------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})


def coerce(value: Any, sf_type: str | None) -> Any:
    """A value as the field's describe type wants it on the wire; ``ValueError`` if it cannot be.

    Why locally: Salesforce refuses a JSON value of the wrong type for the *whole* request
    ("Cannot deserialize instance of double"), not per record, so a bad value must be caught here.
    """
    if value is None or sf_type is None:
        return value
    if sf_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if sf_type in NUMBER_TYPES or sf_type == "int":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        if isinstance(value, str) and not value.strip():
            return None
        try:
            number = float(Decimal(str(value).strip()))
        except ArithmeticError:
            raise ValueError(f"{value!r} is not a number") from None
        if sf_type == "int":
            if not number.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            return int(number)
        return number
    if sf_type == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a date") from None
    if sf_type == "datetime":
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.astimezone(UTC).isoformat(timespec="milliseconds")
        text = str(value).strip()
        return text or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


# -- planning ----------------------------------------------------------------------------------


@dataclass
class _Group:
    """Operations of one kind, sent as Collections subrequests or one Bulk job."""

    kind: str  # "create" | "update" | "delete" | "upsert"
    ext_field: str | None = None
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Plan:
    groups: dict[tuple[str, str | None], _Group] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)

    def add(self, kind: str, index: int, body: dict[str, Any], ext: str | None = None) -> None:
        group = self.groups.setdefault((kind, ext), _Group(kind, ext))
        group.items.append((index, body))


@dataclass
class _Part:
    """One sObject's share of a write: its ops, their bodies, results and what still waits."""

    obj: str
    ops: Sequence[WriteOp]
    description: ObjectDescription
    results: list[WriteResult | None]
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)
    matches: dict[str, dict[str, str]] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)


class BatchWriter:
    """Turns one ``write(obj, ops)`` into the fewest API calls, results in input order."""

    def __init__(
        self,
        api: WriteApi,
        *,
        api_version: str,
        policy: RetryPolicy,
        bulk_threshold: int,
        poll_seconds: float,
        bulk_timeout: float,
    ) -> None:
        self.api = api
        self.prefix = f"/services/data/v{api_version}"
        self.policy = policy
        self.bulk_threshold = bulk_threshold
        self.poll_seconds = poll_seconds
        self.bulk_timeout = bulk_timeout

    # -- entry point --------------------------------------------------------------------------

    def write(
        self, obj: str, ops: Sequence[WriteOp], description: ObjectDescription
    ) -> list[WriteResult]:
        """One result per op, in input order; record refusals are results, not exceptions."""
        return self.write_many([(obj, ops, description)])[0]

    def write_many(
        self, parts: Sequence[tuple[str, Sequence[WriteOp], ObjectDescription]]
    ) -> list[list[WriteResult]]:
        """:meth:`write` for several sObjects at once: their Collections share Composite calls.

        Why: a person is a Lead or a Contact, and one cycle's person writes go to both; sent
        object by object they cost a Composite call each even when both fit in one (25
        subrequests of 200 records).  Results per part, each in its input order.
        """
        states = [self._prepare(obj, ops, description) for obj, ops, description in parts]
        while any(state.pending for state in states):
            plans = [(state, self._plan(state, state.pending)) for state in states if state.pending]
            for (state, plan), created in zip(plans, self._execute(plans), strict=True):
                for i, new_id in created.items():
                    op = state.ops[i]
                    value = _match_value(op) if isinstance(op, Upsert) else None
                    if isinstance(op, Upsert) and op.match_on and value is not None:
                        match_field = state.description.canonical(op.match_on)
                        state.matches.setdefault(match_field, {}).setdefault(value, new_id)
                state.pending = plan.deferred  # same-value creates: now updates of those made
        return [
            [r if r is not None else _lost(state.ops[i].key) for i, r in enumerate(state.results)]
            for state in states
        ]

    def _prepare(self, obj: str, ops: Sequence[WriteOp], description: ObjectDescription) -> _Part:
        """Bodies, refusals found before sending, and the ``match_on`` pre-read of one part."""
        part = _Part(obj, ops, description, [None] * len(ops))
        for i, op in enumerate(ops):
            if isinstance(op, Delete):
                if op.mode == "hard":
                    part.results[i] = WriteResult.failure(
                        op.key,
                        "hard delete is not available through the Salesforce REST API; "
                        "use mode='archive' (recycle bin)",
                        code="HARD_DELETE_UNSUPPORTED",
                    )
                elif not valid_id(op.id):
                    part.results[i] = WriteResult.failure(
                        op.key, f"malformed id {op.id!r}", code="MALFORMED_ID"
                    )
                continue
            try:
                part.bodies[i] = _body(op, description)
            except ValueError as exc:
                part.results[i] = WriteResult.failure(
                    op.key, str(exc), code="INVALID_TYPE_ON_FIELD_IN_RECORD"
                )
        part.matches = self._pre_read(obj, ops, part.results, description)
        part.pending = [i for i in range(len(ops)) if part.results[i] is None]
        return part

    # -- pre-read (match_on) ------------------------------------------------------------------

    def _pre_read(
        self,
        obj: str,
        ops: Sequence[WriteOp],
        results: list[WriteResult | None],
        description: ObjectDescription,
    ) -> dict[str, dict[str, str]]:
        by_field: dict[str, list[str]] = {}
        for i, op in enumerate(ops):
            if results[i] is not None or not isinstance(op, Upsert) or op.id is not None:
                continue
            if op.match_on and not _is_external(op.match_on, description):
                value = _match_value(op)
                if value is not None:
                    by_field.setdefault(description.canonical(op.match_on), []).append(
                        str(op.fields[_key(op, op.match_on)]).strip()
                    )
        queries: list[tuple[str, str]] = []  # (soql, match field)
        for match_field, values in by_field.items():
            unique = list(dict.fromkeys(values))
            for chunk in _soql_chunks(unique):
                soql = (
                    f"SELECT Id, {match_field} FROM {obj} WHERE {match_field} IN "
                    f"({', '.join(map(quote, chunk))}) ORDER BY CreatedDate, Id"
                )
                queries.append((soql, match_field))
        matches: dict[str, dict[str, str]] = {}
        for start in range(0, len(queries), COLLECTIONS_PER_COMPOSITE):
            group = queries[start : start + COLLECTIONS_PER_COMPOSITE]
            subs = [
                query_subrequest(self.prefix, soql, ref=f"q{n}", all_rows=False)
                for n, (soql, _) in enumerate(group)
            ]
            answers = self.api.composite(subs, idempotent=True)
            for (_, target), answer in zip(group, answers, strict=True):
                for row in query_rows(answer, self.api.query_more):
                    value = row.get(target)
                    if value is not None:
                        matches.setdefault(target, {}).setdefault(
                            str(value).casefold(), str(row["Id"])
                        )
        return matches

    # -- planning -----------------------------------------------------------------------------

    def _plan(self, part: _Part, indexes: Sequence[int]) -> _Plan:
        obj, ops, bodies, description, matches = (
            part.obj,
            part.ops,
            part.bodies,
            part.description,
            part.matches,
        )
        plan = _Plan()
        creating: set[tuple[str, str]] = set()
        for i in indexes:
            op = ops[i]
            if isinstance(op, Delete):
                plan.add("delete", i, {"id": op.id})
                continue
            body = {"attributes": {"type": obj}, **bodies[i]}
            if op.id is not None:
                plan.add("update", i, {**body, "id": op.id})
                continue
            if op.match_on and _is_external(op.match_on, description):
                plan.add("upsert", i, body, ext=description.canonical(op.match_on))
                continue
            value = _match_value(op)
            if op.match_on and value is not None:
                match_field = description.canonical(op.match_on)
                found = matches.get(match_field, {}).get(value)
                if found is not None:
                    plan.add("update", i, {**body, "id": found})
                    continue
                if (match_field, value) in creating:
                    plan.deferred.append(i)  # wait for the first create, then update it
                    continue
                creating.add((match_field, value))
            plan.add("create", i, body)
        return plan

    # -- execution ----------------------------------------------------------------------------

    def _execute(self, plans: Sequence[tuple[_Part, _Plan]]) -> list[dict[int, str]]:
        """Send every part's plan; fill its results; per part, the ids created, by op index."""
        created: list[dict[int, str]] = [{} for _ in plans]
        collections: list[tuple[int, _Group, list[tuple[int, dict[str, Any]]]]] = []
        for k, (part, plan) in enumerate(plans):
            for group in plan.groups.values():
                if self.bulk_threshold and len(group.items) >= self.bulk_threshold:
                    self._bulk(part.obj, part.ops, group, part.results, created[k])
                    continue
                for chunk in chunked(group.items, COLLECTION_SIZE):
                    collections.append((k, group, chunk))
        for start in range(0, len(collections), COLLECTIONS_PER_COMPOSITE):
            batch = collections[start : start + COLLECTIONS_PER_COMPOSITE]
            subs = [self._subrequest(group, chunk, n) for n, (_, group, chunk) in enumerate(batch)]
            idempotent = all(group.kind != "create" for _, group, _ in batch)
            answers = self.api.composite(subs, idempotent=idempotent)
            for (k, group, chunk), answer in zip(batch, answers, strict=True):
                part = plans[k][0]
                self._apply_answer(part.ops, group, chunk, answer, part.results, created[k])
        return created

    def _subrequest(
        self, group: _Group, chunk: list[tuple[int, dict[str, Any]]], n: int
    ) -> dict[str, Any]:
        base = f"{self.prefix}/composite/sobjects"
        records = [body for _, body in chunk]
        if group.kind == "delete":
            ids = ",".join(str(body["id"]) for body in records)
            return {
                "method": "DELETE",
                "url": f"{base}?ids={ids}&allOrNone=false",
                "referenceId": f"w{n}",
            }
        if group.kind == "upsert":
            obj = records[0]["attributes"]["type"]
            url, method = f"{base}/{obj}/{group.ext_field}", "PATCH"
        else:
            url, method = base, ("POST" if group.kind == "create" else "PATCH")
        return {
            "method": method,
            "url": url,
            "referenceId": f"w{n}",
            "body": {"allOrNone": False, "records": records},
        }

    def _apply_answer(
        self,
        ops: Sequence[WriteOp],
        group: _Group,
        chunk: list[tuple[int, dict[str, Any]]],
        answer: Mapping[str, Any],
        results: list[WriteResult | None],
        created: dict[int, str],
    ) -> None:
        status = int(answer.get("httpStatusCode", 500))
        body = answer.get("body")
        if status >= 400 or not isinstance(body, list) or len(body) != len(chunk):
            code, message = _first_error(body)
            retryable = self._retryable(status, code)
            for i, _ in chunk:
                results[i] = WriteResult.failure(
                    ops[i].key, message, code=code, retryable=retryable
                )
            return
        for (i, sent), saved in zip(chunk, body, strict=True):
            key = ops[i].key
            if isinstance(saved, Mapping) and saved.get("success"):
                new_id = str(saved.get("id") or sent.get("id") or "")
                was_created = group.kind == "create" or bool(saved.get("created"))
                if was_created:
                    created[i] = new_id
                results[i] = WriteResult.success(key, new_id, created=was_created)
                continue
            errors = saved.get("errors") if isinstance(saved, Mapping) else None
            code, message = _first_error(errors)
            results[i] = WriteResult.failure(
                key, message, code=code, retryable=self._retryable(400, code)
            )

    def _retryable(self, status: int, code: str | None) -> bool:
        action = self.policy.classify(status, code).action
        return action in (Action.RETRY, Action.RATE_LIMITED)

    # -- Bulk API 2.0 -------------------------------------------------------------------------

    def _bulk(
        self,
        obj: str,
        ops: Sequence[WriteOp],
        group: _Group,
        results: list[WriteResult | None],
        created: dict[int, str],
    ) -> None:
        operation = {"create": "insert", "update": "update", "delete": "delete"}.get(
            group.kind, "upsert"
        )
        columns = _columns(group)
        rows = [[_cell(body, c) for c in columns] for _, body in group.items]
        job_body: dict[str, Any] = {
            "object": obj,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if group.ext_field:
            job_body["externalIdFieldName"] = group.ext_field
        job = self.api.bulk_create(job_body)
        job_id = str(job["id"])
        self.api.bulk_upload(job_id, _to_csv(columns, rows))
        self.api.bulk_close(job_id)
        info = self._wait(job_id)
        state = str(info.get("state"))
        if state != "JobComplete":
            message = str(info.get("errorMessage") or f"Bulk job {job_id} ended {state}")
            for i, _ in group.items:
                results[i] = WriteResult.failure(ops[i].key, message, code="BULK_JOB_FAILED")
            return
        waiting: dict[tuple[str, ...], deque[int]] = {}
        for (i, _), row in zip(group.items, rows, strict=True):
            waiting.setdefault(tuple(row), deque()).append(i)
        failed = int(info.get("numberRecordsFailed") or 0)
        processed = int(info.get("numberRecordsProcessed") or 0)
        if processed - failed > 0:
            for result_row in _read_csv(self.api.bulk_results(job_id, "successfulResults")):
                taken = _take(waiting, result_row, columns)
                if taken is None:
                    continue
                new_id = result_row.get("sf__Id", "")
                was_created = result_row.get("sf__Created", "").lower() == "true"
                if was_created:
                    created[taken] = new_id
                results[taken] = WriteResult.success(ops[taken].key, new_id, created=was_created)
        if failed > 0:
            for result_row in _read_csv(self.api.bulk_results(job_id, "failedResults")):
                taken = _take(waiting, result_row, columns)
                if taken is None:
                    continue
                code, _, message = result_row.get("sf__Error", "").partition(":")
                message = message.rstrip(" -").rstrip(":") or code
                results[taken] = WriteResult.failure(
                    ops[taken].key, message, code=code or None, retryable=self._retryable(400, code)
                )
        for remaining in waiting.values():
            for left in remaining:
                results[left] = WriteResult.failure(
                    ops[left].key,
                    f"Bulk job {job_id} did not process this record",
                    code="UNPROCESSED",
                    retryable=True,
                )

    def _wait(self, job_id: str) -> Mapping[str, Any]:
        return wait_for_job(
            lambda: self.api.bulk_get(job_id),
            self.api.clock,
            first_delay=self.poll_seconds,
            timeout=self.bulk_timeout,
            late=f"Bulk job {job_id}",
            advice="; its records may yet be applied, check the job in Salesforce",
        )


def wait_for_job(
    get: Callable[[], Mapping[str, Any]],
    clock: Clock,
    *,
    first_delay: float,
    timeout: float,
    late: str,
    advice: str = "",
) -> Mapping[str, Any]:
    """Poll a Bulk 2.0 job (ingest or query) until it ends; its last ``GET`` answer.

    The first poll goes at once, then waits double from ``first_delay`` up to 30 s on
    ``clock`` (so tests pass no time).  A job still running after ``timeout`` is a
    :class:`TransientError` naming ``late`` (the job) and ``advice``.
    """
    deadline = clock.monotonic() + timeout
    delay = first_delay
    while True:
        info = get()
        if str(info.get("state")) in _TERMINAL:
            return info
        if clock.monotonic() + delay > deadline:
            raise TransientError(f"{late} still {info.get('state')} after {timeout:g}s{advice}")
        clock.sleep(delay)
        delay = min(30.0, max(0.5, delay * 2))


# -- queries inside Composite ---------------------------------------------------------------


def query_subrequest(
    prefix: str, soql: str, *, ref: str, all_rows: bool, batch_size: int | None = None
) -> dict[str, Any]:
    """A ``query``/``queryAll`` Composite subrequest (up to five ride in one API call).

    ``batch_size``: rows per page (the ``Sforce-Query-Options`` header, per subrequest), for a
    stream that goes on page by page after this first one.
    """
    resource = "queryAll" if all_rows else "query"
    sub: dict[str, Any] = {
        "method": "GET",
        "url": f"{prefix}/{resource}?{urlencode({'q': soql})}",
        "referenceId": ref,
    }
    if batch_size is not None:
        sub["httpHeaders"] = {"Sforce-Query-Options": f"batchSize={batch_size}"}
    return sub


def query_rows(
    answer: Mapping[str, Any], query_more: Callable[[str], Mapping[str, Any]]
) -> Iterator[Mapping[str, Any]]:
    """The rows of a query subrequest's answer, following ``nextRecordsUrl`` if it has more.

    A refused query is a whole-batch failure: 5xx (and a locked row) are transient, anything
    else means crm-bridge built a query the org cannot run (e.g. a configured field is gone).
    """
    status = int(answer.get("httpStatusCode", 500))
    body = answer.get("body")
    if status >= 400 or not isinstance(body, Mapping):
        code, message = _first_error(body)
        text = f"Salesforce refused a query (HTTP {status} {code}: {message})"
        if status >= 500 or code == "UNABLE_TO_LOCK_ROW":
            raise TransientError(text)
        raise CrmBridgeError(text)
    page: Mapping[str, Any] = body
    while True:
        yield from page.get("records") or []
        next_url = page.get("nextRecordsUrl")
        if page.get("done", True) or not next_url:
            return
        page = query_more(str(next_url))


# -- helpers -----------------------------------------------------------------------------------


def _is_external(name: str, description: ObjectDescription) -> bool:
    return description.canonical(name) in description.external_ids


def _key(op: Upsert, name: str) -> str:
    lowered = name.lower()
    return next((k for k in op.fields if k.lower() == lowered), name)


def _match_value(op: Upsert) -> str | None:
    if not op.match_on:
        return None
    value = op.fields.get(_key(op, op.match_on))
    if value is None or str(value).strip() == "":
        return None
    return str(value).casefold()


def _body(op: Upsert, description: ObjectDescription) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in op.fields.items():
        if name == "attributes" or name.lower() == "id":
            continue
        try:
            body[description.canonical(name)] = coerce(value, description.field_type(name))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return body


def _soql_chunks(values: Sequence[str]) -> Iterable[tuple[str, ...]]:
    """Values for ``IN (...)`` lists: at most a collection's worth, and a query URL that fits."""
    return constrained_batches(
        values, _QUERY_CHARS, COLLECTION_SIZE, get_len=lambda v: len(v) + 4, strict=False
    )


def _first_error(body: Any) -> tuple[str | None, str]:
    """``(code, message)`` of a Salesforce error list (``errorCode`` or ``statusCode``)."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        code = first.get("statusCode") or first.get("errorCode")
        message = str(first.get("message") or code or "refused")
        fields = first.get("fields")
        if isinstance(fields, list) and fields:
            message = f"{message} (fields: {', '.join(map(str, fields))})"
        return (str(code) if code else None), message
    return None, "Salesforce refused the record without a reason"


def _lost(key: str) -> WriteResult:
    return WriteResult.failure(key, "no result came back for this record", retryable=True)


def _columns(group: _Group) -> list[str]:
    if group.kind == "delete":
        return ["Id"]
    columns: dict[str, None] = {"Id": None} if group.kind == "update" else {}
    if group.ext_field:
        columns[group.ext_field] = None
    for _, body in group.items:
        for name in body:
            if name not in ("attributes", "id"):
                columns[name] = None
    return list(columns)


def _cell(body: Mapping[str, Any], column: str) -> str:
    """Bulk CSV cell: absent = empty (unchanged); ``None`` or "" = ``#N/A`` (set to null)."""
    if column == "Id":
        return str(body.get("id") or "")
    if column not in body:
        return ""
    value = body[column]
    if value is None or value == "":
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_csv(columns: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _take(
    waiting: dict[tuple[str, ...], deque[int]], row: Mapping[str, str], columns: list[str]
) -> int | None:
    queue = waiting.get(tuple(row.get(c, "") for c in columns))
    return queue.popleft() if queue else None
