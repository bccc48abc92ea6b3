"""Salesforce's person: Leads and Contacts served as one object, lead conversion as a merge.

Why one object: marketing keeps one record per person, while Salesforce keeps that person as a
Lead until a rep converts it and as a Contact from then on.  A sync that follows Leads only
loses everyone marketing cares about the day they become customers (every write to the
converted Lead fails with ``CANNOT_UPDATE_CONVERTED_LEAD``, the new Contact is never linked).
So the connector serves ``Person`` (Leads and Contacts), and reports a converted Lead the way the
engine already understands: as a merge loser (``deleted``, ``merged_into`` its
``ConvertedContactId``).  The engine then re-keys the link onto the Contact -- keeping the
marketing record, baselines and history -- or, when the Contact was linked already, closes the
Lead's link into that one, exactly as for a merge.

The two change streams are read separately (``queryAll`` on each, ordered by
``SystemModstamp, Id``) and merged on that same key, so the engine's keyset cursor holds.  Ids
tell the kinds apart by their key prefix (``00Q`` Lead, ``003`` Contact), so writes and reads
by id go to the right sObject; a field one kind lacks (``Company``, ``Status`` on a Contact) is
reported in ``Record.absent`` and dropped from writes to that kind.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from crm_bridge.connector import Conversion, Record

from .reading import ObjectDescription

__all__ = [
    "CONVERSION_FIELDS",
    "KINDS",
    "PERSON",
    "PersonKind",
    "as_person",
    "kind_of",
    "merged_stream",
    "union_description",
]

PERSON = "Person"
PersonKind = Literal["Lead", "Contact"]
KINDS: tuple[PersonKind, ...] = ("Lead", "Contact")
CONVERSION_FIELDS = (
    "IsConverted",
    "ConvertedContactId",
    "ConvertedAccountId",
    "ConvertedOpportunityId",
    "ConvertedDate",
)
"""Read on every Lead row: they tell a converted lead from a live one."""
_PREFIXES: Mapping[str, PersonKind] = {"00Q": "Lead", "003": "Contact"}


def kind_of(record_id: str) -> PersonKind | None:
    """``Lead`` or ``Contact`` by the id's key prefix; ``None`` for anything else."""
    return _PREFIXES.get(record_id[:3])


def as_person(record: Record, absent: frozenset[str]) -> Record:
    """A Lead or Contact row as a ``Person`` record; a converted Lead as a merge loser."""
    merged_into, deleted, conversion = record.merged_into, record.deleted, None
    fields = record.fields
    converted_to = fields.get("ConvertedContactId")
    if fields.get("IsConverted") and converted_to:
        merged_into, deleted = str(converted_to), True
        conversion = Conversion(
            at=_converted_at(fields.get("ConvertedDate"), record.modified_at),
            account_id=_text(fields.get("ConvertedAccountId")),
            opportunity_id=_text(fields.get("ConvertedOpportunityId")),
        )
    return replace(
        record,
        object=PERSON,
        deleted=deleted,
        merged_into=merged_into,
        absent=absent,
        conversion=conversion,
    )


def _converted_at(day: object, modified_at: datetime) -> datetime:
    """``ConvertedDate`` is a date: the conversion's own instant is the row's modstamp."""
    if isinstance(day, str) and day[:10] == modified_at.date().isoformat():
        return modified_at
    try:
        return datetime.fromisoformat(str(day)[:10]).replace(tzinfo=UTC)
    except ValueError:
        return modified_at


def _text(value: object) -> str | None:
    return str(value) if value else None


def merged_stream(*streams: Iterable[Record]) -> Iterator[Record]:
    """The kinds' change streams as one, in the ``(modified_at, id)`` order each one keeps."""
    return heapq.merge(*streams, key=lambda r: (r.modified_at, r.id))


def union_description(kinds: Mapping[PersonKind, ObjectDescription]) -> ObjectDescription:
    """``Person``'s fields: every field either kind has (a field's type from the Lead first)."""
    types: dict[str, str] = {}
    for description in kinds.values():
        for name, sf_type in description.field_types.items():
            types.setdefault(name, sf_type)
    return ObjectDescription(
        name=PERSON,
        field_types=types,
        external_ids=frozenset().union(*(d.external_ids for d in kinds.values())),
        createable=frozenset().union(*(d.createable for d in kinds.values())),
        updateable=frozenset().union(*(d.updateable for d in kinds.values())),
    )
