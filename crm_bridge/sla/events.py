"""SLA events from the connectors: assignments and status changes, first touches, MQL data.

Why events are *derived* from record changes: neither CRM offers a cheap, uniform field-history
feed, but both offer an incremental change stream (``Connector.changes``).  The engine keeps the
last known owner of every lead under an SLA (the open clock row), so a change whose owner differs
is an assignment and a change whose status enters an accepted/rejected value stops the accept
clock.  The event time is the change's ``modified_at``: exact when the engine polls more often
than reps edit, otherwise bounded by the poll interval (docs/sla.md, "Clock semantics").

Everything here only *reads*; decisions live in :mod:`crm_bridge.sla.engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_bridge.connector import Activity, Connector, Record
from crm_bridge.sla.policy import MqlCriteria, SlaSettings
from crm_bridge.store import StoreTx

__all__ = [
    "LeadEvent",
    "MarketingFacts",
    "lead_event",
    "marketing_facts",
    "mql_matches",
    "parse_instant",
    "touches",
]


def parse_instant(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO string, epoch milliseconds or a datetime; else None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000.0, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LeadEvent:
    """What one CRM change says about a lead's SLA: owner and status at ``at``."""

    lead_id: str
    at: datetime
    owner_id: str | None
    status: str | None
    reject_reason: str | None
    created_at: datetime | None
    source: str | None
    gone: bool
    fields: Mapping[str, Any]


def lead_event(record: Record, settings: SlaSettings) -> LeadEvent:
    """Read the SLA-relevant fields of one change (field names come from the config)."""
    crm = settings.crm
    f = record.fields
    owner = f.get(crm.owner_field)
    status = f.get(crm.status_field)
    reason = f.get(crm.reject_reason_field) if crm.reject_reason_field else None
    return LeadEvent(
        lead_id=record.id,
        at=record.modified_at,
        owner_id=str(owner) if owner not in (None, "") else None,
        status=str(status) if status not in (None, "") else None,
        reject_reason=str(reason) if reason not in (None, "") else None,
        created_at=parse_instant(f.get(crm.created_field)) if crm.created_field else None,
        source=_text(f.get(crm.source_field)) if crm.source_field else None,
        gone=record.deleted or record.merged_into is not None,
        fields=f,
    )


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, slots=True)
class MarketingFacts:
    """The linked marketing record of a lead: id, MQL fields and the MQL time."""

    record_id: str
    fields: Mapping[str, Any]
    mql_at: datetime | None
    source: str | None


def marketing_facts(
    tx: StoreTx,
    marketing: Connector[Any] | None,
    settings: SlaSettings,
    lead_ids: Iterable[str],
) -> dict[str, MarketingFacts]:
    """Linked marketing records of ``lead_ids``: one links query, batched fetches."""
    side = settings.marketing
    if marketing is None or side is None:
        return {}
    links = tx.links_by_ids(side.link_pair, side.link_object, "crm", lead_ids)
    by_marketing = {
        link.map_id: lead for lead, link in links.items() if link.active and link.map_id
    }
    if not by_marketing:
        return {}
    found: dict[str, MarketingFacts] = {}
    for record in marketing.fetch(side.object, list(by_marketing)):
        lead = by_marketing.get(record.id)
        if lead is None:
            continue
        f = record.fields
        found[lead] = MarketingFacts(
            record_id=record.id,
            fields=f,
            mql_at=parse_instant(f.get(side.mql_date_field)) if side.mql_date_field else None,
            source=_text(f.get(side.source_field)) if side.source_field else None,
        )
    return found


def mql_matches(
    criteria: MqlCriteria,
    settings: SlaSettings,
    crm_fields: Mapping[str, Any],
    facts: MarketingFacts | None,
) -> bool:
    """Whether a lead meets a policy's MQL criteria (every given criterion must hold)."""
    if criteria.on == "marketing":
        side = settings.marketing
        if side is None:
            return not (criteria.lifecycle_stages or criteria.sources or criteria.min_score)
        if facts is None:
            return False
        fields = facts.fields
        lifecycle, score, source = side.lifecycle_field, side.score_field, side.source_field
    else:
        fields = crm_fields
        lifecycle, score = criteria.lifecycle_field, criteria.score_field
        source = settings.crm.source_field
    if criteria.lifecycle_stages:
        value = str(fields.get(lifecycle) or "") if lifecycle else ""
        if value.lower() not in {s.lower() for s in criteria.lifecycle_stages}:
            return False
    if criteria.min_score is not None:
        try:
            number = float(fields.get(score) or "nan") if score else float("nan")
        except (TypeError, ValueError):
            return False
        if not number >= criteria.min_score:  # NaN never qualifies
            return False
    if criteria.sources:
        value = str(fields.get(source) or "") if source else ""
        if value.lower() not in {s.lower() for s in criteria.sources}:
            return False
    return True


def touches(
    crm: Connector[Any], obj: str, lead_ids: list[str], since: datetime | None
) -> Iterator[Activity]:
    """First-touch candidates for ``lead_ids`` (nothing to read, no call)."""
    if not lead_ids:
        return iter(())
    return crm.activities(obj, lead_ids, since)
