"""Engagements (calls, e-mails, meetings) read for SLA first touch; tasks for SLA reminders.

Why associations first, then a batch read: HubSpot search cannot filter engagements by the
record they are attached to, but the associations v4 batch read answers "which calls are on these
contacts" for 1,000 records per call.  So touches on *n* contacts cost, per engagement type,
``ceil(n / 1,000)`` association reads plus ``ceil(engagements / 100)`` batch reads -- and nothing
at all for contacts without engagements.

``hs_createdate`` (when the touch was *logged*) is the touch time, matching Salesforce's
``CreatedDate``; ``hs_timestamp`` can be back- or forward-dated by the rep.

Tasks go out through ``batch/create``, 100 per call (``Connector.create_tasks``), so a cycle's
reminders cost ``ceil(reminders / 100)`` calls rather than one each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from more_itertools import chunked

from crm_bridge.connector import Activity, NewTask
from crm_bridge.connectors.hubspot.client import require_dict
from crm_bridge.connectors.hubspot.reading import parse_time

if TYPE_CHECKING:
    from crm_bridge.connectors.hubspot.connector import HubSpotConnector

__all__ = ["ENGAGEMENT_KINDS", "activities", "create_task", "create_tasks"]

ENGAGEMENT_KINDS: dict[str, Literal["call", "email", "meeting"]] = {
    "calls": "call",
    "emails": "email",
    "meetings": "meeting",
}
_SUBJECT = {"calls": "hs_call_title", "emails": "hs_email_subject", "meetings": "hs_meeting_title"}
ASSOCIATION_READ_MAX = 1_000
BATCH_READ_MAX = 100
# HUBSPOT_DEFINED task -> record association type ids (associations v4 guide).
_TASK_TO = {"contacts": 204, "companies": 192, "deals": 216}


def activities(
    connector: HubSpotConnector, obj: str, record_ids: Sequence[str], since: datetime | None
) -> Iterator[Activity]:
    """Calls, e-mails and meetings associated with ``record_ids``, logged at/after ``since``."""
    client = connector.client
    wanted = list(dict.fromkeys(str(i) for i in record_ids))
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    for etype, kind in ENGAGEMENT_KINDS.items():
        on: dict[str, list[str]] = {}  # engagement id -> record ids
        for chunk in chunked(wanted, ASSOCIATION_READ_MAX):
            body = {"inputs": [{"id": i} for i in chunk]}
            page = require_dict(
                client.send(
                    "associations",
                    "crm.associations.v4.batch_api",
                    "get_page",
                    obj,
                    etype,
                    body,
                    idempotent=True,
                ),
                "associations batch read",
            )
            for result in page.get("results") or []:
                record = str((result.get("from") or {}).get("id"))
                for link in result.get("to") or []:
                    on.setdefault(str(link.get("toObjectId")), []).append(record)
        if not on:
            continue
        props = ["hs_createdate", "hs_timestamp", "hubspot_owner_id", _SUBJECT[etype]]
        for chunk in chunked(sorted(on, key=_numeric), BATCH_READ_MAX):
            body2: dict[str, Any] = {"inputs": [{"id": i} for i in chunk], "properties": props}
            answer = require_dict(
                client.send(
                    "batch", "crm.objects.batch_api", "read", etype, body2, idempotent=True
                ),
                "engagement batch read",
            )
            for raw in answer.get("results") or []:
                values = raw.get("properties") or {}
                stamp = values.get("hs_createdate") or raw.get("createdAt")
                if not stamp:
                    continue
                occurred = parse_time(stamp)
                if since is not None and occurred < since:
                    continue
                owner = values.get("hubspot_owner_id")
                for record in on.get(str(raw.get("id")), []):
                    yield Activity(
                        id=str(raw.get("id")),
                        record_id=record,
                        kind=kind,
                        occurred_at=occurred,
                        owner_id=str(owner) if owner else None,
                        subject=str(values.get(_SUBJECT[etype]) or ""),
                    )


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (0, value)


def _task_input(connector: HubSpotConnector, obj: str, task: NewTask) -> dict[str, Any]:
    when = task.get("due") or connector.client.clock.now()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    properties: dict[str, Any] = {
        "hs_task_subject": task["subject"],
        "hs_task_body": task.get("body") or "",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
        "hs_timestamp": stamp,
    }
    if task["owner_id"]:
        properties["hubspot_owner_id"] = task["owner_id"]
    payload: dict[str, Any] = {"properties": properties}
    type_id = _TASK_TO.get(obj)
    if type_id is not None:
        payload["associations"] = [
            {
                "to": {"id": task["record_id"]},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
        ]
    return payload


def create_task(
    connector: HubSpotConnector,
    obj: str,
    record_id: str,
    *,
    owner_id: str | None,
    subject: str,
    body: str = "",
    due: datetime | None = None,
) -> str:
    """Create a task associated with the record (one call); returns the task id."""
    payload = _task_input(
        connector,
        obj,
        {
            "record_id": record_id,
            "owner_id": owner_id,
            "subject": subject,
            "body": body,
            "due": due,
        },
    )
    answer = require_dict(
        connector.client.send(
            "objects", "crm.objects.basic_api", "create", "tasks", payload, idempotent=False
        ),
        "task create",
    )
    return str(answer["id"])


def create_tasks(
    connector: HubSpotConnector, obj: str, tasks: Sequence[NewTask]
) -> list[str | None]:
    """Many tasks through ``batch/create`` (100 per call); ids in input order, None if refused.

    Why the bookkeeping: every input carries a unique ``objectWriteTraceId``, which makes HubSpot
    validate inputs one by one and name the refused ones in a 207 instead of refusing the whole
    batch for one bad owner id; and HubSpot does not promise result order, so each result is paired
    with the input whose written properties it echoes.  The answer carries no associations, so
    two tasks identical but for their record could swap ids; the SLA engine's bodies name the lead.
    A refusal of the whole batch still raises; the SLA engine then leaves those reminders due.
    """
    out: list[str | None] = []
    for start in range(0, len(tasks), BATCH_READ_MAX):
        chunk = tasks[start : start + BATCH_READ_MAX]
        inputs = [
            {**_task_input(connector, obj, task), "objectWriteTraceId": str(n)}
            for n, task in enumerate(chunk)
        ]
        answer = require_dict(
            connector.client.send(
                "batch",
                "crm.objects.batch_api",
                "create",
                "tasks",
                {"inputs": inputs},
                idempotent=False,
            ),
            "task batch create",
        )
        out.extend(_ids_in_input_order(inputs, answer))
    return out


def _ids_in_input_order(
    inputs: Sequence[Mapping[str, Any]], answer: Mapping[str, Any]
) -> list[str | None]:
    refused = {
        str(trace)
        for error in answer.get("errors") or []
        if isinstance(error, Mapping)
        for trace in (error.get("context") or {}).get("objectWriteTraceId") or []
    }
    free = [n for n, item in enumerate(inputs) if item["objectWriteTraceId"] not in refused]
    ids: list[str | None] = [None] * len(inputs)
    for raw in answer.get("results") or []:
        if not free or not isinstance(raw, Mapping) or not raw.get("id"):
            continue
        echoed = raw.get("properties") or {}

        def echoes(n: int, echoed: Mapping[str, Any] = echoed) -> int:
            sent: Mapping[str, Any] = inputs[n]["properties"]
            return sum(1 for k, v in sent.items() if str(echoed.get(k) or "") == str(v))

        best = max(free, key=echoes)  # ties keep input order
        free.remove(best)
        ids[best] = str(raw["id"])
    return ids
