"""The pure planner: (changes from both sides, their links) -> typed actions.

No I/O happens here.  The runner reads the changes and links, hands them in, and gets back a
:class:`~crm_bridge.sync.actions.Plan`.  The steps, in order:

1. **Merges** re-key links (survivor unlinked) or close the loser's link into the survivor's.
2. **Deletes** of linked records follow the object's delete policy.
3. **Linked changes** are compared field by field with the values both sides last agreed on
   (``synced``).  No difference at all is an *echo* of our own write and costs nothing.  A field
   changed on one side flows to the other; a field changed on both is settled by its rule and the
   decision is logged.
4. **Unlinked records** are matched across sides by identity (e-mail) within the cycle; the rest
   are created on the other side as upserts by identity, so a re-run can never duplicate them.
   Two unlinked records with the same identity on one side are a duplicate: the newest is used,
   the others are dead-lettered with a reason naming the survivor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from crm_bridge.connector import Record
from crm_bridge.store import DecisionIn, PendingWrite, Side, SideState
from crm_bridge.sync.actions import (
    SIDES,
    Adopt,
    Converted,
    Create,
    FlagDeleted,
    Forget,
    LinkRefresh,
    MarkMerged,
    Pairing,
    Plan,
    Reject,
    Rekey,
    Remove,
    Tombstone,
    Update,
    other,
)
from crm_bridge.sync.mapping import FieldMap, ObjectMap
from crm_bridge.sync.owners import UNMAPPED_PREFIX, OwnerDirectory
from crm_bridge.sync.references import ReferenceDirectory
from crm_bridge.sync.rules import settle
from crm_bridge.sync.values import canonical

__all__ = ["LinkState", "PlanContext", "plan_object"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the planner needs of a stored link.

    ``synced`` holds, per side, the logical values that side was last known to hold (read back,
    or written by us).  A change on a side is a difference from *its own* baseline, so a default
    one vendor fills in (an owner, a status) is never mistaken for an edit, and a value one side
    cannot hold never loops.  ``*_state`` says how far that baseline is confirmed (see
    :data:`~crm_bridge.store.SideState`); ``*_pending`` is the write whose outcome is unknown.
    ``id`` is ``None`` for a pairing planned in this very cycle (not stored yet).
    ``rekeyed``: sides this plan moved onto a merge survivor (or a converted lead's contact).
    """

    id: int | None
    crm_id: str | None
    map_id: str | None
    crm_version: str | None
    map_version: str | None
    synced: Mapping[str, Mapping[str, Any]]
    active: bool = True
    crm_state: SideState = "synced"
    map_state: SideState = "synced"
    crm_pending: PendingWrite | None = None
    map_pending: PendingWrite | None = None
    identity: str | None = None
    rekeyed: frozenset[Side] = frozenset()

    def id_on(self, side: Side) -> str | None:
        """The record id on ``side``."""
        return self.crm_id if side == "crm" else self.map_id

    def version_on(self, side: Side) -> str | None:
        """The version token last seen on ``side`` (``None``: not known)."""
        return self.crm_version if side == "crm" else self.map_version

    def state_on(self, side: Side) -> SideState:
        """How far the baseline of ``side`` is confirmed."""
        return self.crm_state if side == "crm" else self.map_state

    def pending_sent(self, side: Side) -> bool:
        """Whether the pending write to ``side`` may have been sent (a deferred create was not)."""
        pending = self.pending_on(side)
        return pending is None or pending.sent

    def pending_on(self, side: Side) -> PendingWrite | None:
        """The write to ``side`` whose outcome is unknown, if any."""
        return self.crm_pending if side == "crm" else self.map_pending

    def baseline(self, side: Side) -> dict[str, Any]:
        """The logical values ``side`` was last known to hold (a copy)."""
        return dict(self.synced.get(side, {}))

    def news(self, record: Record | None, side: Side) -> bool:
        """Whether ``record`` says something the link does not know yet.

        A confirmed side with the same version is an overlap re-read (nothing to do); a side
        whose version is not known, or whose last write is unconfirmed, must be compared.
        """
        if record is None:
            return False
        return self.state_on(side) != "synced" or record.version != self.version_on(side)

    def with_side(self, side: Side, **changes: Any) -> LinkState:
        """A copy with ``id``/``version``/``state``/``pending`` of ``side`` replaced."""
        return replace(self, **{f"{side}_{k}": v for k, v in changes.items()})


@dataclass(frozen=True)
class PlanContext:
    """Everything besides the changes: the pair's map, owners, defaults and clock."""

    pair: str
    name: str
    objmap: ObjectMap
    owners: OwnerDirectory
    now: datetime
    skew: timedelta = timedelta(seconds=5)
    default_owner: Mapping[Side, str | None] | None = None
    linked_identities: Mapping[str, LinkState] | None = None
    """Active links by identity value, for the identities of this cycle's unlinked records."""
    pending: Sequence[LinkState] = ()
    """Links whose create was announced but never confirmed (a crash came in between)."""
    unpaired_deletes: Mapping[str, tuple[Side, str, datetime]] | None = None
    """By identity, for this cycle's unlinked identities: a record deleted before any cycle
    paired it (side, id, when the sync saw the delete)."""
    capped: Mapping[Side, bool] | None = None
    """Per side, whether this cycle's read stopped at the cap: creates into such a side wait
    (``Create.deferred``).  Unset for replays, which read by id and send what they plan."""
    complete: Mapping[Side, bool] | None = None
    """Per side, whether this cycle read every change (not capped): only then does a pending
    create that was not found count as lost and get sent again."""
    references: ReferenceDirectory = field(default_factory=ReferenceDirectory)
    """Id translation for reference fields (:mod:`crm_bridge.sync.references`)."""
    replay: bool = False
    """A dead-letter replay: the records were read by id on purpose, so a version already
    applied is compared anyway (a write that left set members out confirmed its source)."""
    match_fields: Mapping[Side, frozenset[str]] | None = None
    """Per side, the vendor fields its connector can upsert on (``ObjectSpec.identity_fields``);
    unset means any.  A create matches on the identity only where the target can."""


class _Unwritable(Exception):
    """A logical value that cannot be expressed on the target side (e.g. an unknown owner)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _latest(records: Iterable[Record]) -> dict[str, Record]:
    latest: dict[str, Record] = {}
    for record in records:
        seen = latest.get(record.id)
        if seen is None or (record.modified_at, record.version) >= (seen.modified_at, seen.version):
            latest[record.id] = record
    return latest


def identity_of(ctx: PlanContext, values: Mapping[str, Any]) -> str | None:
    """The identity value (already normalised) of a record's logical values."""
    name = ctx.objmap.identity
    value = values.get(name) if name else None
    return None if value is None else str(value)


def record_identity(ctx: PlanContext, side: Side, record: Record) -> str | None:
    """A record's identity value alone: the one field duplicate checks need, not all of them."""
    name = ctx.objmap.identity
    if name is None:
        return None
    return identity_of(ctx, _logical(ctx, side, record.fields, {name: ctx.objmap.fields[name]}))


def _field_name(fm: FieldMap, side: Side) -> str:
    return fm.crm if side == "crm" else fm.map


def logical_values(ctx: PlanContext, side: Side, record: Record) -> dict[str, Any]:
    """A record's mapped fields as logical values (CRM vocabulary, owner e-mails, normalised).

    Fields the record's kind does not have (``Record.absent``) are left out: unknown, not empty.
    """
    return _logical(ctx, side, record.fields, ctx.objmap.fields, record.absent)


def _as_written(
    ctx: PlanContext, target: Side, fields: Mapping[str, Any], logical: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``target`` will hold after a write of ``fields``, in logical values.

    This is the baseline to remember, not the values we asked for: a default owner stands in
    for an unmatched one, and a lossy value map (several CRM stages -> one deal stage) reads
    back as its round trip.  Remembering the request instead would mistake the vendor's copy
    for an edit (and re-write it every cycle).
    """
    maps = ctx.objmap.fields
    # Only owners, value maps and sets (a member with no link is left out) can change a value
    # on its way out and back; every other kind is written as its logical value, which
    # canonical() leaves as it is.
    lossy = {
        n: maps[n] for n in logical if maps[n].kind in ("owner", "references") or maps[n].values
    }
    exact = {n: v for n, v in logical.items() if n not in lossy}
    return {**exact, **_logical(ctx, target, fields, lossy)}


def _logical(
    ctx: PlanContext,
    side: Side,
    raw_fields: Mapping[str, Any],
    maps: Mapping[str, FieldMap],
    absent: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, fm in maps.items():
        vendor_name = _field_name(fm, side)
        if vendor_name in absent:
            continue
        raw = raw_fields.get(vendor_name)
        if fm.kind == "owner":
            values[name] = None if raw in (None, "") else ctx.owners.email_of(side, str(raw))
            continue
        if fm.kind == "reference":
            text = None if raw is None else str(raw).strip()
            assert fm.refers_to is not None
            values[name] = ctx.references.logical(fm.refers_to, side, text) if text else None
            continue
        if fm.kind == "references":
            assert fm.refers_to is not None
            values[name] = ctx.references.logical_set(fm.refers_to, side, raw)
            continue
        if fm.values and side == "map" and raw not in (None, ""):
            raw = fm.to_crm_value(str(raw))
        values[name] = canonical(raw, fm.kind)
    return values


def vendor_fields(
    ctx: PlanContext,
    target: Side,
    logical: Mapping[str, Any],
    names: Iterable[str],
    waiting: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Logical values of ``names`` spelled for ``target``; raises _Unwritable when impossible.

    ``waiting`` collects, per ``references`` field, the members left out for want of a link.
    """
    out: dict[str, Any] = {}
    for name in names:
        fm = ctx.objmap.fields[name]
        value = logical.get(name)
        if value is not None and fm.kind == "owner":
            owner_id = (
                None if str(value).startswith(UNMAPPED_PREFIX) else ctx.owners.id_for(target, value)
            )
            if owner_id is None and ctx.default_owner:
                owner_id = ctx.default_owner.get(target)
            if owner_id is None:
                raise _Unwritable(
                    f"no {target} owner matches {value!r} and no default owner is configured",
                    "OWNER_NOT_FOUND",
                )
            value = owner_id
        elif value is not None and fm.kind == "reference":
            assert fm.refers_to is not None
            value = ctx.references.vendor_id(fm.refers_to, target, str(value))
            if value is None:
                raise _Unwritable(
                    f"{name} refers to a {fm.refers_to} record that is not linked on the {target} "
                    "side yet (it is replayed once that record syncs)",
                    "REFERENCE_NOT_LINKED",
                )
        elif fm.kind == "references":
            assert fm.refers_to is not None
            value, missing = ctx.references.vendor_ids(fm.refers_to, target, value)
            if missing and waiting is not None:
                waiting[name] = missing
        elif value is not None and fm.values and target == "map":
            value = fm.to_map_value(str(value))
        out[_field_name(fm, target)] = value
    return out


def _waiting_reason(ctx: PlanContext, target: Side, waiting: Mapping[str, int]) -> str | None:
    """The dead letter's reason for set members left out of a write, or None."""
    if not waiting:
        return None
    parts = [
        f"{name}: {count} {ctx.objmap.fields[name].refers_to} record(s) not linked on the "
        f"{target} side yet"
        for name, count in sorted(waiting.items())
    ]
    return "; ".join(parts) + " (written without them; replayed to add them once they link)"


def plan_object(
    ctx: PlanContext,
    crm_changes: Sequence[Record],
    map_changes: Sequence[Record],
    links: Mapping[Side, Mapping[str, LinkState]],
) -> Plan:
    """Plan one object of one pair for this cycle."""
    plan = Plan(pair=ctx.pair, obj=ctx.name)
    changes: dict[Side, dict[str, Record]] = {
        "crm": _latest(crm_changes),
        "map": _latest(map_changes),
    }
    by_id: dict[Side, dict[str, LinkState]] = {s: dict(links.get(s, {})) for s in SIDES}

    handled: dict[Side, set[str]] = {"crm": set(), "map": set()}
    closed = _plan_merges(ctx, plan, changes, by_id, handled)
    _plan_deletes(ctx, plan, changes, by_id, handled)
    _plan_pending(ctx, plan, changes, by_id, handled, closed)
    _plan_linked(ctx, plan, changes, by_id, handled)
    _plan_unlinked(ctx, plan, changes, by_id, handled)
    return plan


def _plan_merges(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> set[int]:
    """Resolve this cycle's merges on both sides as one identity graph; returns closed links.

    Each side's merges are unions (a chain of merges ends at one surviving record), each active
    link is an edge between a CRM survivor and a platform survivor, and each connected
    component is one person, reconciled once: its links are matched one to one with the
    survivors (links that already point at survivors first), matched links are re-keyed onto
    their survivors, the others close into them.  A survivor left without a partner is a second
    record of a person whose other record merged away on the other side: it follows the delete
    policy.  So merges of the same two people on both sides keep both survivors, merges of
    different people never orphan a record, and no record ends up with two links.
    """
    parent: dict[Side, dict[str, str]] = {s: {} for s in SIDES}
    for s in SIDES:
        for record in changes[s].values():
            if record.merged_into:
                parent[s][record.id] = record.merged_into
                handled[s].add(record.id)
                link = by_id[s].get(record.id)
                if record.conversion is not None and link is not None and link.active:
                    assert link.id is not None
                    plan.actions.append(
                        Converted(link.id, s, record.id, record.merged_into, record.conversion)
                    )
            for loser in record.merged_from:
                parent[s].setdefault(loser, record.id)
    if not parent["crm"] and not parent["map"]:
        return set()

    def final(side: Side, record_id: str) -> str:
        seen = {record_id}
        while record_id in parent[side]:
            record_id = parent[side][record_id]
            if record_id in seen:  # a vendor never reports a merge cycle; do not loop on one
                break
            seen.add(record_id)
        return record_id

    involved: dict[int, LinkState] = {}
    for s in SIDES:
        for rid in set(parent[s]) | set(parent[s].values()):
            link = by_id[s].get(rid)
            if link is not None and link.active and link.id is not None:
                involved[link.id] = link
    ends = {
        lid: {s: final(s, own) if (own := link.id_on(s)) is not None else None for s in SIDES}
        for lid, link in involved.items()
    }
    closed: set[int] = set()
    for component in _components(ends):
        closed |= _resolve_component(ctx, plan, changes, by_id, handled, involved, ends, component)
    return closed


def _components(ends: Mapping[int, Mapping[Side, str | None]]) -> list[list[int]]:
    """Link ids grouped by the survivors they touch (connected components), in id order."""
    root: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        root.setdefault(node, node)
        while root[node] != node:
            root[node] = root[root[node]]
            node = root[node]
        return node

    for lid in sorted(ends):
        nodes: list[tuple[str, str]] = [(s, e) for s, e in ends[lid].items() if e is not None]
        nodes.append(("link", str(lid)))
        for node in nodes[1:]:
            root[find(node)] = find(nodes[0])
    groups: dict[tuple[str, str], list[int]] = {}
    for lid in sorted(ends):
        groups.setdefault(find(("link", str(lid))), []).append(lid)
    return list(groups.values())


def _resolve_component(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
    involved: Mapping[int, LinkState],
    ends: Mapping[int, Mapping[Side, str | None]],
    component: Sequence[int],
) -> set[int]:
    """Match one person's links with its survivors; close, remove and re-key accordingly.

    A link keeps its place when all its ends are live survivors nobody else took (links that
    already point at their survivors choose first); every other link closes.  A closing link's
    live end that no kept link took is a second record of one person: it follows the delete
    policy.  Closings are planned before re-keys, so a survivor is free before a link moves
    onto it.
    """
    links = [involved[lid] for lid in component]
    if all(involved[lid].id_on(s) == ends[lid][s] for lid in component for s in SIDES):
        return set()  # a survivor re-read in the overlap: its merge was handled already
    own = set(component)

    def dead(side: Side, record_id: str) -> bool:
        record = changes[side].get(record_id)
        return record is not None and record.deleted and not record.merged_into

    elsewhere = {
        (s, e)
        for lid in component
        for s in SIDES
        if (e := ends[lid][s]) is not None
        and _survivor_belongs_elsewhere(ctx, changes, by_id, s, e, own)
    }

    def unchanged(link: LinkState) -> int:
        assert link.id is not None
        return sum(
            1 for s in SIDES if link.id_on(s) is not None and link.id_on(s) == ends[link.id][s]
        )

    held = {(s, rid): link.id for link in links for s in SIDES if (rid := link.id_on(s))}

    def takes_held(link: LinkState) -> int:
        """Re-keys onto a record another link of the component holds (it must close first)."""
        assert link.id is not None
        return sum(
            1
            for s in SIDES
            if (end := ends[link.id][s]) is not None
            and end != link.id_on(s)
            and held.get((s, end), link.id) != link.id
        )

    matched: dict[tuple[Side, str], LinkState] = {}
    keep: list[LinkState] = []
    closing: list[LinkState] = []
    full = [k for k in links if k.crm_id is not None and k.map_id is not None]
    half = [k for k in links if k.crm_id is None or k.map_id is None]
    order = lambda k: (-unchanged(k), takes_held(k), k.id)  # noqa: E731
    for link in sorted(full, key=order) + sorted(half, key=order):
        assert link.id is not None
        nodes = [(s, e) for s in SIDES if (e := ends[link.id][s]) is not None]
        if all(n not in matched and n not in elsewhere and not dead(*n) for n in nodes):
            keep.append(link)
            for n in nodes:
                matched[n] = link
        else:
            closing.append(link)

    removed: set[tuple[Side, str]] = set()
    targets = {
        (s, end)
        for k in keep
        for s in SIDES
        if k.id is not None and (end := ends[k.id][s]) is not None and end != k.id_on(s)
    }
    for link in closing:
        assert link.id is not None
        for s in SIDES:
            rid = link.id_on(s)
            if rid is not None and by_id[s].get(rid) == link:
                by_id[s][rid] = replace(link, active=False)
        now = any((s, link.id_on(s)) in targets for s in SIDES)
        if link.crm_id is None or link.map_id is None:
            _close_pending(ctx, plan, changes, by_id, handled, link, now=now)
            continue
        _close_link(
            ctx, plan, handled, link, ends[link.id], matched, elsewhere, removed, dead, now=now
        )

    for link in keep:
        assert link.id is not None
        state = link
        for s in SIDES:
            end = ends[link.id][s]
            old = link.id_on(s)
            if end is None or old is None or end == old:
                continue
            plan.actions.append(Rekey(link.id, s, end, old))
            # The survivor's version is not known: it is compared with the loser's baseline,
            # so its merged values flow to the other side.
            state = state.with_side(s, id=end, version=None, state="synced", pending=None)
            state = replace(state, rekeyed=state.rekeyed | {s})
            by_id[s].pop(old, None)
        for s in SIDES:
            if (rid := state.id_on(s)) is not None:
                by_id[s][rid] = state
    return {link.id for link in closing if link.id is not None}


def _close_link(
    ctx: PlanContext,
    plan: Plan,
    handled: dict[Side, set[str]],
    link: LinkState,
    ends: Mapping[Side, str | None],
    matched: Mapping[tuple[Side, str], LinkState],
    elsewhere: set[tuple[Side, str]],
    removed: set[tuple[Side, str]],
    dead: Callable[[Side, str], bool],
    *,
    now: bool = False,
) -> None:
    """Close one link of a merged person, removing its stray survivor as the policy says.

    The link closes when the removal lands, unless ``now``: a kept link re-keys onto a record
    this one holds, so it must close before the re-key is recorded.
    """
    assert link.id is not None and link.crm_id is not None and link.map_id is not None
    deleted = next(((s, e) for s in SIDES if (e := ends[s]) is not None and dead(s, e)), None)
    if deleted is not None:
        handled[deleted[0]].add(deleted[1])  # its delete is carried here, not again below
    merged_side = next(
        (s for s in SIDES if link.id_on(s) != ends[s]), deleted[0] if deleted else "crm"
    )
    loser = link.id_on(merged_side) or ""
    survivor = ends[merged_side] or loser
    into = next((matched[(s, e)] for s in SIDES if (e := ends[s]) and (s, e) in matched), None)
    merge = MarkMerged(link.id, into.id if into else None, merged_side, loser, survivor)
    stray = next(
        (
            (s, e)
            for s in SIDES
            if (e := ends[s]) is not None
            and (s, e) not in matched
            and (s, e) not in elsewhere
            and (s, e) not in removed
            and not dead(s, e)
        ),
        None,
    )
    if stray is None or ctx.objmap.delete_policy == "flag":
        if deleted is not None and into is None:
            plan.actions.append(FlagDeleted(link.id, deleted[0], deleted[1]))
        else:
            plan.actions.append(merge)
        return
    # The stray survivor is now a second record of one person on its side (or the partner of a
    # deleted one): it follows the delete policy.  The link closes only when that removal
    # lands, so a crash in between re-plans the same removal instead of forgetting it.
    removed.add(stray)
    handled[stray[0]].add(stray[1])
    mode = _removal_mode(ctx)
    source = deleted[1] if deleted is not None else loser
    if now:
        plan.actions.append(merge)
        plan.actions.append(Remove(stray[0], stray[1], None, mode, source))
    elif deleted is not None:
        plan.actions.append(Remove(stray[0], stray[1], link.id, mode, deleted[1]))
    else:
        plan.actions.append(Remove(stray[0], stray[1], link.id, mode, loser, merge=merge))


def _close_pending(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
    link: LinkState,
    *,
    now: bool,
) -> None:
    """Close a pending create of a person who is linked through another record now.

    If the create landed before a crash, the record it made is a second record of the merged
    person: it follows the delete policy, and the link closes when that removal lands (a crash
    in between re-plans it from the same merge) -- unless ``now``: a kept link re-keys onto the
    record this one holds, so it is forgotten first.  A create that did not land is forgotten.
    """
    assert link.id is not None
    source: Side = "crm" if link.crm_id is not None else "map"
    target = other(source)
    source_id = link.id_on(source) or ""
    found = (
        _find_created(ctx, changes, by_id, handled, set(), link, target)
        if link.pending_sent(target)
        else None
    )
    if found is None or ctx.objmap.delete_policy == "flag":
        plan.actions.append(Forget(link.id, source_id))
        return
    handled[target].add(found.id)
    mode = _removal_mode(ctx)
    if now:
        plan.actions.append(Forget(link.id, source_id))
        plan.actions.append(Remove(target, found.id, None, mode, source_id))
    else:
        plan.actions.append(Remove(target, found.id, link.id, mode, source_id, pending=True))


def _survivor_belongs_elsewhere(
    ctx: PlanContext,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    side: Side,
    survivor: str,
    own: set[int],
) -> bool:
    """Whether an unlinked merge survivor's identity already has a partner outside ``own``.

    Either another active link holds that identity (the survivor duplicates a linked person), or
    an unlinked record on the other side carries it this cycle (the survivor will pair with it).
    """
    link = by_id[side].get(survivor)
    if link is not None and link.active and not _unsent_create(link):
        return False  # linked: it is part of the component already
    record = changes[side].get(survivor)
    if record is None or ctx.objmap.identity is None:
        return False
    key = record_identity(ctx, side, record)
    if key is None:
        return False
    linked = (ctx.linked_identities or {}).get(key)
    if linked is not None and not _unsent_create(linked):
        return linked.id not in own
    there = other(side)
    if linked is not None and linked.id not in own and linked.id_on(side) is None:
        return True  # the twin's create into this side is held back: it pairs with the survivor
    for candidate in changes[there].values():
        if candidate.deleted or candidate.merged_into:
            continue
        known = by_id[there].get(candidate.id)
        if known is not None and ((known.active and not _unsent_create(known)) or known.id in own):
            continue  # linked (a held-back create that never went out is not: it pairs here)
        if record_identity(ctx, there, candidate) == key:
            return True
    return False


def _unsent_create(link: LinkState) -> bool:
    """Whether ``link`` is a held-back create that never went out.

    Its record is as good as unlinked: a same-identity record on the other side is its twin,
    not its create.
    """
    if link.crm_id is not None and link.map_id is not None:
        return False
    target: Side = "crm" if link.crm_id is None else "map"
    return not link.pending_sent(target)


def _removal_mode(ctx: PlanContext) -> Literal["hard", "archive"]:
    """How a record that follows a delete or a merge is removed (delete policy ``flag`` aside)."""
    return "hard" if ctx.objmap.delete_policy == "delete" else "archive"


def _plan_deletes(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    pending_ids = {link.id for link in ctx.pending}
    for side in SIDES:
        for record in changes[side].values():
            if not record.deleted or record.id in handled[side]:
                continue
            link = by_id[side].get(record.id)
            if link is not None and link.active and link.id in pending_ids:
                # Its create may have landed before a crash: _plan_pending adopts that record
                # first and then removes it, so it is not left behind unlinked.
                continue
            handled[side].add(record.id)
            if link is None or not link.active:
                continue
            _plan_delete_of(ctx, plan, changes, handled, side, record.id, link)


def _plan_delete_of(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    handled: dict[Side, set[str]],
    side: Side,
    deleted_id: str,
    link: LinkState,
) -> None:
    """Carry one linked record's delete to its counterpart, as the delete policy says."""
    assert link.id is not None  # stored links only
    target = other(side)
    target_id = link.id_on(target)
    counterpart = changes[target].get(target_id) if target_id else None
    if target_id is None or (counterpart is not None and counterpart.deleted):
        plan.actions.append(FlagDeleted(link.id, side, deleted_id))
        if target_id:
            handled[target].add(target_id)
        return
    policy = ctx.objmap.delete_policy
    if policy == "flag":
        plan.actions.append(FlagDeleted(link.id, side, deleted_id))
    else:
        mode = _removal_mode(ctx)
        plan.actions.append(Remove(target, target_id, link.id, mode, deleted_id))
    handled[target].add(target_id)


def _plan_pending(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
    closed: set[int],
) -> None:
    """Recover creates a crash left unconfirmed: adopt the record if it landed, else resend.

    The created record shows up as an unlinked change on the target side (our cursor did not
    move past it).  It is recognised by identity, or -- for objects without one, like deals --
    by carrying exactly the values the create wrote.  Only when a full read of the target side
    did not find it is the create sent again, so a landed create is never doubled.
    """
    claimed: set[str] = set()
    tombstones = _unlinked_deletes(ctx, changes, by_id) if ctx.pending else {}
    # A merge earlier in this plan may have re-keyed a pending link onto the survivor: plan the
    # link as it stands now, or the create would wait for a survivor that is never read again.
    current = {state.id: state for s in SIDES for state in by_id[s].values()}
    for stored in ctx.pending:
        if stored.id in closed:
            continue
        link = current.get(stored.id, stored)
        if not link.active or (link.crm_id is None) == (link.map_id is None):
            continue
        target: Side = "crm" if link.crm_id is None else "map"
        source = other(target)
        source_id = link.id_on(source)
        assert source_id is not None
        if source_id in handled[source]:
            continue
        handled[source].add(source_id)
        found = _find_created(ctx, changes, by_id, handled, claimed, link, target)
        source_rec = changes[source].get(source_id)
        assert link.id is not None  # stored links only
        if found is not None and not link.pending_sent(target):
            # The create was never sent (deferred): what was found is this person's own record
            # on the target, not ours -- pair the two as two unlinked records would be.
            claimed.add(found.id)
            plan.actions.append(Forget(link.id, source_id))
            if source_rec is not None and (source_rec.deleted or source_rec.merged_into):
                # The source left before its create went out: a delete before any link (its
                # twin follows it), or a merge (the twin pairs with the survivor, unlinked).
                if not source_rec.merged_into and link.identity is not None:
                    _follow_unlinked_delete(ctx, plan, target, found.id, source_id, link.identity)
                    handled[target].add(found.id)
                continue
            live = source_rec if source_rec is not None and link.news(source_rec, source) else None
            ids: dict[Side, str] = {source: source_id, target: found.id}
            _pair_values(
                ctx,
                plan,
                ids,
                {source: live, target: found},
                {source: live.version if live else link.version_on(source), target: found.version},
                {
                    source: logical_values(ctx, source, live) if live else link.baseline(source),
                    target: logical_values(ctx, target, found),
                },
            )
            handled[target].add(found.id)
            continue
        if found is not None:
            claimed.add(found.id)
            # The create landed: its fields are the target's baseline (confirmed by the find),
            # and whatever the vendor filled in elsewhere is adopted on this very read.
            adopted = _created_values(link, target)
            behind = _create_behind_source(ctx, link, source, target, adopted)
            unlanded = _unlanded_sets(ctx, target, found, adopted)
            if unlanded:
                # The record landed but its set fields did not (a connector writes them in a
                # second step, after the record exists): they are owed, like a lost write.
                base = behind or (adopted, PendingWrite(frozenset(), {}))
                behind = (
                    base[0],
                    PendingWrite(base[1].fields | set(unlanded), {**base[1].prior, **unlanded}),
                )
            if behind is None:
                plan.actions.append(Adopt(link.id, target, found.id, adopted))
                state = link.with_side(
                    target, id=found.id, version=None, state="synced", pending=None
                )
            else:
                # The source moved on while the create waited: the target holds the older
                # values, and is owed the newer ones like a write that did not land.
                should, owed = behind
                plan.actions.append(Adopt(link.id, target, found.id, should, owed))
                adopted = should
                state = link.with_side(
                    target, id=found.id, version=None, state="written", pending=owed
                )
            state = replace(state, synced={source: link.synced.get(source, {}), target: adopted})
            by_id[target][found.id] = state
            by_id[source][source_id] = state
            if source_rec is not None and source_rec.deleted:
                _plan_delete_of(ctx, plan, changes, handled, source, source_id, state)
                continue
            handled[source].discard(source_id)  # reconciled with its counterpart below
            continue
        if not (ctx.complete or {}).get(target, ctx.complete is None):
            # The target was not read in full: the create may still be out there.  What the
            # source holds now is remembered, as the cursor moves past it.
            if source_rec is not None and _live(source_rec) and link.news(source_rec, source):
                plan.actions.append(
                    LinkRefresh(
                        link.id,
                        {source: source_rec.version},
                        {
                            source: logical_values(ctx, source, source_rec),
                            target: link.baseline(target),
                        },
                    )
                )
            continue
        if source_rec is not None and (source_rec.deleted or source_rec.merged_into):
            plan.actions.append(Forget(link.id, source_id))
            continue
        gone = _deleted_twin(ctx, tombstones, link.identity, target, source_rec)
        if gone is not None and link.identity is not None:
            # The target deleted this person before any cycle paired them: do not re-create.
            # The removal closes the pending link when it lands (a crash re-plans it here).
            if ctx.objmap.delete_policy == "flag":
                plan.actions.append(Forget(link.id, source_id))
            _follow_unlinked_delete(
                ctx, plan, source, source_id, gone, link.identity, link_id=link.id
            )
            continue
        if source_rec is not None and link.news(source_rec, source):
            values = logical_values(ctx, source, source_rec)
            version: str | None = source_rec.version
        else:
            values, version = link.baseline(source), link.version_on(source)
        _create(ctx, plan, source, target, source_id, version, values, link_id=link.id)


def _deleted_twin(
    ctx: PlanContext,
    tombstones: Mapping[tuple[Side, str], str],
    identity: str | None,
    target: Side,
    record: Record | None,
) -> str | None:
    """The id of ``target``'s record of this person if it was deleted before any pairing."""
    if identity is None:
        return None
    if (found := tombstones.get((target, identity))) is not None:
        return found  # in this very read: after a crash it is read again
    stored = (ctx.unpaired_deletes or {}).get(identity)
    if stored is None or stored[0] != target:
        return None
    if record is not None and record.modified_at > stored[2]:
        return None  # touched after the delete was seen: news, not a resurrection
    return stored[1]


def _create_behind_source(
    ctx: PlanContext, link: LinkState, source: Side, target: Side, created: Mapping[str, Any]
) -> tuple[dict[str, Any], PendingWrite] | None:
    """What a landed create owes its target, when the source changed after it was sent.

    A waiting create's source baseline follows the source's reads (see the capped branch of
    :func:`_plan_pending`); the create carries the values of its time.  Returns the target's
    new baseline and the owed fields with the values the create wrote, or ``None``.
    """
    values = link.baseline(source)
    names = [n for n in created if ctx.objmap.fields[n].flows_to(target)]
    try:
        expected = _as_written(
            ctx,
            target,
            vendor_fields(ctx, target, values, names),
            {n: values.get(n) for n in names},
        )
    except _Unwritable:
        return None
    owed = {n for n in names if expected.get(n) != created.get(n)}
    if not owed:
        return None
    should = {**created, **{n: expected.get(n) for n in owed}}
    return should, PendingWrite(frozenset(owed), {n: created.get(n) for n in owed})


def _created_values(link: LinkState, target: Side) -> dict[str, Any]:
    """The logical values a pending link's create writes to ``target``."""
    written = link.pending_on(target)
    return {
        k: v for k, v in link.baseline(target).items() if written is None or k in written.fields
    }


def _unlanded_sets(
    ctx: PlanContext, target: Side, found: Record, adopted: Mapping[str, Any]
) -> dict[str, Any]:
    """Set fields (kind ``references``) a landed create meant but ``found`` does not hold."""
    sets = [n for n, fm in ctx.objmap.fields.items() if fm.kind == "references" and n in adopted]
    if not sets:
        return {}
    held = logical_values(ctx, target, found)
    return {n: held.get(n) for n in sets if held.get(n) != adopted[n]}


def _find_created(
    ctx: PlanContext,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
    claimed: set[str],
    link: LinkState,
    target: Side,
) -> Record | None:
    """An unlinked record on ``target`` that is the pending link's create."""
    # Set fields are left out of the match: a connector writes them after the record exists,
    # so a crash in between leaves our record without them (they are owed once it is adopted).
    expected = {
        k: v
        for k, v in _created_values(link, target).items()
        if k not in ctx.objmap.fields or ctx.objmap.fields[k].kind != "references"
    }
    identity = ctx.objmap.identity
    for record in sorted(changes[target].values(), key=lambda r: (r.modified_at, r.id)):
        if (
            record.id in claimed
            or record.id in handled[target]
            or record.deleted
            or record.merged_into
        ):
            continue
        known = by_id[target].get(record.id)
        if known is not None and known.active:
            continue
        values = logical_values(ctx, target, record)
        if identity is not None and expected.get(identity) is not None:
            if values.get(identity) == expected[identity]:
                return record
        elif expected and all(values.get(k) == v for k, v in expected.items()):
            return record
    return None


def _plan_linked(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    seen_links: set[int | None] = set()
    for side in SIDES:
        for record in changes[side].values():
            if record.id in handled[side] or record.deleted:
                continue
            link = by_id[side].get(record.id)
            if link is None or not link.active or link.id in seen_links:
                continue
            if link.crm_id is None or link.map_id is None:
                continue  # a pending create: _plan_pending owns it
            seen_links.add(link.id)
            crm_rec = changes["crm"].get(link.crm_id) if link.crm_id else None
            map_rec = changes["map"].get(link.map_id) if link.map_id else None
            if crm_rec is not None:
                handled["crm"].add(crm_rec.id)
            if map_rec is not None:
                handled["map"].add(map_rec.id)
            _reconcile(ctx, plan, link, _live(crm_rec), _live(map_rec))


def _live(record: Record | None) -> Record | None:
    return None if record is None or record.deleted or record.merged_into else record


def _reconcile(
    ctx: PlanContext,
    plan: Plan,
    link: LinkState,
    crm_rec: Record | None,
    map_rec: Record | None,
) -> None:
    records: dict[Side, Record | None] = {"crm": crm_rec, "map": map_rec}
    fresh = {s: records[s] is not None and (ctx.replay or link.news(records[s], s)) for s in SIDES}
    if not fresh["crm"] and not fresh["map"]:
        plan.already_applied += 1
        return
    base = {s: link.baseline(s) for s in SIDES}
    actual: dict[Side, dict[str, Any]] = {}
    changed: dict[Side, set[str]] = {}
    rewrite: dict[Side, set[str]] = {}
    for s in SIDES:
        rec = records[s]
        changed[s], rewrite[s] = set(), set()
        if rec is None or not fresh[s]:
            actual[s] = dict(base[s])
            continue
        actual[s] = logical_values(ctx, s, rec)
        # Fields missing from the baseline were never written or seen (a vendor default, a
        # field added to the map later): adopt them rather than call them edits -- except on a
        # side this plan re-keyed: there the baseline is the old record's (a converted lead had
        # no AccountId), and what the new record holds beyond it is news to carry over.
        for name in ctx.objmap.fields:
            if name not in base[s]:
                base[s][name] = None if s in link.rekeyed else actual[s].get(name)
        changed[s], rewrite[s] = _side_changes(ctx, link, s, actual[s], base[s])
    _settle_and_write(ctx, plan, link, records, fresh, actual, changed, base, rewrite)


def _side_changes(
    ctx: PlanContext,
    link: LinkState,
    side: Side,
    actual: Mapping[str, Any],
    base: Mapping[str, Any],
) -> tuple[set[str], set[str]]:
    """Split the fields where a read differs from its side's baseline: (edits, writes to redo).

    On a confirmed side every difference is a person's edit.  On a side whose last write is
    unconfirmed, a written field still holding what it held before (its *prior*, or when that
    is not known, anything) did not land and is written again; any other value there was put
    in by a person after we read the record, and must not be overwritten by our stale plan.
    """
    differ = {f for f in ctx.objmap.fields if f in actual and actual[f] != base.get(f)}
    pending = link.pending_on(side)
    if link.state_on(side) != "written" or pending is None:
        return differ, set()
    redo = {
        f
        for f in differ & pending.fields
        if f not in pending.prior or actual.get(f) == pending.prior[f]
    }
    return differ - redo, redo


def _version(record: Record | None) -> str | None:
    return record.version if record is not None else None


def _settle_and_write(
    ctx: PlanContext,
    plan: Plan,
    link: LinkState,
    records: dict[Side, Record | None],
    fresh: Mapping[Side, bool],
    actual: dict[Side, dict[str, Any]],
    changed: dict[Side, set[str]],
    base: dict[Side, dict[str, Any]],
    rewrite: Mapping[Side, set[str]],
) -> None:
    """Decide each field's value per side, then emit writes and the new baselines."""
    target_values: dict[Side, dict[str, Any]] = {"crm": {}, "map": {}}
    decided: set[str] = set()
    for name, fm in ctx.objmap.fields.items():
        in_crm, in_map = name in changed["crm"], name in changed["map"]
        value: Any = None
        source: Side | None = None
        if in_crm and in_map:
            crm_value, map_value = actual["crm"].get(name), actual["map"].get(name)
            if crm_value == map_value:
                continue
            verdict = settle(
                fm.rule,
                crm_value=crm_value,
                map_value=map_value,
                crm_modified_at=_modified(records["crm"], ctx),
                map_modified_at=_modified(records["map"], ctx),
                skew=ctx.skew,
            )
            plan.decisions.append(
                DecisionIn(
                    pair=ctx.pair,
                    obj=ctx.name,
                    field=name,
                    crm_value=crm_value,
                    map_value=map_value,
                    rule=f"{fm.rule}: {verdict.reason}",
                    winner=verdict.winner,
                    at=ctx.now,
                    link_id=link.id,
                    crm_modified_at=records["crm"].modified_at if records["crm"] else None,
                    map_modified_at=records["map"].modified_at if records["map"] else None,
                )
            )
            if verdict.winner == "none":
                continue
            value, source = verdict.value, ("crm" if verdict.winner == "crm" else "map")
        elif in_crm:
            value, source = actual["crm"].get(name), "crm"
        elif in_map:
            value, source = actual["map"].get(name), "map"
        else:
            continue
        decided.add(name)
        if fm.rule == "never":
            continue
        assert source is not None
        for target in SIDES:
            if fm.flows_to(target) and actual[target].get(name) != value:
                target_values[target][name] = value
    # Writes that did not land: the value they carried came from the other side, so when that
    # side was read this cycle its value now is the newest (it may have moved on, even back to
    # its old baseline, which hides the move from the edit check); else the baseline says.
    for s in SIDES:
        o = other(s)
        for name in rewrite[s] - decided:
            newest = (
                actual[o].get(name)
                if fresh[o] and records[o] is not None and name not in rewrite[o]
                else base[s].get(name)
            )
            if actual[s].get(name) != newest:
                target_values[s].setdefault(name, newest)

    # A side not read this cycle keeps its stored baseline as is.
    new_base: dict[Side, dict[str, Any]] = {
        s: {**base[s], **actual[s]} if fresh[s] else link.baseline(s) for s in SIDES
    }
    writes = {s: target_values[s] for s in SIDES if target_values[s] and link.id_on(s) is not None}
    if not writes:
        plan.echoes += 1
        if link.id is not None:
            plan.actions.append(
                LinkRefresh(
                    link.id,
                    {s: _version(records[s]) for s in SIDES if fresh[s]},
                    new_base,
                )
            )
        return
    for target, values in writes.items():
        source_side = other(target)
        waiting: dict[str, int] = {}
        try:
            fields = vendor_fields(ctx, target, values, list(values), waiting)
        except _Unwritable as problem:
            plan.actions.append(
                Reject(
                    target,
                    link.id_on(source_side) or "",
                    problem.reason,
                    problem.code,
                    {"fields": sorted(values)},
                )
            )
            continue
        # The target's own changes that still flow to the other side keep their old baseline
        # until that write lands, so a crash in between cannot absorb them.  A pairing has no
        # old baseline: there the other side's pending write (its prior values) is what finds
        # a write that did not land, and the target's values are what it holds.
        outflow_base = base[target] if link.id is not None else actual[target]
        target_base = {
            **new_base[target],
            **{name: outflow_base.get(name) for name in writes.get(source_side, {})},
            **_as_written(ctx, target, fields, values),
        }
        # A set sent without its unlinked members: the source's baseline is what was sent, so
        # the rest still reads as the source's news when the record is read (or replayed) again.
        source_base = {**new_base[source_side], **{n: target_base.get(n) for n in waiting}}
        source_rec = records[source_side]
        plan.actions.append(
            Update(
                target=target,
                target_id=link.id_on(target) or "",
                source_id=link.id_on(source_side) or "",
                # Confirm the source's version only when the source needs no write of its own;
                # otherwise a crash between the two writes would hide the second one.
                source_version=None if source_side in writes else _version(source_rec),
                fields=fields,
                synced={target: target_base}
                if source_side in writes
                else {target: target_base, source_side: source_base},
                link_id=link.id,
                waiting=_waiting_reason(ctx, target, waiting),
                identity=identity_of(ctx, target_base),
                written=PendingWrite(frozenset(values), {n: actual[target].get(n) for n in values}),
                still_pending=_unread_pending(link, target, fresh, values),
                # Announced before it is sent when the target is unconfirmed -- or either side
                # was just re-keyed: the change this write carries may come from a record read
                # by id (the loser's counterpart), which no stream brings again if the write
                # fails; and the re-key is recorded before the write goes out, so after a crash
                # the re-keyed side is compared with its old record's baseline, which would
                # take our landed write for a person's edit (a converted lead's default owner).
                rewrite=link.id is not None
                and (link.state_on(target) == "written" or bool(link.rekeyed)),
                settled=_settled(link, fresh, rewrite),
                outflow=frozenset(writes.get(source_side, {})),
                source_holds={
                    n: v
                    for n, v in values.items()
                    if fresh[source_side]
                    and n in actual[source_side]
                    and actual[source_side][n] == v
                }
                if source_side in writes
                else {},
            )
        )


def _settled(
    link: LinkState, fresh: Mapping[Side, bool], rewrite: Mapping[Side, set[str]]
) -> dict[Side, PendingWrite]:
    """The unconfirmed writes this cycle's read narrowed to the fields still to redo."""
    settled: dict[Side, PendingWrite] = {}
    for s in SIDES:
        pending = link.pending_on(s)
        if not fresh[s] or link.state_on(s) != "written" or pending is None:
            continue
        if rewrite[s] != pending.fields:
            left = frozenset(rewrite[s])
            settled[s] = PendingWrite(
                left, {k: v for k, v in pending.prior.items() if k in left}, pending.sent
            )
    return settled


def _unread_pending(
    link: LinkState, side: Side, fresh: Mapping[Side, bool], values: Mapping[str, Any]
) -> PendingWrite | None:
    """What stays unconfirmed on ``side`` after a write of ``values`` lands.

    Only a side that was not read this cycle can hold on to an earlier unconfirmed write: its
    fields that this write does not carry are still unknown.
    """
    pending = link.pending_on(side)
    if fresh[side] or link.state_on(side) != "written" or pending is None:
        return None
    left = pending.fields - set(values)
    if not left:
        return None
    return PendingWrite(frozenset(left), {k: v for k, v in pending.prior.items() if k in left})


def _modified(record: Record | None, ctx: PlanContext) -> datetime:
    return record.modified_at if record is not None else ctx.now


def _plan_unlinked(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    identity = ctx.objmap.identity
    pending: dict[Side, list[tuple[Record, dict[str, Any]]]] = {"crm": [], "map": []}
    for side in SIDES:
        for record in sorted(
            changes[side].values(), key=lambda r: (r.modified_at, r.id), reverse=True
        ):
            if record.id in handled[side] or record.deleted or record.merged_into:
                continue
            link = by_id[side].get(record.id)
            if link is not None:
                # Active: handled above.  Closed by a delete or merge: the person was removed on
                # the other side on purpose, so an edit here must not resurrect them there.
                if not link.active:
                    plan.skipped += 1
                continue
            pending[side].append((record, logical_values(ctx, side, record)))

    keyed: dict[Side, dict[str, tuple[Record, dict[str, Any]]]] = {"crm": {}, "map": {}}
    loose: dict[Side, list[tuple[Record, dict[str, Any]]]] = {"crm": [], "map": []}
    # A pending link this plan forgets (its source merged away before the create went out)
    # no longer holds its identity: the person's surviving record and its twin pair instead.
    forgotten = {a.link_id for a in plan.actions if isinstance(a, Forget)}
    for side in SIDES:
        for record, values in pending[side]:  # newest first
            key = values.get(identity) if identity else None
            if (
                identity
                and key is not None
                and ctx.objmap.fields[identity].kind == "email"
                and not _EMAIL.match(key)
            ):
                plan.actions.append(
                    Reject(
                        other(side), record.id, f"invalid e-mail address {key!r}", "INVALID_EMAIL"
                    )
                )
                continue
            if key is None:
                loose[side].append((record, values))
                continue
            linked = (ctx.linked_identities or {}).get(key)
            if (
                linked is not None
                and linked.id not in forgotten
                and linked.id_on(side) != record.id
            ):
                plan.actions.append(
                    Reject(
                        other(side),
                        record.id,
                        f"duplicate on {side}: {linked.id_on(side)} is already linked with the "
                        f"same {identity} {key!r}; merge them",
                        "DUPLICATE_IDENTITY",
                    )
                )
                continue
            survivor = keyed[side].get(key)
            if survivor is not None:
                plan.actions.append(
                    Reject(
                        other(side),
                        record.id,
                        f"duplicate on {side}: {survivor[0].id} has the same {identity} {key!r}; merge them",
                        "DUPLICATE_IDENTITY",
                    )
                )
                continue
            keyed[side][key] = (record, values)

    for key, (crm_rec, crm_values) in keyed["crm"].items():
        match = keyed["map"].pop(key, None)
        if match is None:
            loose["crm"].append((crm_rec, crm_values))
            continue
        map_rec, map_values = match
        _pair(ctx, plan, crm_rec, crm_values, map_rec, map_values)
    loose["map"].extend(keyed["map"].values())

    tombstones = _unlinked_deletes(ctx, changes, by_id)
    followed: set[tuple[Side, str]] = set()
    # Only worth computing when something is about to be created by identity.
    held = (
        _identities_held_by_linked_changes(ctx, changes, by_id)
        if identity and (loose["crm"] or loose["map"])
        else {"crm": {}, "map": {}}
    )
    for side in SIDES:
        target: Side = other(side)
        allowed = ctx.objmap.create_on_crm if target == "crm" else ctx.objmap.create_on_map
        for record, values in loose[side]:
            if not allowed:
                plan.skipped += 1
                continue
            key = values.get(identity) if identity else None
            deleted = _deleted_twin(ctx, tombstones, key, target, record)
            if deleted is not None and key is not None:
                followed.add((target, key))
                _follow_unlinked_delete(
                    ctx, plan, side, record.id, deleted, key, announce=(target, key) in tombstones
                )
                continue
            holder = held[target].get(key) if key is not None else None
            if holder is not None:
                # A linked record on the target side took this identity this cycle: an upsert
                # by identity would overwrite that person's record, and after this cycle the
                # two records on this side share an identity anyway.
                plan.actions.append(
                    Reject(
                        target,
                        record.id,
                        f"duplicate on {side}: {target} record {holder} (already linked) now "
                        f"has the same {identity} {key!r}; merge them",
                        "DUPLICATE_IDENTITY",
                    )
                )
                continue
            _create(ctx, plan, side, target, record.id, record.version, values)
    for (side, key), deleted_id in tombstones.items():
        if (side, key) not in followed:
            # The other side's record of this person was not in this read (or does not exist):
            # remember the delete, so a later read of it is not taken for a new person.
            ids: dict[Side, str | None] = {side: deleted_id, other(side): None}
            plan.actions.append(Tombstone(ids["crm"], ids["map"], key, side))


def _unlinked_deletes(
    ctx: PlanContext,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
) -> dict[tuple[Side, str], str]:
    """(side, identity) -> id of a record deleted this cycle that no link ever held.

    A record merged into such a deleted record is gone with it (its person was merged, then
    deleted): its identity counts too, under its own id.
    """
    found: dict[tuple[Side, str], str] = {}
    if ctx.objmap.identity is None:
        return found
    for side in SIDES:
        gone = {
            r.id
            for r in changes[side].values()
            if r.deleted and not r.merged_into and r.id not in by_id[side]
        }
        for record in changes[side].values():
            if record.id in by_id[side] or not (
                record.id in gone or (record.merged_into and record.merged_into in gone)
            ):
                continue
            key = record_identity(ctx, side, record)
            if key is not None:
                found.setdefault((side, key), record.id)
    return found


def _follow_unlinked_delete(
    ctx: PlanContext,
    plan: Plan,
    side: Side,
    record_id: str,
    deleted_id: str,
    key: str,
    *,
    announce: bool = True,
    link_id: int | None = None,
) -> None:
    """A person deleted on one side before any cycle linked them: never re-create them there.

    The result is what it would have been had the first cycle completed and linked the two:
    the live record follows the delete policy, and a closed link keeps later edits of it from
    being taken for a new person.

    ``announce``: link the two just before the removal is sent -- safe when the delete was in
    this read, since a crash re-reads it and the link's delete is followed as any other.  A
    delete remembered from an earlier read (a half tombstone) is not read again, so there the
    removal goes unannounced and a crash simply plans it again from the tombstone.  ``link_id``
    is a held-back create's pending link, which the removal closes when it lands.
    """
    ids = {side: record_id, other(side): deleted_id}
    closed = Tombstone(ids["crm"], ids["map"], key, other(side))
    if ctx.objmap.delete_policy == "flag":
        plan.actions.append(closed)
        return
    mode = _removal_mode(ctx)
    unlinked = closed if announce and link_id is None else None
    plan.actions.append(Remove(side, record_id, link_id, mode, deleted_id, unlinked=unlinked))


def _identities_held_by_linked_changes(
    ctx: PlanContext,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
) -> dict[Side, dict[str, str]]:
    """Per side, identity -> id of a linked record that carries it in this cycle's changes."""
    held: dict[Side, dict[str, str]] = {"crm": {}, "map": {}}
    if ctx.objmap.identity is None:
        return held
    for side in SIDES:
        for record in changes[side].values():
            link = by_id[side].get(record.id)
            if link is None or not link.active or record.deleted or record.merged_into:
                continue
            key = record_identity(ctx, side, record)
            if key is not None:
                held[side].setdefault(key, record.id)
    return held


def _pair(
    ctx: PlanContext,
    plan: Plan,
    crm_rec: Record,
    crm_values: dict[str, Any],
    map_rec: Record,
    map_values: dict[str, Any],
) -> None:
    """Two unlinked records with the same identity become one link; contested fields are settled.

    The link is recorded before any write, with each side that still needs a write marked
    ``written`` -- its baseline what it should hold, its pending write what it held before --
    so a crash or a failed batch between here and the writes is repaired by the next cycle,
    and a person's edit made in between is recognised as such rather than overwritten.
    """
    _pair_values(
        ctx,
        plan,
        {"crm": crm_rec.id, "map": map_rec.id},
        {"crm": crm_rec, "map": map_rec},
        {"crm": crm_rec.version, "map": map_rec.version},
        {"crm": crm_values, "map": map_values},
    )


def _pair_values(
    ctx: PlanContext,
    plan: Plan,
    ids: dict[Side, str],
    records: dict[Side, Record | None],
    versions: dict[Side, str | None],
    actual: dict[Side, dict[str, Any]],
) -> None:
    """:func:`_pair` for records known by id, version and values (one perhaps not read now)."""
    changed: dict[Side, set[str]] = {
        s: {f for f, v in actual[s].items() if v is not None} for s in SIDES
    }
    unstored = LinkState(None, ids["crm"], ids["map"], versions["crm"], versions["map"], {})
    before, echoes = len(plan.actions), plan.echoes
    _settle_and_write(
        ctx,
        plan,
        unstored,
        records,
        {"crm": True, "map": True},
        actual,
        changed,
        {"crm": {}, "map": {}},
        {"crm": set(), "map": set()},
    )
    plan.echoes = echoes  # agreeing at first sight is a match, not an echo of ours
    emitted = plan.actions[before:]
    del plan.actions[before:]
    synced: dict[Side, dict[str, Any]] = {s: dict(actual[s]) for s in SIDES}
    pending: dict[Side, PendingWrite] = {}
    for action in emitted:
        if isinstance(action, Update):
            synced[action.target] = dict(action.synced[action.target])
            pending[action.target] = action.written
    plan.actions.append(
        Pairing(
            ids["crm"],
            ids["map"],
            versions["crm"],
            versions["map"],
            synced,
            identity=identity_of(ctx, actual["crm"]),
            pending=pending,
        )
    )
    plan.actions.extend(emitted)


def _create(
    ctx: PlanContext,
    plan: Plan,
    source: Side,
    target: Side,
    source_id: str,
    source_version: str | None,
    values: Mapping[str, Any],
    *,
    link_id: int | None = None,
) -> None:
    names = [
        name
        for name, fm in ctx.objmap.fields.items()
        if fm.flows_to(target) and values.get(name) is not None
    ]
    identity = ctx.objmap.identity
    match_on = None
    if identity is not None and values.get(identity) is not None:
        match_on = _field_name(ctx.objmap.fields[identity], target)
        if identity not in names:
            names.append(identity)
        if ctx.match_fields is not None and match_on not in ctx.match_fields.get(target, ()):
            match_on = None  # the target cannot upsert on it; the link pairs the twins
    waiting: dict[str, int] = {}
    try:
        fields = vendor_fields(ctx, target, values, names, waiting)
    except _Unwritable as problem:
        plan.actions.append(Reject(target, source_id, problem.reason, problem.code))
        return
    for name, fm in ctx.objmap.fields.items():
        # A starting value (``on_create``): carried when it can be, never a reason to refuse.
        if fm.seeds(target) and values.get(name) is not None and name not in names:
            try:
                fields |= vendor_fields(ctx, target, values, [name])
            except _Unwritable:
                continue
            names.append(name)
    written = _as_written(ctx, target, fields, {n: values[n] for n in names})
    plan.actions.append(
        Create(
            target=target,
            source_id=source_id,
            source_version=source_version,
            fields=fields,
            synced={
                source: {**values, **{n: written.get(n) for n in waiting}},
                target: {n: written.get(n) for n in ctx.objmap.fields},
            },
            waiting=_waiting_reason(ctx, target, waiting),
            written=frozenset(names),
            match_on=match_on,
            identity=identity_of(ctx, values),
            link_id=link_id,
            deferred=(ctx.capped or {}).get(target, False),
        )
    )
