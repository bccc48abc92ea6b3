"""Content engagement as :class:`~crm_bridge.connector.Activity`: form fills, visits, clicks.

Why these and not e-mails: the SLA engine looks for *touches*; in Marketo the only activities
that say a person engaged are the marketing ones (a form fill, a web visit, a clicked link or
download).  They are read from ``activities.json`` for at most 30 leads and 10 types per call,
from a paging token of ``since``, until ``moreResult`` is false; their kind is ``"other"``
(Marketo logs no calls, meetings or sales e-mails), the subject names the type and its primary
attribute (the form, the page, the link).  Type ids are looked up by name in
``activities/types.json`` (configurable: ``activity_types``), never hard-coded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from crm_bridge.connector import Activity
from crm_bridge.connectors.marketo.reading import Reader, parse_marketo_datetime
from crm_bridge.errors import ConfigError, ConfigProblem

__all__ = ["MAX_LEAD_IDS", "MAX_TYPE_IDS", "activities"]

MAX_LEAD_IDS = 30
MAX_TYPE_IDS = 10


def activities(
    reader: Reader, record_ids: Sequence[str], since: datetime | None
) -> Iterator[Activity]:
    """Engagement of ``record_ids`` at or after ``since``, oldest first per group of 30 leads."""
    leads = [i for i in dict.fromkeys(record_ids) if str(i).isdigit()]
    if not leads:
        return
    known = reader.activity_types()
    names = reader.settings.activity_types
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            [
                ConfigProblem(
                    key="activity_types",
                    problem=f"Marketo has no activity type {unknown[0]!r}",
                    fix=f"use names from activities/types.json, e.g. {sorted(known)[:5]}",
                )
            ]
        )
    by_id = {known[n]: n for n in names}
    type_ids = [str(t) for t in by_id][:MAX_TYPE_IDS]
    token = reader.paging_token(since or reader.settings.initial_since)
    for start in range(0, len(leads), MAX_LEAD_IDS):
        chunk = leads[start : start + MAX_LEAD_IDS]
        params: dict[str, str | int | Sequence[str]] = {
            "activityTypeIds": type_ids,
            "leadIds": chunk,
        }
        for page in reader.feed("/rest/v1/activities.json", token, params):
            for item in page:
                type_name = by_id.get(int(item.get("activityTypeId") or 0), "Activity")
                primary = item.get("primaryAttributeValue")
                yield Activity(
                    id=str(item.get("marketoGUID") or item.get("id")),
                    record_id=str(item["leadId"]),
                    kind="other",
                    occurred_at=parse_marketo_datetime(str(item["activityDate"])),
                    subject=f"{type_name}: {primary}" if primary else type_name,
                )
