"""Funnel events from what crm-bridge's engines already recorded in the store.

* the sync's audit log: ``sync.person.converted`` -> SQL (and the opportunity it created);
* the SLA clocks: MQL time, acceptance (SAL), rejection, recycling and disqualification;
* the reason outcomes: won / lost deals and rejected / disqualified leads, with their reason code,
  owner and segments.

Why derive rather than have each engine write events: the sync engine is owned elsewhere and
already writes an audit entry for every conversion; reading the engines' own records keeps one
source of truth and lets the log be rebuilt at any time (every event's ``key`` names the row it
came from, so deriving twice adds nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from crm_bridge.funnel.events import PersonEvent
from crm_bridge.funnel.people import PersonDirectory
from crm_bridge.reasons.repository import OutcomeRow, ReasonRepository
from crm_bridge.sla.repository import ClockRow, SlaRepository
from crm_bridge.store import AuditEntry, StoreTx

__all__ = [
    "PairSystems",
    "derive_events",
    "events_from_audit",
    "events_from_clocks",
    "events_from_outcomes",
]

PairSystems = Mapping[str, tuple[str, str, tuple[str, ...]]]
"""pair name -> (CRM connector, marketing connector, synced object names)."""

_OUTCOME_STAGE = {
    "won": "won",
    "lost": "lost",
    "lead_rejected": "rejected",
    "disqualified": "disqualified",
}
_CLOSED_STAGE = {"recycled": "recycled", "disqualified": "disqualified"}


def _when(text: object, fallback: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=fallback.tzinfo)


def events_from_audit(
    entries: list[AuditEntry], people: PersonDirectory, pairs: PairSystems
) -> Iterator[PersonEvent]:
    """A conversion is the lead becoming a sales-qualified contact, often with a new deal."""
    for entry in entries:
        if entry.kind != "sync.person.converted" or entry.pair is None or entry.pair not in pairs:
            continue
        crm = pairs[entry.pair][0]
        link = entry.data.get("link")
        person = (people.of_link(int(link)) if link is not None else None) or people.person(
            crm, entry.subject
        )
        at = _when(entry.data.get("at"), entry.at)
        deal = entry.data.get("opportunity")
        common: dict[str, Any] = {
            "origin": "sync",
            "pair": entry.pair,
            "system": crm,
            "record_id": entry.subject,
        }
        yield PersonEvent(key=f"audit:{entry.id}:sql", person=person, stage="sql", at=at, **common)
        if deal:
            people.remember_deal(str(deal), person)
            yield PersonEvent(
                key=f"audit:{entry.id}:opportunity",
                person=person,
                stage="opportunity",
                at=at,
                deal_id=str(deal),
                **common,
            )


def events_from_clocks(
    clocks: list[ClockRow], people: PersonDirectory, marketing: Mapping[str, str]
) -> Iterator[PersonEvent]:
    """Each SLA assignment says when the lead was an MQL, and whether sales accepted it."""
    for row in clocks:
        person = people.person(row.crm, row.lead_id)
        if person.startswith(f"{row.crm}:") and row.marketing_id and row.crm in marketing:
            person = people.person(marketing[row.crm], row.marketing_id)
        base = f"sla:{row.crm}:{row.lead_id}:{row.seq}"
        common: dict[str, Any] = {
            "person": person,
            "origin": "sla",
            "system": row.crm,
            "record_id": row.lead_id,
            "source": row.source,
            "owner": row.rep,
        }
        if row.mql_at is not None:
            yield PersonEvent(key=f"{base}:mql", stage="mql", at=row.mql_at, **common)
        if row.accepted_at is not None:
            yield PersonEvent(key=f"{base}:sal", stage="sal", at=row.accepted_at, **common)
        if row.rejected_at is not None:
            yield PersonEvent(
                key=f"{base}:rejected",
                stage="rejected",
                at=row.rejected_at,
                reason=row.reject_reason,
                **common,
            )
        stage = _CLOSED_STAGE.get(row.status)
        if stage is not None and row.closed_at is not None:
            yield PersonEvent(
                key=f"{base}:{stage}",
                stage=stage,
                at=row.closed_at,
                reason=row.close_reason,
                **common,
            )


def events_from_outcomes(
    outcomes: list[OutcomeRow], people: PersonDirectory
) -> Iterator[PersonEvent]:
    """Captured outcomes: the stage a person left the funnel at (or won), and why."""
    for row in outcomes:
        stage = _OUTCOME_STAGE[row.outcome]
        is_deal = row.outcome in ("won", "lost")
        if is_deal:
            person = people.of_deal(row.record_id) or f"deal:{row.source}:{row.record_id}"
        else:
            person = people.person(row.source, row.record_id)
        code = row.code if row.status in ("valid", "deprecated") else None
        yield PersonEvent(
            key=f"reasons:{row.source}:{row.object}:{row.record_id}:{row.outcome}",
            person=person,
            stage=stage,
            at=row.closed_at,
            origin="reasons",
            system=row.source,
            record_id=row.record_id,
            deal_id=row.record_id if is_deal else None,
            owner=row.owner_name or row.owner_id,
            reason=code,
            segments=dict(row.segments),
        )


def derive_events(tx: StoreTx, pairs: PairSystems, people: PersonDirectory) -> list[PersonEvent]:
    """Every event the store's engine records imply (read in the caller's transaction)."""
    for name, (crm, marketing, objects) in pairs.items():
        for obj in objects:
            people.add_links(tx.iter_links(name, obj, status=None), crm=crm, marketing=marketing)
    audit = tx.audit_entries(kind_prefix="sync.person.", limit=1_000_000)
    events = list(events_from_audit(audit, people, pairs))
    sla = SlaRepository(tx)
    marketing_of = {crm: marketing for crm, marketing, _ in pairs.values()}
    for crm in dict.fromkeys(c for c, _, _ in pairs.values()):
        events.extend(events_from_clocks(list(sla.all_clocks(crm)), people, marketing_of))
    events.extend(events_from_outcomes(ReasonRepository(tx).all_outcomes(), people))
    return events
