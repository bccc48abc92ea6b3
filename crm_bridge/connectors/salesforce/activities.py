"""Activities (Task / Event) read for SLA first touch, and tasks created for SLA reminders.

Why these queries:

* **By ``WhoId``, five queries per Composite call.**  Asking "touches on these leads" costs
  ``ceil(ids / 1,000)`` API calls per activity object (200 ids per ``IN`` list keeps the SOQL far
  below its length limit; five ride in one Composite request, which counts once).
* **By time when the id list is large.**  With a ``since`` and more than ``TIME_QUERY_THRESHOLD``
  ids, one ``CreatedDate >= since`` query per object costs the number of *new* activities rather
  than the number of open SLA clocks; rows are filtered to the ids locally.
* **``CreatedDate`` is the touch time**: it is when the rep *logged* the call or e-mail, which is
  what an SLA on "first logged touch" measures (``ActivityDate`` is a date without a time).
* ``queryAll`` is not used: a touch that was logged and later deleted still was not a touch we
  can show; deleted activities are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from more_itertools import chunked

from crm_bridge.connector import Activity, NewTask

from .reading import format_soql_datetime, parse_sf_datetime, quote, valid_id
from .settings import COLLECTION_SIZE, COLLECTIONS_PER_COMPOSITE
from .writing import query_rows, query_subrequest

if TYPE_CHECKING:
    from .connector import SalesforceConnector

__all__ = ["TIME_QUERY_THRESHOLD", "activities", "create_task", "create_tasks"]

TIME_QUERY_THRESHOLD = 2_000
_FIELDS = {
    "Task": "Id, WhoId, OwnerId, Subject, CreatedDate, TaskSubtype, Type",
    "Event": "Id, WhoId, OwnerId, Subject, CreatedDate, Type",
}
_KINDS: Mapping[str, Literal["call", "email", "meeting", "task", "note", "other"]] = {
    "call": "call",
    "email": "email",
    "listemail": "email",
    "meeting": "meeting",
}


def _kind(
    obj: str, row: Mapping[str, Any]
) -> Literal["call", "email", "meeting", "task", "note", "other"]:
    if obj == "Event":
        return "meeting"
    for key in ("TaskSubtype", "Type"):
        value = str(row.get(key) or "").strip().lower()
        if value in _KINDS:
            return _KINDS[value]
    return "task"


def _activity(obj: str, row: Mapping[str, Any]) -> Activity:
    return Activity(
        id=str(row["Id"]),
        record_id=str(row["WhoId"]),
        kind=_kind(obj, row),
        occurred_at=parse_sf_datetime(str(row["CreatedDate"])),
        owner_id=str(row["OwnerId"]) if row.get("OwnerId") else None,
        subject=str(row.get("Subject") or ""),
    )


def activities(
    connector: SalesforceConnector, record_ids: Sequence[str], since: datetime | None
) -> Iterator[Activity]:
    """Tasks then events whose ``WhoId`` is one of ``record_ids``, created at/after ``since``."""
    wanted = [i for i in dict.fromkeys(record_ids) if valid_id(i)]
    if not wanted:
        return
    # Salesforce ids compare on their 15-character case-sensitive prefix.
    keys = {i[:15] for i in wanted}
    time_clause = f" AND CreatedDate >= {format_soql_datetime(since)}" if since else ""
    for obj in ("Task", "Event"):
        head = f"SELECT {_FIELDS[obj]} FROM {obj}"
        if since is not None and len(wanted) > TIME_QUERY_THRESHOLD:
            soql = f"{head} WHERE WhoId != null{time_clause} ORDER BY CreatedDate, Id"
            for page in connector._pages(soql, all_rows=False):
                for row in page:
                    if str(row.get("WhoId") or "")[:15] in keys:
                        yield _activity(obj, row)
            continue
        prefix = f"/services/data/v{connector.settings.api_version}"
        from .connector import _WriteApi  # the Composite helper lives with the connector

        api = _WriteApi(connector)
        for group in chunked(wanted, COLLECTION_SIZE * COLLECTIONS_PER_COMPOSITE):
            subs = [
                query_subrequest(
                    prefix,
                    f"{head} WHERE WhoId IN ({', '.join(map(quote, chunk))}){time_clause} "
                    "ORDER BY CreatedDate, Id",
                    ref=f"a{n}",
                    all_rows=False,
                )
                for n, chunk in enumerate(chunked(group, COLLECTION_SIZE))
            ]
            for answer in api.composite(subs, idempotent=True):
                for row in query_rows(answer, connector._query_more):
                    yield _activity(obj, row)


def create_task(
    connector: SalesforceConnector,
    obj: str,
    record_id: str,
    *,
    owner_id: str | None,
    subject: str,
    body: str = "",
    due: datetime | None = None,
) -> str:
    """``POST sobjects/Task`` linked through ``WhoId`` (leads and contacts) or ``WhatId``.

    Not idempotent on the wire (a resend after a lost answer would create a second task), so the
    seam only resends when the request provably never arrived; the SLA ledger prevents repeats
    across cycles.
    """
    link = "WhoId" if obj in ("Person", "Lead", "Contact") else "WhatId"
    fields: dict[str, Any] = {
        link: record_id,
        "Subject": subject[:255],
        "Description": body,
        "Status": "Not Started",
        "Priority": "High",
    }
    if owner_id is not None:
        fields["OwnerId"] = owner_id
    if due is not None:
        fields["ActivityDate"] = due.astimezone(UTC).date().isoformat()
    answer = connector._call(
        lambda: connector.auth.client.restful("sobjects/Task", method="POST", json=fields),
        idempotent=False,
    )
    return str(answer["id"])


def create_tasks(
    connector: SalesforceConnector, obj: str, tasks: Sequence[NewTask]
) -> list[str | None]:
    """Many tasks at once through sObject Collections (1,000 per Composite call).

    Why Collections rather than ``create_task`` in a loop: a cycle's reminders then cost
    ``ceil(tasks / 1,000)`` API calls, and ``allOrNone=false`` lets Salesforce refuse one task
    (``None`` at its place; ids are in input order) without failing the others.
    """
    from crm_bridge.connector import Upsert

    from .connector import _WriteApi
    from .writing import BatchWriter

    link = "WhoId" if obj in ("Person", "Lead", "Contact") else "WhatId"
    ops = []
    for n, task in enumerate(tasks):
        fields: dict[str, Any] = {
            link: task["record_id"],
            "Subject": task["subject"][:255],
            "Description": task.get("body") or "",
            "Status": "Not Started",
            "Priority": "High",
        }
        if task["owner_id"]:
            fields["OwnerId"] = task["owner_id"]
        due = task.get("due")
        if due is not None:
            fields["ActivityDate"] = due.astimezone(UTC).date().isoformat()
        ops.append(Upsert(key=str(n), fields=fields))
    if not ops:
        return []
    writer = BatchWriter(
        _WriteApi(connector),
        api_version=connector.settings.api_version,
        policy=connector.policy,
        bulk_threshold=0,  # a bulk job for reminders would only add latency
        poll_seconds=connector.settings.bulk_poll_seconds,
        bulk_timeout=connector.settings.bulk_timeout_seconds,
    )
    out: list[str | None] = []
    size = COLLECTION_SIZE * COLLECTIONS_PER_COMPOSITE
    for start in range(0, len(ops), size):
        results = writer.write("Task", ops[start : start + size], connector.describe_object("Task"))
        out.extend(r.id if r.ok else None for r in results)
    return out
