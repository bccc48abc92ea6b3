"""An opportunity's contact roles, served as one field of the opportunity: its contacts' ids.

Why a field and not an object of its own: HubSpot keeps the same fact as deal-contact
*associations*, which have no record, no id and no change stream -- a deal simply has contacts.
What both sides can compare is the **set** of people on a deal, so the connector serves it as
``OpportunityContactRoles.ContactId`` (spelled like the SOQL child relationship it comes from):
a sorted list of Contact ids, which the engine syncs as a field of kind ``references``.  A role's
``Role`` and ``IsPrimary`` stay Salesforce's own (HubSpot's unlabeled association has neither).

Reads: the roles of a chunk of opportunities cost one query per 200 ids, five queries per
Composite call.  A role added or removed does not touch its Opportunity's ``SystemModstamp``, so
the opportunity change stream is merged with the role object's own (``queryAll``: removed roles
are deleted rows): each changed role brings its opportunity, read by id, at the role's stamp.

Writes: the wanted set is compared with the opportunity's current roles; missing contacts get a
new role (``Role`` blank, as a rep adding a contact does), extra roles are deleted.  Nothing is
sent when the sets already agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from more_itertools import chunked

from crm_bridge.connector import (
    ALREADY_GONE_CODES,
    Delete,
    Record,
    Upsert,
    VersionCache,
    WriteOp,
    WriteResult,
)

from .reading import parse_sf_datetime, quote

__all__ = [
    "OPPORTUNITY",
    "ROLES_FIELD",
    "ROLE_OBJECT",
    "RoleCache",
    "RoleQueries",
    "Roles",
    "attach_roles",
    "collect_roles",
    "failed_opportunities",
    "first_sightings",
    "role_ops",
    "roles_by_opportunity",
    "roles_soql",
    "touched_opportunities",
    "with_roles",
]

OPPORTUNITY = "Opportunity"
ROLE_OBJECT = "OpportunityContactRole"
ROLES_FIELD = "OpportunityContactRoles.ContactId"
ROLE_FIELDS = ("Id", "OpportunityId", "ContactId", "IsDeleted", "SystemModstamp")
CHUNK = 1000
"""Opportunities whose roles are read together: five 200-id queries, one Composite call."""

RoleQueries = Callable[[Sequence[str]], Iterable[Mapping[str, Any]]]
"""``soql statements -> rows``: runs role queries through ``queryAll`` (batched by the caller)."""


def roles_soql(opportunity_ids: Sequence[str]) -> str:
    """Every role of some opportunities, removed ones included (run through ``queryAll``)."""
    ids = ", ".join(map(quote, opportunity_ids))
    return f"SELECT {', '.join(ROLE_FIELDS)} FROM {ROLE_OBJECT} WHERE OpportunityId IN ({ids})"


@dataclass
class Roles:
    """One opportunity's roles as read: the live ones, and the newest stamp of any role."""

    live: list[Mapping[str, Any]] = field(default_factory=list)
    newest: str | None = None

    @property
    def contacts(self) -> list[str]:
        """The sorted ids of the contacts holding a live role."""
        return sorted({str(row["ContactId"]) for row in self.live})


def roles_by_opportunity(opportunity_ids: Sequence[str], run: RoleQueries) -> dict[str, Roles]:
    """The roles of each asked opportunity (every id present, empty when it has none)."""
    statements = [roles_soql(chunk) for chunk in chunked(opportunity_ids, 200)]
    return collect_roles(opportunity_ids, run(statements) if statements else ())


def collect_roles(
    opportunity_ids: Iterable[str], rows: Iterable[Mapping[str, Any]]
) -> dict[str, Roles]:
    """Role rows (from :func:`roles_soql`) gathered per asked opportunity."""
    out: dict[str, Roles] = {i: Roles() for i in opportunity_ids}
    for row in rows:
        roles = out.get(str(row.get("OpportunityId")))
        if roles is None:
            continue
        stamp = row.get("SystemModstamp")
        if stamp and (roles.newest is None or _later(str(stamp), roles.newest)):
            roles.newest = str(stamp)
        if row.get("ContactId") and not row.get("IsDeleted"):
            roles.live.append(row)
    return out


def with_roles(record: Record, roles: Roles) -> Record:
    """``record`` carrying its contacts, versioned by the newest of its stamp and its roles'."""
    version = record.version
    if roles.newest is not None and _later(roles.newest, record.version):
        version = roles.newest
    return replace(record, version=version, fields={**record.fields, ROLES_FIELD: roles.contacts})


def _later(a: str, b: str) -> bool:
    return parse_sf_datetime(a) > parse_sf_datetime(b)


RoleCache = VersionCache[Roles]
"""The roles last read per opportunity, keyed by the opportunity's own stamp.

Why it is safe although a role change does not move that stamp: a role change is a row of its
own with a stamp after the read that cached the roles; until the engine's cursor passes that
row it is in the role stream of every read, which marks its opportunity *touched* and reads its
roles afresh (updating the cache).  So an untouched opportunity with the same stamp has the
roles cached -- and an idle cycle's re-read of the records at its cursor's instant costs no
roles query."""


class TouchedReads:
    """The last by-id read of the opportunities a complete role page named, for idle cycles.

    Why: while a role change is the newest change at the Opportunity cursor, every idle cycle's
    role page names it again, and reading its opportunity by id each time cost one call a cycle
    above the minimum.  The read is reused only when it cannot be stale: the same role rows
    (id and stamp -- any later role change is a new row or a new stamp), and a complete first
    opportunity page showing none of those opportunities at another stamp than the one read (an
    opportunity changed since has a stamp after the read, so it is in that page).
    """

    def __init__(self) -> None:
        self._key: frozenset[tuple[str, str]] | None = None
        self._read: dict[str, tuple[Record, Roles]] = {}

    def get(
        self, role_rows: Iterable[Mapping[str, Any]], opportunity_page: Mapping[str, Any] | None
    ) -> dict[str, tuple[Record, Roles]] | None:
        """The reusable read for this role page, or ``None`` (read them again)."""
        if self._key is None or _rows_key(role_rows) != self._key:
            return None
        if not isinstance(opportunity_page, Mapping) or not opportunity_page.get("done", False):
            return None
        stamps = {
            str(row.get("Id")): str(row.get("SystemModstamp"))
            for row in opportunity_page.get("records") or []
        }
        for opp_id, (record, _) in self._read.items():
            stamp = stamps.get(opp_id)
            if stamp is not None and parse_sf_datetime(stamp) != record.modified_at:
                return None
        return dict(self._read)

    def put(
        self, role_rows: Iterable[Mapping[str, Any]], read: Mapping[str, tuple[Record, Roles]]
    ) -> None:
        """Remember ``read`` as what the opportunities of these role rows were read as."""
        self._key = _rows_key(role_rows)
        self._read = dict(read)


def _rows_key(rows: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    return frozenset((str(r.get("Id")), str(r.get("SystemModstamp"))) for r in rows)


def attach_roles(
    records: Iterable[Record],
    run: RoleQueries,
    cache: RoleCache | None = None,
    untouched: Callable[[str], bool] = lambda _: False,
    known: Mapping[str, Roles] | None = None,
) -> Iterator[Record]:
    """``records`` with their contact ids in :data:`ROLES_FIELD`, in the order they came.

    Read a chunk at a time, so a stream stays a stream; deleted opportunities get no field.  A
    record's version becomes the newest of its own stamp and its roles' (removed ones too): the
    engine skips a version it has applied, and a role change must not look like one.  Roles come
    from ``cache`` for records that ``untouched`` says no role change of this read names, and
    from ``known`` for those already read with their roles in this read.
    """
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            yield from _with_roles(chunk, run, cache, untouched, known or {})
            chunk = []
    if chunk:
        yield from _with_roles(chunk, run, cache, untouched, known or {})


def _with_roles(
    chunk: list[Record],
    run: RoleQueries,
    cache: RoleCache | None,
    untouched: Callable[[str], bool],
    read: Mapping[str, Roles],
) -> Iterator[Record]:
    known: dict[str, Roles] = {r.id: read[r.id] for r in chunk if r.id in read}
    if cache is not None:
        for r in chunk:
            if (
                r.id not in known
                and not r.deleted
                and untouched(r.id)
                and (hit := cache.get(r)) is not None
            ):
                known[r.id] = hit
    attached = {r.id for r in chunk if ROLES_FIELD in r.fields}  # read with their roles
    wanted = list(
        dict.fromkeys(
            r.id for r in chunk if not r.deleted and r.id not in known and r.id not in attached
        )
    )
    found = {**known, **(roles_by_opportunity(wanted, run) if wanted else {})}
    for record in chunk:
        roles = found.get(record.id)
        if record.deleted or roles is None:
            yield record
            continue
        if cache is not None and record.id not in known:
            cache.put(record, roles)
        yield with_roles(record, roles)


def touched_opportunities(
    role_changes: Iterable[Record],
    fetch: Callable[[Sequence[str]], Iterable[Record]],
) -> Iterator[Record]:
    """Opportunities whose roles changed, at the role's stamp, oldest first.

    One whose own stamp is as new as the role's is left out: the opportunity stream carries it
    (its stamp is at or after the same ``since``).  ``fetch`` reads a chunk's opportunities by
    id with their roles attached (one Composite call carries both queries).
    """
    chunk: list[Record] = []
    for role in role_changes:
        chunk.append(role)
        if len(chunk) >= CHUNK:
            yield from _touched(chunk, fetch)
            chunk = []
    if chunk:
        yield from _touched(chunk, fetch)


def _touched(
    roles: list[Record], fetch: Callable[[Sequence[str]], Iterable[Record]]
) -> Iterator[Record]:
    latest: dict[str, Record] = {}
    for role in roles:
        opp = role.fields.get("OpportunityId")
        if opp:
            latest[str(opp)] = role  # rows come oldest first: the last one is the newest
    if not latest:
        return
    opportunities = {r.id: r for r in fetch(list(latest))}
    out = [
        replace(opp, modified_at=role.modified_at)  # its version already covers its roles
        for opp_id, role in latest.items()
        if (opp := opportunities.get(opp_id)) is not None and opp.modified_at < role.modified_at
    ]
    out.sort(key=lambda r: (r.modified_at, r.id))
    yield from out


def first_sightings(records: Iterable[Record]) -> Iterator[Record]:
    """Each opportunity once, at its first sighting.

    An opportunity changed *and* given a role later comes from both streams; its roles (and their
    newest stamp, its version) are read when it is yielded, so the first sighting carries both.
    """
    seen: set[str] = set()
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            yield record


def role_ops(
    wanted: Mapping[str, Sequence[str]], current: Mapping[str, Roles]
) -> tuple[list[WriteOp], dict[str, str]]:
    """Role creates and deletes that make each opportunity's contacts the wanted set.

    Returns the ops and, per op key, the opportunity it serves (so a refused role fails the
    opportunity's write, which the engine dead-letters and replays).
    """
    ops: list[WriteOp] = []
    owner: dict[str, str] = {}
    for opp, contacts in wanted.items():
        rows = current[opp].live if opp in current else []
        have = {str(row["ContactId"]) for row in rows}
        want = set(contacts)
        for contact in sorted(want - have):
            key = f"role:{opp}:{contact}"
            ops.append(Upsert(key=key, fields={"OpportunityId": opp, "ContactId": contact}))
            owner[key] = opp
        for row in rows:
            if str(row["ContactId"]) not in want:
                key = f"unrole:{row['Id']}"
                ops.append(Delete(key=key, id=str(row["Id"])))
                owner[key] = opp
    return ops, owner


def failed_opportunities(
    results: Sequence[WriteResult], owner: Mapping[str, str]
) -> dict[str, WriteResult]:
    """The first refused role write of each opportunity (an already-deleted role is done)."""
    out: dict[str, WriteResult] = {}
    for result in results:
        if not result.ok and result.error_code not in ALREADY_GONE_CODES:
            out.setdefault(owner[result.key], result)
    return out
