"""Associations served as fields: a deal's contacts as ``associations.contacts``.

Why a field: an association has no id, no properties and no change stream of its own -- it is a
fact about a deal.  Salesforce keeps the same fact as OpportunityContactRole rows, which its
connector serves as a field of the opportunity, so the engine can compare the *set* of people on
a deal on both sides (a field of kind ``references``).  The name mirrors the ``associations``
key of HubSpot's own object reads.

Reads cost one associations v4 batch read per 1,000 records (:meth:`related`).  Changes need no
stream of their own: associating a contact recalculates the deal's ``num_associated_contacts``,
which moves its ``hs_lastmodifieddate``, so the deal search already brings the deal.

Writes compare the wanted set with what the deal holds and send one ``associate/default`` batch
for the missing contacts and one ``archive`` batch for the extra ones; nothing when they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from crm_bridge.connector import Record, Upsert, VersionCache, WriteOp, WriteResult

__all__ = [
    "ASSOCIATION_FIELDS",
    "ASSOCIATION_WRITE_MAX",
    "AssociationCache",
    "association_changes",
    "attach_associations",
    "split_association_fields",
]

ASSOCIATION_FIELDS: Mapping[str, Mapping[str, str]] = {
    "deals": {"associations.contacts": "contacts"},
}
"""Per object: field name -> the object type whose associated ids it holds."""
ASSOCIATION_WRITE_MAX = 100
"""Inputs per associations v4 batch ``associate/default`` / ``archive`` call."""
CHUNK = 1000

Related = Callable[[str, Sequence[str], str], Mapping[str, list[str]]]
"""``(object, ids, to_object) -> {id: [associated ids]}`` (the connector's ``related``)."""


AssociationCache = VersionCache[dict[str, list[str]]]
"""The association fields last read per record, keyed by the record's version.

Safe because an association change moves the record's ``hs_lastmodifieddate`` (and so its
version): a record read again at the same version has the same associations -- the idle
cycle's re-read of the records at its cursor's instant costs no associations call."""


def attach_associations(
    obj: str, records: Iterable[Record], related: Related, cache: AssociationCache | None = None
) -> Iterator[Record]:
    """``records`` with their associated ids in each association field, in the order they came."""
    fields = ASSOCIATION_FIELDS.get(obj)
    if not fields:
        yield from records
        return
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            yield from _attach(obj, chunk, fields, related, cache)
            chunk = []
    if chunk:
        yield from _attach(obj, chunk, fields, related, cache)


def _attach(
    obj: str,
    chunk: list[Record],
    fields: Mapping[str, str],
    related: Related,
    cache: AssociationCache | None,
) -> Iterator[Record]:
    known = {
        r.id: hit
        for r in chunk
        if not r.deleted and cache is not None and (hit := cache.get(r)) is not None
    }
    live = list(dict.fromkeys(r.id for r in chunk if not r.deleted and r.id not in known))
    found = {name: related(obj, live, to_obj) if live else {} for name, to_obj in fields.items()}
    for record in chunk:
        if record.deleted:
            yield record
            continue
        extra = known.get(record.id)
        if extra is None:
            extra = {name: sorted(set(found[name].get(record.id, []))) for name in fields}
            if cache is not None:
                cache.put(record, extra)
        yield replace(record, fields={**record.fields, **extra})


def split_association_fields(
    obj: str, ops: Sequence[WriteOp]
) -> tuple[list[WriteOp], dict[int, dict[str, list[str]]]]:
    """The ops without association fields, and per op index the association sets it wants."""
    fields = ASSOCIATION_FIELDS.get(obj, {})
    plain: list[WriteOp] = []
    wanted: dict[int, dict[str, list[str]]] = {}
    for i, op in enumerate(ops):
        if isinstance(op, Upsert) and any(name in op.fields for name in fields):
            wanted[i] = {
                name: [str(v) for v in op.fields[name] or []]
                for name in fields
                if name in op.fields
            }
            op = replace(op, fields={k: v for k, v in op.fields.items() if k not in fields})
        plain.append(op)
    return plain, wanted


def association_changes(
    current: Mapping[str, Sequence[str]], wanted: Mapping[str, Sequence[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs for ``associate/default`` (missing pairs) and ``archive`` (extra pairs)."""
    create: list[dict[str, Any]] = []
    archive: list[dict[str, Any]] = []
    for record_id, ids in wanted.items():
        have, want = set(current.get(record_id, ())), set(ids)
        create.extend(
            {"from": {"id": record_id}, "to": {"id": other}} for other in sorted(want - have)
        )
        extra = sorted(have - want)
        if extra:
            archive.append({"from": {"id": record_id}, "to": [{"id": other} for other in extra]})
    return create, archive


def failed(results: list[WriteResult], indexes: Iterable[int], error: str, code: str) -> None:
    """Mark the writes at ``indexes`` refused (their associations could not be written)."""
    for i in indexes:
        results[i] = WriteResult.failure(results[i].key, error, code=code)
