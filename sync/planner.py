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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from crm_bridge.connector import Record
from crm_bridge.store import DecisionIn, Side
from crm_bridge.sync.actions import (
    SIDES,
    Create,
    FlagDeleted,
    LinkRefresh,
    MarkMerged,
    Pairing,
    Plan,
    Reject,
    Rekey,
    Remove,
    Update,
    other,
)
from crm_bridge.sync.mapping import FieldMap, ObjectMap
from crm_bridge.sync.owners import UNMAPPED_PREFIX, OwnerDirectory
from crm_bridge.sync.rules import settle
from crm_bridge.sync.values import canonical

__all__ = ["LinkState", "PlanContext", "plan_object"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the planner needs of a stored link."""

    id: int
    crm_id: str | None
    map_id: str | None
    crm_version: str | None
    map_version: str | None
    synced: Mapping[str, Any]
    active: bool = True

    def id_on(self, side: Side) -> str | None:
        """The record id on ``side``."""
        return self.crm_id if side == "crm" else self.map_id

    def version_on(self, side: Side) -> str | None:
        """The version token last seen on ``side``."""
        return self.crm_version if side == "crm" else self.map_version


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
    delete_modes: Mapping[Side, str] | None = None


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


def _field_name(fm: FieldMap, side: Side) -> str:
    return fm.crm if side == "crm" else fm.map


def logical_values(ctx: PlanContext, side: Side, record: Record) -> dict[str, Any]:
    """A record's mapped fields as logical values (CRM vocabulary, owner e-mails, normalised)."""
    values: dict[str, Any] = {}
    for name, fm in ctx.objmap.fields.items():
        raw = record.fields.get(_field_name(fm, side))
        if fm.kind == "owner":
            values[name] = None if raw in (None, "") else ctx.owners.email_of(side, str(raw))
            continue
        if fm.values and side == "map" and raw not in (None, ""):
            raw = fm.to_crm_value(str(raw))
        values[name] = canonical(raw, fm.kind)
    return values


def vendor_fields(
    ctx: PlanContext, target: Side, logical: Mapping[str, Any], names: Iterable[str]
) -> dict[str, Any]:
    """Logical values of ``names`` spelled for ``target``; raises _Unwritable when impossible."""
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
        elif value is not None and fm.values and target == "map":
            value = fm.to_map_value(str(value))
        out[_field_name(fm, target)] = value
    return out


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
    plan.crm_cursor = max((r.modified_at for r in crm_changes), default=None)
    plan.map_cursor = max((r.modified_at for r in map_changes), default=None)
    by_id: dict[Side, dict[str, LinkState]] = {s: dict(links.get(s, {})) for s in SIDES}

    handled: dict[Side, set[str]] = {"crm": set(), "map": set()}
    _plan_merges(ctx, plan, changes, by_id, handled)
    _plan_deletes(ctx, plan, changes, by_id, handled)
    _plan_linked(ctx, plan, changes, by_id, handled)
    _plan_unlinked(ctx, plan, changes, by_id, handled)
    return plan


def _plan_merges(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    for side in SIDES:
        pairs: list[tuple[str, str]] = []
        for record in changes[side].values():
            if record.merged_into:
                pairs.append((record.id, record.merged_into))
                handled[side].add(record.id)
            pairs.extend((loser, record.id) for loser in record.merged_from)
        for loser, survivor in pairs:
            loser_link = by_id[side].get(loser)
            if loser_link is None or not loser_link.active:
                continue
            survivor_link = by_id[side].get(survivor)
            if (
                survivor_link is not None
                and survivor_link.active
                and survivor_link.id != loser_link.id
            ):
                plan.actions.append(
                    MarkMerged(loser_link.id, survivor_link.id, side, loser, survivor)
                )
                by_id[side].pop(loser, None)
                # The loser's counterpart is now a second record for one person on the other
                # side: it follows the delete policy (with "flag" it stays for a human).
                counterpart = loser_link.id_on(other(side))
                if counterpart is not None and ctx.objmap.delete_policy != "flag":
                    mode: Literal["hard", "archive"] = (
                        "hard" if ctx.objmap.delete_policy == "delete" else "archive"
                    )
                    plan.actions.append(Remove(other(side), counterpart, None, mode, loser))
                    handled[other(side)].add(counterpart)
                continue
            plan.actions.append(Rekey(loser_link.id, side, survivor, loser))
            rekeyed = LinkState(
                id=loser_link.id,
                crm_id=survivor if side == "crm" else loser_link.crm_id,
                map_id=survivor if side == "map" else loser_link.map_id,
                crm_version=None if side == "crm" else loser_link.crm_version,
                map_version=None if side == "map" else loser_link.map_version,
                synced=loser_link.synced,
            )
            by_id[side].pop(loser, None)
            by_id[side][survivor] = rekeyed
            counterpart = rekeyed.id_on(other(side))
            if counterpart is not None:
                by_id[other(side)][counterpart] = rekeyed


def _plan_deletes(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    policy = ctx.objmap.delete_policy
    for side in SIDES:
        for record in changes[side].values():
            if not record.deleted or record.id in handled[side]:
                continue
            handled[side].add(record.id)
            link = by_id[side].get(record.id)
            if link is None or not link.active:
                continue
            target = other(side)
            target_id = link.id_on(target)
            counterpart = changes[target].get(target_id) if target_id else None
            if target_id is None or (counterpart is not None and counterpart.deleted):
                plan.actions.append(FlagDeleted(link.id, side, record.id))
                if target_id:
                    handled[target].add(target_id)
                continue
            if policy == "flag":
                plan.actions.append(FlagDeleted(link.id, side, record.id))
            else:
                mode: Literal["hard", "archive"] = "hard" if policy == "delete" else "archive"
                plan.actions.append(Remove(target, target_id, link.id, mode, record.id))
            handled[target].add(target_id)


def _plan_linked(
    ctx: PlanContext,
    plan: Plan,
    changes: dict[Side, dict[str, Record]],
    by_id: dict[Side, dict[str, LinkState]],
    handled: dict[Side, set[str]],
) -> None:
    seen_links: set[int] = set()
    for side in SIDES:
        for record in changes[side].values():
            if record.id in handled[side] or record.deleted:
                continue
            link = by_id[side].get(record.id)
            if link is None or not link.active or link.id in seen_links:
                continue
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
    stored: dict[Side, str | None] = {s: link.version_on(s) for s in SIDES}
    fresh = {s: records[s] is not None and records[s].version != stored[s] for s in SIDES}  # type: ignore[union-attr]
    if not fresh["crm"] and not fresh["map"]:
        plan.already_applied += 1
        return
    synced = dict(link.synced)
    current: dict[Side, dict[str, Any]] = {
        s: logical_values(ctx, s, rec) if (rec := records[s]) is not None else dict(synced)
        for s in SIDES
    }
    # A side whose version is unconfirmed (None: our last write to it has not been read back,
    # e.g. after a crash) shows pending writes, not human edits, so its differences from the
    # agreed values are re-written rather than treated as changes.
    changed: dict[Side, set[str]] = {
        s: {f for f in ctx.objmap.fields if current[s].get(f) != synced.get(f)}
        if fresh[s] and stored[s] is not None
        else set()
        for s in SIDES
    }
    pending = any(current[s] != synced for s in SIDES if records[s] is not None)
    if not changed["crm"] and not changed["map"] and not pending:
        plan.echoes += 1
        plan.actions.append(LinkRefresh(link.id, _version(crm_rec), _version(map_rec), synced))
        return
    agreed = _agree(
        ctx, plan, current, changed, synced, crm_rec, map_rec, link.id, contested_only=False
    )
    _emit_writes(ctx, plan, link, current, agreed, crm_rec, map_rec)


def _version(record: Record | None) -> str | None:
    return record.version if record is not None else None


def _agree(
    ctx: PlanContext,
    plan: Plan,
    current: dict[Side, dict[str, Any]],
    changed: dict[Side, set[str]],
    synced: Mapping[str, Any],
    crm_rec: Record | None,
    map_rec: Record | None,
    link_id: int | None,
    *,
    contested_only: bool,
) -> dict[str, Any]:
    """The values both sides should hold after this cycle."""
    agreed = dict(synced)
    for name, fm in ctx.objmap.fields.items():
        in_crm, in_map = name in changed["crm"], name in changed["map"]
        crm_value, map_value = current["crm"].get(name), current["map"].get(name)
        if in_crm and in_map and crm_value != map_value:
            verdict = settle(
                fm.rule,
                crm_value=crm_value,
                map_value=map_value,
                crm_modified_at=crm_rec.modified_at if crm_rec else ctx.now,
                map_modified_at=map_rec.modified_at if map_rec else ctx.now,
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
                    link_id=link_id,
                    crm_modified_at=crm_rec.modified_at if crm_rec else None,
                    map_modified_at=map_rec.modified_at if map_rec else None,
                )
            )
            agreed[name] = verdict.value if verdict.winner != "none" else synced.get(name)
        elif in_crm:
            agreed[name] = crm_value
        elif in_map:
            agreed[name] = map_value
    return agreed


def _emit_writes(
    ctx: PlanContext,
    plan: Plan,
    link: LinkState,
    current: dict[Side, dict[str, Any]],
    agreed: dict[str, Any],
    crm_rec: Record | None,
    map_rec: Record | None,
) -> None:
    names: dict[Side, list[str]] = {
        target: [
            name
            for name, fm in ctx.objmap.fields.items()
            if fm.rule != "never"
            and fm.flows_to(target)
            and agreed.get(name) != current[target].get(name)
        ]
        if link.id_on(target) is not None
        else []
        for target in SIDES
    }
    if not names["crm"] and not names["map"]:
        plan.actions.append(LinkRefresh(link.id, _version(crm_rec), _version(map_rec), agreed))
        return
    for target in SIDES:
        target_id = link.id_on(target)
        if not names[target] or target_id is None:
            continue
        source: Side = other(target)
        source_rec = crm_rec if source == "crm" else map_rec
        try:
            fields = vendor_fields(ctx, target, agreed, names[target])
        except _Unwritable as problem:
            plan.actions.append(
                Reject(
                    target,
                    link.id_on(source) or "",
                    problem.reason,
                    problem.code,
                    {"fields": names[target]},
                )
            )
            continue
        plan.actions.append(
            Update(
                target=target,
                target_id=target_id,
                source_id=link.id_on(source) or "",
                # Confirm the source's version only when the source needs no write of its own;
                # otherwise a crash between the two writes would hide the second one.
                source_version=None if names[source] else _version(source_rec),
                fields=fields,
                synced=agreed,
                link_id=link.id,
            )
        )


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

    for side in SIDES:
        target: Side = other(side)
        allowed = ctx.objmap.create_on_crm if target == "crm" else ctx.objmap.create_on_map
        for record, values in loose[side]:
            if not allowed:
                plan.skipped += 1
                continue
            _create(ctx, plan, side, target, record, values)


def _needs_write(
    ctx: PlanContext, side: Side, current: Mapping[str, Any], agreed: Mapping[str, Any]
) -> bool:
    return any(
        fm.rule != "never" and fm.flows_to(side) and agreed.get(name) != current.get(name)
        for name, fm in ctx.objmap.fields.items()
    )


def _pair(
    ctx: PlanContext,
    plan: Plan,
    crm_rec: Record,
    crm_values: dict[str, Any],
    map_rec: Record,
    map_values: dict[str, Any],
) -> None:
    current: dict[Side, dict[str, Any]] = {"crm": crm_values, "map": map_values}
    changed: dict[Side, set[str]] = {
        "crm": {f for f, v in crm_values.items() if v is not None},
        "map": {f for f, v in map_values.items() if v is not None},
    }
    agreed = _agree(ctx, plan, current, changed, {}, crm_rec, map_rec, None, contested_only=True)
    # A side that still needs a write gets no version yet: if we crash before writing it, the
    # next cycle sees it as unconfirmed and writes it again instead of mistaking it for an edit.
    crm_version = None if _needs_write(ctx, "crm", crm_values, agreed) else crm_rec.version
    map_version = None if _needs_write(ctx, "map", map_values, agreed) else map_rec.version
    plan.actions.append(Pairing(crm_rec.id, map_rec.id, crm_version, map_version, agreed))
    link = LinkState(-1, crm_rec.id, map_rec.id, None, None, agreed)
    before = len(plan.actions)
    _emit_writes(ctx, plan, link, current, agreed, crm_rec, map_rec)
    # _emit_writes adds a LinkRefresh when nothing needs writing; the Pairing already covers it.
    if len(plan.actions) == before + 1 and isinstance(plan.actions[-1], LinkRefresh):
        plan.actions.pop()


def _create(
    ctx: PlanContext, plan: Plan, source: Side, target: Side, record: Record, values: dict[str, Any]
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
    try:
        fields = vendor_fields(ctx, target, values, names)
    except _Unwritable as problem:
        plan.actions.append(Reject(target, record.id, problem.reason, problem.code))
        return
    plan.actions.append(
        Create(
            target=target,
            source_id=record.id,
            source_version=record.version,
            fields=fields,
            synced=values,
            match_on=match_on,
        )
    )
