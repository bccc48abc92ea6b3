"""Funnel events from what the systems themselves hold, for history crm-bridge never saw.

* marketing contacts: the date each lifecycle stage was entered (``lifecycle_date_fields``, e.g.
  HubSpot's ``hs_v2_date_entered_{stage}`` or older ``hs_lifecyclestage_{stage}_date``), with the
  contact's original source, campaign, owner and engagement count;
* CRM leads: the status (SAL / SQL / rejected / disqualified / recycled per the pair's
  :class:`~crm_bridge.funnel.settings.FunnelSettings`) and the conversion date;
* CRM opportunities: created (pipeline, with amount) and closed won / lost at the close date,
  tied to a person through the lead that converted into them or their contact roles.

Why a lead status is dated with the lead's last modification: Salesforce keeps no date per status
without field history; the last change is the latest the status can have been set, so velocity
from it is an upper bound (docs/funnel.md says so).  Events carry ``origin="backfill"``; their
keys name the record and stage, so a second backfill adds only what is new.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from crm_bridge.connector import Capability, Connector, Record
from crm_bridge.funnel.events import PersonEvent
from crm_bridge.funnel.people import PersonDirectory
from crm_bridge.funnel.settings import FunnelSettings

__all__ = ["backfill_events", "moment"]


def moment(value: Any) -> datetime | None:
    """A vendor date (``2026-03-01``, ISO datetime, epoch milliseconds) as aware UTC, or None."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _text(fields: Mapping[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = fields.get(name)
    return str(value).strip() or None if value is not None else None


def _count(value: Any) -> int | None:
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def _live(connector: Connector[Any], obj: str) -> Iterator[Record]:
    for record in connector.changes(obj, None):
        if not record.deleted and not record.merged_into:
            yield record


def contact_events(
    s: FunnelSettings, records: Iterator[Record], system: str, people: PersonDirectory, pair: str
) -> Iterator[PersonEvent]:
    """Lifecycle stage entry dates of marketing contacts."""
    for record in records:
        f = record.fields
        person = people.person(system, record.id, _text(f, s.map_email_field))
        engagement = _count(f.get(s.engagement_field)) if s.engagement_field else None
        for lifecycle, stage in s.lifecycle_stages.items():
            at = next(
                (
                    found
                    for template in s.lifecycle_date_fields
                    if (found := moment(f.get(template.format(stage=lifecycle)))) is not None
                ),
                None,
            )
            if at is None:
                continue
            yield PersonEvent(
                key=f"backfill:{system}:{record.id}:{stage}",
                person=person,
                stage=stage,
                at=at,
                origin="backfill",
                pair=pair,
                system=system,
                record_id=record.id,
                source=_text(f, s.map_source_field),
                campaign=_text(f, s.map_campaign_field),
                owner=_text(f, s.map_owner_field),
                engagement=engagement,
            )


def lead_events(
    s: FunnelSettings, records: Iterator[Record], system: str, people: PersonDirectory, pair: str
) -> Iterator[PersonEvent]:
    """Lead statuses and conversions of CRM leads."""
    by_status = {
        **dict.fromkeys(s.mql_statuses, "mql"),
        **dict.fromkeys(s.sal_statuses, "sal"),
        **dict.fromkeys(s.sql_statuses, "sql"),
        **dict.fromkeys(s.rejected_statuses, "rejected"),
        **dict.fromkeys(s.disqualified_statuses, "disqualified"),
        **dict.fromkeys(s.recycled_statuses, "recycled"),
    }
    for record in records:
        f = record.fields
        person = people.person(system, record.id, _text(f, s.email_field))
        common: dict[str, Any] = {
            "person": person,
            "origin": "backfill",
            "pair": pair,
            "system": system,
            "record_id": record.id,
            "source": _text(f, s.source_field),
            "campaign": _text(f, s.campaign_field),
            "owner": _text(f, s.owner_field),
        }
        converted = moment(f.get(s.converted_date_field)) if s.converted_date_field else None
        deal = _text(f, s.converted_opportunity_field)
        if converted is not None:
            if deal:
                people.remember_deal(deal, person)
            yield PersonEvent(
                key=f"backfill:{system}:{record.id}:converted",
                stage="sql",
                at=converted,
                deal_id=deal,
                **common,
            )
        stage = by_status.get(str(f.get(s.lead_status_field)))
        created = moment(f.get(s.created_field))
        if s.lead_created_is_mql and created is not None and (stage or converted):
            yield PersonEvent(
                key=f"backfill:{system}:{record.id}:created", stage="mql", at=created, **common
            )
        if stage is not None and not (stage == "sql" and converted is not None):
            yield PersonEvent(
                key=f"backfill:{system}:{record.id}:{stage}",
                stage=stage,
                at=record.modified_at,
                **common,
            )


def _deal_people(
    s: FunnelSettings, crm: Connector[Any], deals: list[Record], people: PersonDirectory
) -> None:
    """Deals no conversion named get the person of their first contact role."""
    unknown = [d.id for d in deals if people.of_deal(d.id) is None]
    if not unknown:
        return
    roles = crm.related(s.opportunity_object, unknown, s.contact_object)
    contact_ids = sorted({ids[0] for ids in roles.values() if ids})
    contacts = {r.id: r for r in crm.fetch(s.contact_object, contact_ids)}
    for deal_id, ids in roles.items():
        contact = contacts.get(ids[0]) if ids else None
        if contact is not None:
            email = _text(contact.fields, s.email_field)
            people.remember_deal(deal_id, people.person(crm.name, contact.id, email))


def deal_events(
    s: FunnelSettings, deals: list[Record], system: str, people: PersonDirectory, pair: str
) -> Iterator[PersonEvent]:
    """Opportunities: created (with amount), then won or lost at the close date."""
    won, lost = set(s.won_stages), set(s.lost_stages)
    for record in deals:
        f = record.fields
        person = people.of_deal(record.id) or f"deal:{system}:{record.id}"
        amount_raw = f.get(s.amount_field) if s.amount_field else None
        try:
            amount = float(amount_raw) if amount_raw not in (None, "") else None
        except (TypeError, ValueError):
            amount = None
        common: dict[str, Any] = {
            "person": person,
            "origin": "backfill",
            "pair": pair,
            "system": system,
            "record_id": record.id,
            "deal_id": record.id,
            "source": _text(f, s.source_field),
            "owner": _text(f, s.owner_field),
            "amount": amount,
        }
        created = moment(f.get(s.created_field)) or record.modified_at
        yield PersonEvent(
            key=f"backfill:{system}:{record.id}:opportunity",
            stage="opportunity",
            at=created,
            **common,
        )
        stage_name = str(f.get(s.stage_field))
        outcome = "won" if stage_name in won else "lost" if stage_name in lost else None
        if outcome is not None:
            closed = moment(f.get(s.close_date_field)) or record.modified_at
            yield PersonEvent(
                key=f"backfill:{system}:{record.id}:{outcome}",
                stage=outcome,
                at=max(closed, created),
                **common,
            )


def backfill_events(
    settings: FunnelSettings,
    *,
    pair: str,
    crm: Connector[Any],
    marketing: Connector[Any],
    people: PersonDirectory,
) -> list[PersonEvent]:
    """Read contacts, leads and opportunities in full; return the events they imply."""
    s = settings
    events = list(
        contact_events(s, _live(marketing, s.map_contact_object), marketing.name, people, pair)
    )
    events.extend(lead_events(s, _live(crm, s.lead_object), crm.name, people, pair))
    deals = list(_live(crm, s.opportunity_object))
    _deal_people(s, crm, deals, people)
    events.extend(deal_events(s, deals, crm.name, people, pair))
    names = _owner_names(crm, marketing)
    return [
        replace(e, owner=names.get((e.system or "", e.owner), e.owner)) if e.owner else e
        for e in events
    ]


def _owner_names(*connectors: Connector[Any]) -> dict[tuple[str, str], str]:
    """``(connector, owner id) -> name``: reports show reps, not ids."""
    names: dict[tuple[str, str], str] = {}
    for c in connectors:
        if Capability.OWNERS in c.capabilities:
            for owner in c.owners():
                names[(c.name, owner.id)] = owner.name or owner.email
    return names
